"""nsnet.video: exact frames, timestamps and metadata on every format; one error per bad input.

Clips are written on the fly by ``clips.write_clip``: frame i shows the index i in big
blocks, so each test checks exactly which frames came back.
"""
from __future__ import annotations

import gc
import json
import logging
import math
import os
import re
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clips import channel_order, encoder_available, frame_index, make_frame, write_clip
from nsnet import video as V
from nsnet.video import (Clip, CorruptVideoError, DecodeTimeoutError, EmptyVideoError, NoDecodableFramesError,
                         NotAVideoError, NoVideoStreamError, StillImageError, TruncatedVideoError, VideoError,
                         VideoInfo, VideoNotFoundError, probe, read_clip, segment_centres)
from nsnet.video.decoder import Decoder
from nsnet.video.sampling import Sampler, Workers

N, FPS, T = 30, 10.0, 8
TSN_30_8 = [2, 6, 9, 13, 17, 21, 24, 28]   # (t + 0.5) * 30 / 8 = 1.875, 5.625, 9.375, ... to the nearest frame


def tsn(n: int, t: int) -> list[int]:
    """Frame nearest each TSN centre of n constant-rate frames: (i + 1/2) * n / t rounded, a half down (exact),
    at most the last frame."""
    return [min(n - 1, math.ceil(Fraction(2 * i + 1, 2) * n / t - Fraction(1, 2))) for i in range(t)]


def nearest(times, centres) -> list[int]:
    """Index of the frame shown nearest each centre, by brute force (microsecond ties go to the earlier frame)."""
    times = np.asarray(times, np.float64)
    return [int(np.argmin(np.round(np.abs(times - c), 6))) for c in centres]


def indices(clip: Clip) -> list[int]:
    return [frame_index(f) for f in clip.frames]


def resources() -> tuple[int, int, int]:
    """(open file descriptors, Python threads, OS threads: Python's and FFmpeg's decoder threads) of this process."""
    return len(os.listdir("/proc/self/fd")), threading.active_count(), len(os.listdir("/proc/self/task"))


def resources_after(before: tuple[int, int, int]) -> tuple[int, int, int]:
    """resources() right after a call, to compare with `before` (taken before it).

    Open files and Python threads are counted at once: read_clip joins its worker threads
    before it returns. A joined thread may stay listed by the OS a moment longer (join
    returns just before the thread ends), so the OS count gets up to a second to come back
    down; a leaked decoder keeps its threads for good, and the count stays up.
    """
    now, end = resources(), time.monotonic() + 1.0
    while now[2] > before[2] and time.monotonic() < end:
        time.sleep(0.001)
        now = resources()
    return now


def decode_all(path) -> list:
    with av.open(str(path)) as c:
        return list(c.decode(c.streams.video[0]))


# ----------------------------------------------------------------------------- helpers under test

def test_frame_code_roundtrip_and_orientation_check():
    img = make_frame(123457, (64, 48))
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert frame_index(img) == 123457 and channel_order(img) == "rgb"
    assert channel_order(img[..., ::-1]) == "bgr"
    for turned in (np.rot90(img), np.rot90(img, 2), img[:, ::-1], img[::-1]):
        with pytest.raises(ValueError, match="orientation"):
            frame_index(turned)


def test_segment_centres_are_tsn():
    np.testing.assert_allclose(segment_centres(8.0, 4), [1.0, 3.0, 5.0, 7.0])
    assert segment_centres(8.0, 4).dtype == np.float64
    with pytest.raises(ValueError):
        segment_centres(8.0, 0)


# ----------------------------------------------------------------------------- formats

