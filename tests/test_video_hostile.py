"""nsnet.video against hostile input: absurd geometry, GIF canvas bombs, lying durations, odd paths.

Every input is built here from a clean ``clips.write_clip`` file whose headers are then
patched (``clips.set_*``). Bombs are refused from the headers: the tests forbid decoding
(``no_decoding``) or bound the memory of a subprocess, so the code before these fixes
fails them quickly instead of taking the machine down.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clips import (frame_index, mp4_edit, set_gif_canvas, set_mkv_duration, set_mp4_edit, set_mp4_media_duration,
                   write_clip)
from nsnet import limits
from nsnet.video import (CorruptVideoError, UnsupportedGeometryError, VideoError, VideoNotFoundError, probe,
                         read_clip)
from nsnet.video import decoder as decoder_module
from nsnet.video import sampling as sampling_module
from nsnet.video.decoder import Decoder

REPO = Path(__file__).resolve().parents[1]
TSN_30_8 = [2, 6, 9, 13, 17, 21, 24, 28]   # nearest (t + 0.5) * 30 / 8 = 1.875, 5.625, ...: 30 frames at 10 fps, T = 8


def resources() -> tuple[int, int]:
    """(open file descriptors, Python threads) of this process."""
    return len(os.listdir("/proc/self/fd")), threading.active_count()


def one_line(err: BaseException, path) -> str:
    message = str(err)
    assert isinstance(err, VideoError), repr(err)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert len(message) < 300 and "Traceback" not in message and "Errno" not in message, message
    return message


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test as soon as anything asks a decoder for a frame."""
    def refuse(self):
        raise AssertionError(f"{self.path}: a frame was decoded")
    monkeypatch.setattr(Decoder, "_decoded", refuse)


# ----------------------------------------------------------------------------- 1. aspect-ratio memory bomb

@pytest.mark.parametrize("size,rotation,shown", [((4096, 2), 0, "4096x2"), ((2, 4096), 0, "2x4096"),
                                                 ((2, 4096), 90, "4096x2")])
def test_absurd_aspect_ratio_is_refused_from_the_headers(tmp_path, no_decoding, size, rotation, shown):
    path = write_clip(tmp_path / "thin.mp4", 5, 10.0, size, rotation=rotation)
    assert path.stat().st_size < 10_000
    before = resources()
    for call in (lambda: probe(path), lambda: read_clip(path, 16, size=224)):
        with pytest.raises(UnsupportedGeometryError) as excinfo:
            call()
        message = one_line(excinfo.value, path)
        assert f"{shown} pixels" in message and "aspect ratio 2048:1" in message and "16:1" in message, message
    assert resources() == before


def test_aspect_bomb_stays_small_in_memory(tmp_path):
    """The 4096x2 clip that took read_clip(size=224) past 10 GB: refused, peak RSS barely moves."""
    path = write_clip(tmp_path / "wide.mp4", 5, 10.0, (4096, 2))
    code = textwrap.dedent("""
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))   # never let a regression eat the machine
        from nsnet.video import read_clip, VideoError
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()
        try:
            read_clip(sys.argv[1], 16, size=224)
            print("no error")
        except VideoError as err:
            print(type(err).__name__)
        growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(f"{growth_mb:.0f} {time.monotonic() - start:.2f}")
    """)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    lines = done.stdout.split()
    assert done.returncode == 0 and lines[:1] == ["UnsupportedGeometryError"], done.stdout + done.stderr[-2000:]
    growth_mb, seconds = float(lines[1]), float(lines[2])
    assert growth_mb < 100 and seconds < 5, (growth_mb, seconds)


def test_aspect_ratio_limit_is_inclusive(tmp_path):
    ok = read_clip(write_clip(tmp_path / "ok.mp4", 4, 10.0, (256, 16)), 2, size=8)
    assert ok.frames.shape == (2, 8, 128, 3)
    with pytest.raises(UnsupportedGeometryError, match=r"272x16 pixels, aspect ratio 17\.0:1"):
        probe(write_clip(tmp_path / "wide.mp4", 4, 10.0, (272, 16)))


def test_anamorphic_pixels_count_towards_the_aspect_ratio(tmp_path, no_decoding):
    path = write_clip(tmp_path / "sar.mp4", 5, 10.0, (1920, 48), sample_aspect_ratio=Fraction(30))
    with pytest.raises(UnsupportedGeometryError) as excinfo:
        probe(path)
    assert "1920x48 pixels (stored 64x48)" in one_line(excinfo.value, path)


def test_stream_pixels_are_bounded(tmp_path, monkeypatch, no_decoding):
    path = write_clip(tmp_path / "a.mkv", 5, 10.0, (64, 48))
    monkeypatch.setattr(limits, "MAX_SOURCE_PIXELS", 64 * 48 - 1)
    with pytest.raises(UnsupportedGeometryError) as excinfo:
        read_clip(path, 4)
    assert "frames of 64x48 pixels are too large to decode" in one_line(excinfo.value, path)