FORMATS = [  # (extension, codec, pix_fmt written, decoded pix_fmt, codec name reported)
    ("mp4", "h264", "yuv420p", "yuv420p", "h264"),
    ("mov", "h264", "yuv420p", "yuv420p", "h264"),
    ("mkv", "h264", "yuv420p", "yuv420p", "h264"),
    ("mp4", "h264", "yuv444p", "yuv444p", "h264"),
    ("mp4", "h264", "yuv420p10le", "yuv420p10le", "h264"),
    ("mp4", "hevc", "yuv420p", "yuv420p", "hevc"),
    ("mkv", "hevc", "yuv420p10le", "yuv420p10le", "hevc"),
    ("webm", "vp9", "yuv420p", "yuv420p", "vp9"),
    ("webm", "vp9", "yuv444p", "yuv444p", "vp9"),
    ("mkv", "av1", "yuv420p", "yuv420p", "av1"),
    ("mp4", "av1", "yuv420p10le", "yuv420p10le", "av1"),
    ("webm", "av1", "yuv420p", "yuv420p", "av1"),
    ("avi", "mpeg4", "yuv420p", "yuv420p", "mpeg4"),
    ("avi", "mjpeg", "yuvj420p", "yuvj420p", "mjpeg"),
    ("mov", "mjpeg", "yuvj444p", "yuvj444p", "mjpeg"),
    ("mov", "prores", "yuv422p10le", "yuv422p10le", "prores"),
    ("mov", "prores", "yuv444p10le", "yuv444p12le", "prores"),
    ("gif", "gif", "rgb8", "bgra", "gif"),
    ("mkv", "ffv1", "gray", "gray", "ffv1"),
    ("mp4", "hevc", "gray", "gray", "hevc"),
    ("mov", "png", "gray", "gray", "png"),
]


@pytest.mark.parametrize("ext,codec,pix_fmt,decoded_fmt,codec_name", FORMATS,
                         ids=[f"{c}-{p}.{e}" for e, c, p, _, _ in FORMATS])