def test_decoded_frame_is_checked_when_the_headers_say_nothing(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "wide.mkv", 5, 10.0, (4096, 2))
    check = decoder_module.check_geometry
    calls = []

    def headers_silent(path, width, height, *args, **kwargs):   # the first call checks the headers
        calls.append((width, height))
        return check(path, width, height, *args, **kwargs) if len(calls) > 1 else None
    monkeypatch.setattr(decoder_module, "check_geometry", headers_silent)
    with pytest.raises(UnsupportedGeometryError, match="4096x2 pixels, aspect ratio 2048:1"):
        probe(path)
    assert calls == [(4096, 2), (4096, 2)]


def test_decoders_refuse_pictures_beyond_the_source_limit(tmp_path, monkeypatch):
    """A picture that grows past MAX_SOURCE_PIXELS mid-stream is never allocated (FFmpeg's max_pixels)."""
    path = write_clip(tmp_path / "a.mp4", 5, 10.0, (64, 48))
    monkeypatch.setattr(decoder_module, "check_geometry", lambda *args, **kwargs: None)
    monkeypatch.setattr(limits, "MAX_SOURCE_PIXELS", 64 * 48 - 1)
    with pytest.raises(VideoError, match="can be decoded"):
        read_clip(path, 4)


def test_output_frames_are_bounded(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "a.mp4", 10, 10.0, (64, 48))
    monkeypatch.setattr(limits, "MAX_DECODE_PIXELS", 64 * 48 - 1)
    before = resources()
    with pytest.raises(UnsupportedGeometryError) as excinfo:
        read_clip(path, 4, size=None)
    assert "output frames of 64x48 pixels (the display size) are above the limit" in one_line(excinfo.value, path)
    with pytest.raises(UnsupportedGeometryError, match=r"output frames of 64x48 pixels \(size=48\)"):
        read_clip(path, 4, size=48)
    assert resources() == before
    assert read_clip(path, 4, size=47).frames.shape == (4, 47, 63, 3)


# ----------------------------------------------------------------------------- 2. GIF canvas bomb

def _gif(path: Path, frames: int, canvas: tuple[int, int] | None = None) -> Path:
    write_clip(path, frames, 10.0, (64, 48), "gif")
    return set_gif_canvas(path, *canvas) if canvas else path


def test_gif_canvas_bomb_is_refused_before_decoding(tmp_path, no_decoding):
    path = _gif(tmp_path / "canvas.gif", 5, (16000, 16000))
    assert path.stat().st_size < 7_000
    with av.open(str(path)) as c:   # FFmpeg takes the logical screen as the stream size (and decodes onto it)
        assert (c.streams.video[0].width, c.streams.video[0].height) == (16000, 16000)
    before = resources()
    for call in (lambda: probe(path), lambda: read_clip(path, 16)):
        with pytest.raises(UnsupportedGeometryError) as excinfo:
            call()
        assert "16000x16000 pixels are too large" in one_line(excinfo.value, path)
    assert resources() == before


def test_gif_canvas_times_frames_is_bounded(tmp_path, no_decoding):
    path = _gif(tmp_path / "many.gif", 40, (8000, 8000))   # 64 Mpx a frame is allowed; 40 of them are 2.6 Gpx
    with pytest.raises(UnsupportedGeometryError) as excinfo:
        probe(path)
    assert "animated GIF too large to decode: 8000x8000 pixels x 40 frames (2.6 Gpx, limit 2.0 Gpx)" in \
        one_line(excinfo.value, path)


def test_gif_budget_limit(tmp_path, monkeypatch):
    path = _gif(tmp_path / "a.gif", 5)
    monkeypatch.setattr(limits, "MAX_GIF_PIXELS", 64 * 48 * 5 - 1)
    with pytest.raises(UnsupportedGeometryError, match="64x48 pixels x 5 frames"):
        read_clip(path, 4)
    monkeypatch.setattr(limits, "MAX_GIF_PIXELS", 64 * 48 * 5)
    assert [frame_index(f) for f in read_clip(path, 5, size=None).frames] == [0, 1, 2, 3, 4]


def test_thin_gif_gives_the_geometry_error(tmp_path):
    """FFmpeg used to answer an 8000x2 GIF with "Invalid argument returned 22" from its scaler."""
    path = write_clip(tmp_path / "thin.gif", 3, 10.0, (8000, 2), "gif")
    with pytest.raises(UnsupportedGeometryError) as excinfo:
        read_clip(path, 4, size=224)
    assert "8000x2 pixels, aspect ratio 4000:1" in one_line(excinfo.value, path)


# ----------------------------------------------------------------------------- 3. lying durations

def _check_true_frames(path) -> None:
    """30 frames at 10 fps whatever the headers say: TSN centres of the real 3 s, finite metadata."""
    info = probe(path)
    assert math.isfinite(info.duration_s) and math.isfinite(info.fps)
    assert info.duration_s == pytest.approx(3.0) and info.fps == pytest.approx(10.0)
    clip = read_clip(path, 8, size=None)
    assert [frame_index(f) for f in clip.frames] == TSN_30_8
    np.testing.assert_allclose(clip.timestamps_s, np.array(TSN_30_8) / 10.0, atol=1e-3)
    assert clip.info == info and not clip.repeated