def test_format_reads_exact_frames(tmp_path, ext, codec, pix_fmt, decoded_fmt, codec_name):
    if not encoder_available(codec):
        pytest.skip(f"this PyAV build cannot write {codec}")
    path = write_clip(tmp_path / f"clip.{ext}", N, FPS, (64, 48), codec, pix_fmt)
    clip = read_clip(path, T, size=None)
    assert clip.frames.shape == (T, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert indices(clip) == TSN_30_8
    np.testing.assert_allclose(clip.timestamps_s, np.array(TSN_30_8) / FPS, atol=1e-3)
    assert clip.timestamps_s.dtype == np.float64 and not clip.repeated
    assert channel_order(clip.frames[0]) == ("gray" if pix_fmt == "gray" else "rgb")
    info = clip.info
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert (info.codec, info.pix_fmt) == (codec_name, decoded_fmt)
    assert info.fps == pytest.approx(FPS) and info.duration_s == pytest.approx(N / FPS, abs=0.02)
    assert info.num_frames in (N, None) and not info.has_audio


def test_probe_matches_read_clip_and_is_json_safe(tmp_path):
    path = write_clip(tmp_path / "a.mp4", N, FPS, (64, 48), audio=True)
    info = probe(path)
    assert info == read_clip(path, 4).info
    assert (info.num_frames, info.has_audio, info.codec) == (N, True, "h264")
    assert "mp4" in info.container
    d = json.loads(json.dumps(info.to_dict()))
    assert {"path", "duration_s", "fps", "width", "height", "num_frames"} <= d.keys()


def test_probe_decodes_only_the_first_frame(tmp_path, caplog):
    path = write_clip(tmp_path / "long.mp4", 300, 30.0, (64, 48), gop=30)
    with caplog.at_level(logging.DEBUG, logger="nsnet.video"):
        probe(path)
    assert "after decoding 1 frame(s)" in caplog.text


@pytest.mark.parametrize("size,shape", [(32, (32, 43)), (96, (96, 128)), (None, (48, 64))])
def test_size_sets_the_shorter_side(tmp_path, size, shape):
    path = write_clip(tmp_path / "s.mp4", N, FPS, (64, 48))
    clip = read_clip(path, T, size=size)
    assert clip.frames.shape == (T, *shape, 3)
    assert indices(clip) == TSN_30_8


def test_odd_sizes(tmp_path):
    for name, codec, pix in [("odd.mp4", "h264", "yuv444p"), ("odd.avi", "mjpeg", "yuvj444p"), ("odd.mkv", "ffv1", "yuv444p")]:
        path = write_clip(tmp_path / name, N, FPS, (75, 53), codec, pix)
        clip = read_clip(path, T, size=None)
        assert clip.frames.shape == (T, 53, 75, 3), name
        assert indices(clip) == TSN_30_8, name
        assert read_clip(path, T, size=31).frames.shape == (T, 31, 44, 3)   # 75 * 31 / 53 = 43.9


def test_anamorphic_pixels_are_stretched_to_the_display_size(tmp_path):
    path = write_clip(tmp_path / "sar.mkv", N, FPS, (64, 48), sample_aspect_ratio=Fraction(2))
    assert (decode_all(path)[0].width, probe(path).width) == (32, 64)
    clip = read_clip(path, T, size=None)
    assert clip.frames.shape == (T, 48, 64, 3) and indices(clip) == TSN_30_8


# ----------------------------------------------------------------------------- rotation, VFR, duration

@pytest.mark.parametrize("ext,rotation", [("mp4", 90), ("mov", 180), ("mkv", 270), ("mp4", 270)])
def test_rotated_videos_come_out_upright(tmp_path, ext, rotation):
    path = write_clip(tmp_path / f"r.{ext}", N, FPS, (48, 64), rotation=rotation)   # portrait display
    stored = decode_all(path)[0]
    assert (stored.width, stored.height) == ((64, 48) if rotation % 180 else (48, 64))
    clip = read_clip(path, T, size=None)
    assert clip.info.rotation == rotation and (clip.info.width, clip.info.height) == (48, 64)
    assert clip.frames.shape == (T, 64, 48, 3)
    assert indices(clip) == TSN_30_8          # frame_index raises unless upright
    assert read_clip(path, T, size=24).frames.shape == (T, 32, 24, 3)


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate_reports_real_timestamps(tmp_path, ext):
    times = [0.0, 0.1, 0.15, 0.4, 1.0, 1.033, 1.066, 2.0] + [2.1 + 0.05 * i for i in range(22)]
    path = write_clip(tmp_path / f"vfr.{ext}", len(times), 30.0, timestamps_s=times)
    clip = read_clip(path, T, size=None)
    centres = segment_centres(clip.info.duration_s, T)
    expected = nearest(times, centres)
    assert indices(clip) == expected
    np.testing.assert_allclose(clip.timestamps_s, np.array(times)[expected], atol=1e-3)
    assert clip.repeated == (len(set(expected)) < T)


def test_missing_duration_is_found_by_one_packet_pass(tmp_path):
    path = write_clip(tmp_path / "pipe.mkv", 40, FPS, seekable=False)   # no duration, no cues
    with av.open(str(path)) as c:
        assert c.duration is None and not c.streams.video[0].metadata.get("DURATION")
    clip = read_clip(path, T, size=None)
    assert clip.info.duration_s == pytest.approx(4.0) and clip.info.num_frames == 40
    assert indices(clip) == tsn(40, T)


def test_raw_h264_without_timestamps(tmp_path):
    path = write_clip(tmp_path / "raw.h264", N, FPS)
    clip = read_clip(path, T, size=None)
    assert clip.info.fps == pytest.approx(FPS) and clip.info.duration_s == pytest.approx(3.0)
    assert indices(clip) == TSN_30_8
    np.testing.assert_allclose(clip.timestamps_s, np.array(TSN_30_8) / FPS, atol=1e-6)


@pytest.mark.parametrize("n,t", [(5, 8), (1, 4), (8, 8)])
def test_fewer_frames_than_t_repeat_and_say_so(tmp_path, n, t):
    path = write_clip(tmp_path / "short.mp4", n, FPS)
    clip = read_clip(path, t, size=None)
    assert indices(clip) == tsn(n, t)
    assert clip.num_frames == t and clip.repeated == (n < t)
    assert np.all(np.diff(clip.timestamps_s) >= 0)


# ----------------------------------------------------------------------------- decoding strategy

def _decode_stats(caplog) -> tuple[int, int]:
    decoded, seeks = re.search(r"decoded (\d+) frames with (\d+) seek", caplog.text).groups()
    return int(decoded), int(seeks)


def _cheapest_decode(want: list[int], gop: int, seek_cost: int) -> int:
    """Frames decoded when each gap is crossed the cheaper way: decode on, or seek to the keyframe."""
    total, position = 1, 0
    for i in want:
        total += min(i - position, i - i // gop * gop + seek_cost) + 1   # ... + the frame after the target
        position = i + 1
    return total


@pytest.mark.parametrize("n,t", [(600, 10), (147, 16)])
def test_sampling_decodes_no_more_than_the_cheaper_of_seeking_or_decoding_on(tmp_path, caplog, n, t):
    # Lossy settings so x264 uses B-frames: MP4 then indexes keyframes by decode time, 2 frames
    # before they are shown; several sample points are the frame just before a keyframe.
    gop = 16
    path = write_clip(tmp_path / "long.mp4", n, 30.0, (64, 48), gop=gop, options={"qp": "12"})
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.has_b_frames
    with caplog.at_level(logging.DEBUG, logger="nsnet.video"):
        clip = read_clip(path, t, size=32, threads=1)
    want = tsn(n, t)
    assert indices(clip) == want and sum(i % gop == gop - 2 for i in want) >= 2
    decoded, seeks = _decode_stats(caplog)
    assert decoded <= _cheapest_decode(want, gop, seek_cost=3)
    if n // t > gop:   # sample points more than a GOP apart: exactly one seek each
        assert seeks == t


def test_close_samples_decode_in_one_pass(tmp_path, caplog):
    path = write_clip(tmp_path / "short.mp4", 60, FPS, (64, 48), gop=250)
    with caplog.at_level(logging.DEBUG, logger="nsnet.video"):
        clip = read_clip(path, 16, size=32, threads=1)
    assert indices(clip) == tsn(60, 16)
    decoded, seeks = _decode_stats(caplog)
    assert seeks == 0 and decoded <= 60


def test_seek_path_matches_full_decode_on_matroska(tmp_path):
    path = write_clip(tmp_path / "long.mkv", 400, 25.0, (64, 48), gop=25)
    assert indices(read_clip(path, 12, size=None, threads=2)) == tsn(400, 12)


# ----------------------------------------------------------------------------- bad input

def _write_png(path: Path) -> Path:
    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream("png")
        s.width, s.height, s.pix_fmt = 64, 48, "rgb24"
        for packet in s.encode(av.VideoFrame.from_ndarray(make_frame(3), format="rgb24")):
            c.mux(packet)
    return path


def _write_audio_only(path: Path, cover_art: bool = False) -> Path:
    """One second of AAC in MP4, optionally with an attached cover picture (a video stream that is not video)."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=48000)
        s.layout = "mono"
        if cover_art:
            pic = c.add_stream("mjpeg")
            pic.width, pic.height, pic.pix_fmt = 64, 48, "yuvj420p"
            pic.disposition = av.stream.Disposition.attached_pic
            c.mux(pic.encode(av.VideoFrame.from_ndarray(make_frame(1), format="rgb24")) + pic.encode())
        tone = (0.2 * np.sin(np.arange(48000) / 10)).astype(np.float32)[None]
        for start in range(0, 48000 - 1024, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start:start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path


def _corrupt_packets(src: Path, dst: Path, lo: float, hi: float) -> Path:
    """Copy `src` with the payload of the video packets in [lo, hi) (fractions of the count) randomised."""
    data = bytearray(src.read_bytes())
    with av.open(str(src)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    rng = np.random.default_rng(0)
    for pos, size in packets[int(len(packets) * lo):int(len(packets) * hi)]:
        keep = min(size // 4, 8)
        data[pos + keep:pos + size] = rng.integers(0, 256, size - keep, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


BAD_INPUTS = {
    "missing": (VideoNotFoundError, "no such file", lambda d: d / "nope.mp4"),
    "directory": (VideoNotFoundError, "not a regular file", lambda d: d),
    "empty": (EmptyVideoError, "empty file", lambda d: _write_bytes(d / "e.mp4", b"")),
    "text": (NotAVideoError, "not a video", lambda d: _write_bytes(d / "t.mp4", b"not a video\n" * 300)),
    "random-bytes": (NotAVideoError, "not a video",
                     lambda d: _write_bytes(d / "r.mkv", np.random.default_rng(1).bytes(40_000))),
    "audio-only": (NoVideoStreamError, "no video track (audio only)", lambda d: _write_audio_only(d / "a.m4a")),
    "audio-with-cover-art": (NoVideoStreamError, "no video track (audio only)",
                             lambda d: _write_audio_only(d / "c.m4a", cover_art=True)),
    "png": (StillImageError, "still image (PNG)", lambda d: _write_png(d / "p.png")),
    "png-named-mp4": (StillImageError, "still image", lambda d: _write_png(d / "p.png").rename(d / "p.mp4") or d / "p.mp4"),
    "truncated-mp4": (TruncatedVideoError, "truncated", lambda d: _truncate(write_clip(d / "f.mp4", 60, FPS), d / "x.mp4", 0.5)),
    "truncated-faststart-mp4": (TruncatedVideoError, "truncated", lambda d: _truncate(
        write_clip(d / "f.mp4", 60, FPS, container_options={"movflags": "faststart"}), d / "x.mp4", 0.6)),
    "truncated-mkv": (TruncatedVideoError, "frames stop at", lambda d: _truncate(write_clip(d / "f.mkv", 60, FPS), d / "x.mkv", 0.5)),
    "truncated-avi": (TruncatedVideoError, "truncated", lambda d: _truncate(
        write_clip(d / "f.avi", 60, FPS, codec="mjpeg"), d / "x.avi", 0.5)),
    "no-frames": (NoDecodableFramesError, "has no frames", lambda d: write_clip(d / "z.avi", 0, FPS)),
    "all-packets-corrupt-h264": (NoDecodableFramesError, "can be decoded", lambda d: _corrupt_packets(
        write_clip(d / "f.mp4", 60, FPS), d / "x.mp4", 0, 1)),
    "all-packets-corrupt-mjpeg": (NoDecodableFramesError, "can be decoded", lambda d: _corrupt_packets(
        write_clip(d / "f.avi", 60, FPS, codec="mjpeg"), d / "x.avi", 0, 1)),
    "mostly-corrupt": (CorruptVideoError, "too damaged", lambda d: _corrupt_packets(
        write_clip(d / "f.mp4", 60, FPS, gop=10), d / "x.mp4", 0.2, 0.9)),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_one_clear_line_and_leaks_nothing(tmp_path, case):
    error, words, make = BAD_INPUTS[case]
    path = make(tmp_path)
    before = resources()
    with pytest.raises(error) as excinfo:
        read_clip(path, T, threads=2)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, VideoError)
    assert "\n" not in message and message.startswith(f"{path}: ") and words in message, message
    assert len(message) < 200 and "Traceback" not in message and "Errno" not in message
    assert resources_after(before) == before, "file handles or decoder threads left open"
    if case not in ("truncated-mkv", "mostly-corrupt"):   # found by sampling, not by probing
        with pytest.raises(error):
            probe(path)
        assert resources_after(before) == before


def test_missing_file_is_also_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope.mov")


@pytest.mark.parametrize("ext,codec", [("mp4", "h264"), ("avi", "mjpeg")])
def test_corrupt_packets_mid_stream_are_skipped(tmp_path, ext, codec):
    clean = write_clip(tmp_path / f"clean.{ext}", 60, FPS, codec=codec, gop=10)
    path = _corrupt_packets(clean, tmp_path / f"bad.{ext}", 0.4, 0.5)   # frames 24..29 damaged
    before = resources()
    clip = read_clip(path, T, size=None, threads=2)
    assert resources_after(before) == before
    want = tsn(60, T)                      # [4, 11, 19, 26, 34, 41, 49, 56]; 26 is damaged
    got = indices(clip)
    assert got == [23 if i == 26 else i for i in want]   # the nearest good frame: 23 (not 30) for 26.25
    np.testing.assert_allclose(clip.timestamps_s, np.array(got) / FPS, atol=1e-3)


def test_time_budget(tmp_path):
    path = write_clip(tmp_path / "a.mp4", 60, FPS)
    before = resources()
    with pytest.raises(DecodeTimeoutError, match=r"longer than the 1e-06 s time budget"):
        read_clip(path, T, time_budget_s=1e-6, threads=2)
    assert resources_after(before) == before
    assert indices(read_clip(path, T, size=None, time_budget_s=None)) == tsn(60, T)


def test_success_leaks_nothing(tmp_path):
    path = write_clip(tmp_path / "a.mkv", 200, 25.0, gop=25)
    read_clip(path, T, threads=2)   # warm up lazily created library state
    before = resources()
    for _ in range(3):
        read_clip(path, T, threads=2)
    assert resources_after(before) == before


def test_bad_arguments():
    with pytest.raises(ValueError):
        read_clip("whatever.mp4", 0)
    with pytest.raises(ValueError):
        read_clip("whatever.mp4", 4, size=0)


def test_video_info_is_frozen(tmp_path):
    info = probe(write_clip(tmp_path / "a.mp4", 10, FPS))
    assert isinstance(info, VideoInfo)
    with pytest.raises(Exception):
        info.fps = 1.0   # type: ignore[misc]
    assert V.__all__ and all(hasattr(V, name) for name in V.__all__)


# ----------------------------------------------------------------------------- parallel decoders, skipped frames

def _decoders(caplog) -> tuple[int, int]:
    """(decoders that sampled, packets fed with skip_frame=NONREF) from the last read_clip debug line."""
    found = re.findall(r"(\d+) decoder\(s\), (\d+) packets fed with skip_frame=NONREF", caplog.text)
    assert found, "no read_clip debug line"
    return int(found[-1][0]), int(found[-1][1])


def _settled_resources() -> tuple[int, int, int]:
    """resources() once the test's own PyAV objects (decoders with threads) are collected."""
    gc.collect()
    return resources()


def _nonref_dropped(path) -> set[int]:
    """Indices of the frames a decoder with skip_frame="NONREF" does not return (non-reference frames)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        kept = {frame_index(f.to_ndarray(format="rgb24")) for f in c.decode(stream)}
    return set(range(max(kept) + 1)) - kept


def _long_clip(path: Path, codec: str = "h264", n: int = 600) -> Path:
    """20 s at 30 fps, a keyframe every 2 s, B-frames (lossy H.264: most of them non-reference)."""
    options = {"qp": "12"} if codec == "h264" else None   # x264 uses no B-frames when lossless
    return write_clip(path, n, 30.0, (64, 48), codec, gop=60, options=options)


@pytest.mark.parametrize("ext,codec", [("mp4", "h264"), ("mkv", "h264"), ("mp4", "hevc")])
def test_parallel_decoders_skipping_nonref_frames_match_a_full_decode(tmp_path, caplog, monkeypatch, ext, codec):
    if not encoder_available(codec):
        pytest.skip(f"this PyAV build cannot write {codec}")
    n, t = 600, 16
    path = _long_clip(tmp_path / f"long.{ext}", codec, n)
    assert len(_nonref_dropped(path)) > n // 4
    reference = decode_all(path)
    assert sum(f.key_frame for f in reference) >= 5
    probed_closed = []
    sibling = Decoder.sibling

    def spy(self, threads=1):
        probed_closed.append(self.container is None)   # the probing decoder is gone before the workers open
        return sibling(self, threads)

    monkeypatch.setattr(Decoder, "sibling", spy)
    read_clip(path, t, threads=2)   # warm up lazily created library state
    before = _settled_resources()
    clips = {}
    for threads in (2, 1):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="nsnet.video"):
            clips[threads] = read_clip(path, t, size=None, threads=threads)
        decoders, nonref = _decoders(caplog)
        assert decoders == threads and nonref > 0, caplog.text   # both paths skip non-reference frames
        assert resources_after(before) == before, "file handles or decoder threads left open"
    assert probed_closed and all(probed_closed)
    want = tsn(n, t)
    for threads, clip in clips.items():
        assert indices(clip) == want
        np.testing.assert_array_equal(clip.timestamps_s, [float(reference[i].time) for i in want])
        for k, i in enumerate(want):   # bit-identical to the frame a full decode shows at that instant
            ref = reference[i].reformat(width=64, height=48, format="rgb24", interpolation="AREA").to_ndarray()
            np.testing.assert_array_equal(clip.frames[k], ref, err_msg=f"threads={threads} sample {k} (frame {i})")


def test_one_keyframe_keeps_one_frame_threaded_decoder(tmp_path, caplog):
    n, t = 300, 16
    path = write_clip(tmp_path / "one-gop.mp4", n, 30.0, (64, 48), gop=n,
                      options={"qp": "12", "x264-params": "scenecut=0"})
    reference = decode_all(path)
    assert sum(f.key_frame for f in reference) == 1 and _nonref_dropped(path)
    with caplog.at_level(logging.DEBUG, logger="nsnet.video"):
        clip = read_clip(path, t, size=None, threads=2)
    decoders, nonref = _decoders(caplog)
    assert decoders == 1 and nonref > 0
    assert indices(clip) == tsn(n, t)
    np.testing.assert_array_equal(clip.timestamps_s, [float(reference[i].time) for i in tsn(n, t)])


def test_skipped_frame_on_screen_before_a_gap_is_decoded_again(tmp_path, caplog):
    # Bursts of 30 frames at 30 fps, 3 s apart; x264 with 3 B-frames that are never references,
    # so the frame on screen during some gaps is non-reference and shown long before the sample
    # point: skipping drops it, and the reader must notice and decode that stretch again.
    times = [3.0 * k + j / 30 for k in range(5) for j in range(30)]
    path = write_clip(tmp_path / "gaps.mp4", len(times), 30.0, timestamps_s=times, gop=60,
                      options={"qp": "12", "x264-params": "bframes=3:b-pyramid=none:b-adapt=0:scenecut=0"})
    assert _nonref_dropped(path) & {30 * k + 29 for k in range(5)}   # a frame before a gap is non-reference
    decoded_again = 0
    for t in range(3, 12):
        for threads in (1, 2):
            caplog.clear()
            with caplog.at_level(logging.DEBUG, logger="nsnet.video"):
                clip = read_clip(path, t, size=None, threads=threads)
            centres = segment_centres(clip.info.duration_s, t)
            expected = nearest(times, centres)
            assert indices(clip) == expected, (t, threads)
            np.testing.assert_allclose(clip.timestamps_s, np.array(times)[expected], atol=1e-3)
            decoded_again += "decoding that stretch again without skipping" in caplog.text
    assert decoded_again > 0


def test_damaged_long_clip_with_parallel_decoders(tmp_path, caplog):
    gops = {"x264-params": "keyint=30:min-keyint=30:scenecut=0"}   # a keyframe every 30 frames exactly
    clean = write_clip(tmp_path / "clean.mp4", 600, 30.0, (64, 48), options=gops)
    path = _corrupt_packets(clean, tmp_path / "bad.mp4", 0.4, 0.45)   # frames 240..269 (one GOP) damaged
    read_clip(clean, 16, threads=2)   # warm up lazily created library state
    before = _settled_resources()
    with caplog.at_level(logging.DEBUG, logger="nsnet.video"):
        clip = read_clip(path, 16, size=None, threads=2)
    assert resources_after(before) == before
    assert _decoders(caplog)[0] == 2 and "skipped" in caplog.text and "damaged packets/frames" in caplog.text
    got = indices(clip)
    assert got == [239 if 240 <= i < 270 else i for i in tsn(600, 16)]   # the last good frame before it
    np.testing.assert_allclose(clip.timestamps_s, np.array(got) / 30, atol=1e-3)
    assert indices(read_clip(path, 16, size=None, threads=1)) == got
    mostly = _corrupt_packets(clean, tmp_path / "mostly.mp4", 0.2, 0.9)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="nsnet.video"), pytest.raises(CorruptVideoError, match="too damaged"):
        read_clip(mostly, 16, threads=2)
    assert "2 parallel decoders" in caplog.text
    assert resources_after(before) == before


def test_time_budget_stops_parallel_decoders(tmp_path, monkeypatch):
    path = _long_clip(tmp_path / "long.mp4")
    read_clip(path, 16, threads=2)   # warm up lazily created library state
    opened = []
    sibling = Decoder.sibling

    def expiring(self, threads=1):
        other = sibling(self, threads)
        other.deadline.end = time.monotonic()   # the budget runs out as the workers start
        opened.append(other)
        return other

    monkeypatch.setattr(Decoder, "sibling", expiring)
    before = _settled_resources()
    with pytest.raises(DecodeTimeoutError, match="longer than the 30 s time budget") as excinfo:
        read_clip(path, 16, time_budget_s=30.0, threads=2)
    assert str(excinfo.value).startswith(f"{path}: ") and "\n" not in str(excinfo.value)
    assert len(opened) == 2 and all(v.container is None for v in opened)
    assert resources_after(before) == before, "file handles or decoder threads left open"


def test_a_failing_parallel_decoder_stops_the_others(tmp_path, monkeypatch):
    path = _long_clip(tmp_path / "long.mp4")
    read_clip(path, 16, threads=3)   # warm up lazily created library state
    run, calls, outcomes = Sampler.run, [], []

    def failing(self):
        calls.append(self)
        if len(calls) == 2:   # one worker fails ...
            raise CorruptVideoError(self.video.path, "simulated failure")
        end = time.monotonic() + 10
        while not self.video.deadline.cancelled and time.monotonic() < end:
            time.sleep(0.001)   # ... and the others start once it has
        try:
            run(self)
        except Exception as err:
            outcomes.append(type(err).__name__)
            raise
        outcomes.append("finished")

    monkeypatch.setattr(Sampler, "run", failing)
    before = _settled_resources()
    with pytest.raises(CorruptVideoError, match="simulated failure") as excinfo:
        read_clip(path, 16, threads=3)
    assert type(excinfo.value) is CorruptVideoError and len(calls) == 3
    assert outcomes == ["Cancelled", "Cancelled"]   # stopped at their first packet
    assert resources_after(before) == before, "file handles or decoder threads left open"


def test_data_ending_before_a_later_run_samples_again_with_one_decoder(tmp_path, caplog, monkeypatch):
    path = _long_clip(tmp_path / "long.mp4")
    merge = Workers.merge

    def ended_early(self, samplers):
        merge(self, samplers)
        self.complete = False   # as if a run before the last had found the data ending

    monkeypatch.setattr(Workers, "merge", ended_early)
    read_clip(path, 16, threads=2)   # warm up lazily created library state
    before = _settled_resources()
    with caplog.at_level(logging.DEBUG, logger="nsnet.video"):
        clip = read_clip(path, 16, size=None, threads=2)
    assert "sampling again with one decoder" in caplog.text and _decoders(caplog)[0] == 1
    assert indices(clip) == tsn(600, 16)
    assert resources_after(before) == before


# ----------------------------------------------------------------------------- benchmark CLI (tiny)

def test_decode_benchmark_cli_runs_and_reports(tmp_path, capsys):
    from nsnet.benchmarks import decode as bench

    out = tmp_path / "bench.json"
    argv = ["--workdir", str(tmp_path / "work"), "--height", "72", "--short-min", "0.1", "--long-min", "0.6",
            "--gop-s", "1", "--frames", "4", "--size", "32", "--repeats", "1", "--skip-8k", "--json", str(out)]
    rc = bench.main(argv)
    report = json.loads(out.read_text())
    cases = {r["case"]: r for r in report["rows"]}
    assert set(cases) == {"sample-short", "sample-long", "decode-all"}
    assert cases["sample-short"]["frames_out"] == 4 and cases["decode-all"]["frames_out"] == 180   # 6 s at 30 fps
    assert all(r["peak_rss_bytes"] > 10 * 2**20 and r["seconds"] > 0 for r in report["rows"])
    assert rc == (0 if all(t["pass"] for t in report["targets"]) else 1) and len(report["targets"]) == 2
    table = capsys.readouterr().out
    assert "| sample-long | 0.6 min 128x72 | 4 |" in table and re.search(r"(PASS|FAIL)  decode-all", table)
    clip = probe(next((tmp_path / "work").glob("clip-*-36s-*.mp4")))
    assert clip.duration_s == pytest.approx(36.0) and (clip.width, clip.height) == (128, 72)