MKV_LIES = {   # name: set_mkv_duration arguments (the real clip: 3 s)
    "tag-inf": dict(tag="00:00:inf"),
    "tag-nan": dict(tag="00:00:nan"),
    "tag-negative": dict(tag="00:00:-5.0"),
    "tag-tiny": dict(tag="00:00:1e-9"),
    "tag-overflow": dict(tag="00:00:1e309"),
    "tag-short": dict(tag="00:00:01.000000000"),
    "tag-long": dict(tag="00:00:05.000000000"),
    "segment-negative": dict(segment_ms=-5000.0, drop_tag=True),
    "segment-tiny": dict(segment_ms=1e-6, drop_tag=True),
    "segment-inf": dict(segment_ms=float("inf"), drop_tag=True),
    "segment-nan": dict(segment_ms=float("nan"), drop_tag=True),
    "segment-far-beyond": dict(segment_ms=1e9, drop_tag=True),
    "both-short": dict(segment_ms=1000.0, tag="00:00:01.000000000"),
    "both-long": dict(segment_ms=20000.0, tag="00:00:20.000000000"),
    "both-inf": dict(segment_ms=float("inf"), tag="00:00:inf"),
}


@pytest.mark.parametrize("lie", list(MKV_LIES))
def test_lying_matroska_duration_gives_the_real_frames(tmp_path, lie):
    path = set_mkv_duration(write_clip(tmp_path / f"{lie}.mkv", 30, 10.0, gop=10), **MKV_LIES[lie])
    before = resources()
    _check_true_frames(path)
    assert resources() == before


@pytest.mark.parametrize("ticks", [1, 10240])   # the track's timescale is 10240: 0.1 ms and 1 s of a 3 s clip
def test_lying_mp4_media_duration_gives_the_real_frames(tmp_path, ticks):
    path = write_clip(tmp_path / "a.mp4", 30, 10.0, gop=10)
    with av.open(str(path)) as c:
        assert c.streams.video[0].time_base == Fraction(1, 10240)
    _check_true_frames(set_mp4_media_duration(path, ticks))


@pytest.mark.parametrize("edit,want", [("end", TSN_30_8), ("middle", [40 + i for i in TSN_30_8])])
def test_edit_lists_still_choose_the_frames(tmp_path, edit, want):
    """Normal files whose index reaches past their duration: MP4 edit lists (here keeping 3 s of 9 s)."""
    path = write_clip(tmp_path / "b.mp4", 90, 10.0, gop=20, options={"qp": "12"})   # B-frames: an edit list
    segment, media_time = mp4_edit(path)
    start = media_time if edit == "end" else media_time + 40 * 1024   # 1024 track ticks a frame
    set_mp4_edit(path, segment // 3, start)
    clip = read_clip(path, 8, size=None)
    assert [frame_index(f) for f in clip.frames] == want
    assert clip.info.duration_s == pytest.approx(3.0)


# ----------------------------------------------------------------------------- 4. errors name the file

@pytest.mark.parametrize("make", [
    lambda d: (os.symlink(d / "b", d / "a"), os.symlink(d / "a", d / "b"), d / "a")[-1],
    lambda d: (os.symlink(d / "loop", d / "loop"), d / "loop" / "x.mp4")[-1],
    lambda d: (os.symlink("self.mp4", d / "self.mp4"), d / "self.mp4")[-1],
], ids=["a-b-a", "looping-directory", "self"])
def test_symlink_loops_are_not_found(tmp_path, make):
    path = make(tmp_path)
    for call in (probe, read_clip):
        with pytest.raises(VideoNotFoundError) as excinfo:
            call(path)
        assert isinstance(excinfo.value, FileNotFoundError)
        assert "symbolic link loop" in one_line(excinfo.value, path)


@pytest.mark.parametrize("where,error", [
    ("probe", OverflowError("cannot convert float infinity to integer")),
    ("probe", ValueError("duration_s must be >= 0, got nan")),
    ("probe", FileNotFoundError(2, "No such file or directory")),
    ("read", av.error.ArgumentError(22, "Invalid argument")),
    ("read", ZeroDivisionError("float division by zero")),
    ("read", RuntimeError("something PyAV did not expect")),
])
def test_low_level_failures_become_one_line_video_errors(tmp_path, monkeypatch, where, error):
    path = write_clip(tmp_path / "a.mp4", 10, 10.0)

    def fail(*args, **kwargs):
        raise error
    if where == "probe":
        monkeypatch.setattr(decoder_module, "timing", fail)
    else:
        monkeypatch.setattr(sampling_module, "_to_rgb", fail)
    before = resources()
    for call in ([probe] if where == "probe" else []) + [read_clip]:
        with pytest.raises(VideoError) as excinfo:
            call(path)
        message = one_line(excinfo.value, path)
        if isinstance(error, FileNotFoundError):
            assert "cannot be read (No such file or directory)" in message
        else:
            assert isinstance(excinfo.value, CorruptVideoError) and type(error).__name__ in message, message
        assert excinfo.value.__cause__ is error and error.__traceback__ is None
    assert resources() == before
