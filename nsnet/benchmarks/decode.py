"""``python -m nsnet bench decode``: cost of sampling T frames with ``nsnet.video.read_clip``.

Cases, each run in its own child process so its peak RSS (``ru_maxrss``) is its own:

- ``sample-short`` / ``sample-long``: ``read_clip(T=16, size=224)`` on a 10- and a
  60-minute clip (720p30 H.264 at ~2.5 Mbit/s, keyframe every 4 s, B-frames; lengths,
  resolution and GOP are options);
- ``decode-all``: decoding every frame of the short clip (no RGB conversion: the
  cheapest "read everything" there is);
- ``sample-8k``: ``read_clip`` on a 20-second 7680x4320 clip.

Clips are generated once into ``--workdir`` and reused: a segment is encoded, then
copied packet by packet (timestamps shifted) to the full length, so a 60-minute clip
takes seconds to make. Targets (PASS/FAIL): long/short sampling time <= 1.5; decode-all /
short sampling time >= 5; peak RSS on 8K < 1 GiB.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

GiB = 1 << 30


# ----------------------------------------------------------------------------- clip generation

def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random luma texture (uint8), twice the frame width so it can scroll."""
    rng = np.random.default_rng(seed)
    small = rng.random((height // 16 + 2, width // 8 + 2))
    big = np.kron(small, np.ones((16, 16)))[:height, :2 * width]   # blocky noise
    y, x = np.mgrid[0:height, 0:2 * width]
    waves = np.sin(x / 37.0) * np.cos(y / 23.0)
    return np.clip(60 + 90 * big + 40 * waves, 0, 255).astype(np.uint8)


def _segment_frames(width: int, height: int, fps: int, seconds: float):
    """yuv420p frames: a scrolling texture, a moving block and sensor-like noise (~2.5 Mbit/s at 720p30)."""
    tex = _texture(height, width)
    grain = np.random.default_rng(1).integers(-6, 7, (height, width + 64), dtype=np.int8)
    chroma = np.full((height // 2, width), 128, np.uint8)   # U and V planes stacked, (H/2, W)
    for i in range(int(round(seconds * fps))):
        shift, g = (4 * i) % width, (7 * i) % 64
        luma = tex[:, shift:shift + width] + grain[:, g:g + width].astype(np.int16)
        bx, by = (11 * i) % max(1, width - width // 8), (7 * i) % max(1, height - height // 8)
        luma[by:by + height // 8, bx:bx + width // 8] = 235
        luma = np.clip(luma, 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")
        frame.pts = i
        yield frame


def _encode_segment(path: Path, width: int, height: int, fps: int, seconds: float, gop: int, preset: str) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"preset": preset, "crf": "23",
                          "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=error"}
        for frame in _segment_frames(width, height, fps, seconds):
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def _repeat(segment: Path, path: Path, copies: int) -> None:
    """Concatenate `copies` of a closed-GOP segment by copying packets with shifted timestamps."""
    with av.open(str(segment)) as src:
        ins = src.streams.video[0]
        span = ins.duration or 0
        packets = [(bytes(p), p.pts, p.dts, p.duration, p.is_keyframe) for p in src.demux(ins) if p.size]
        with av.open(str(path), "w") as dst:
            outs = dst.add_stream_from_template(ins)
            for k in range(copies):
                for data, pts, dts, duration, key in packets:
                    packet = av.Packet(data)
                    packet.pts, packet.dts = pts + k * span, dts + k * span
                    packet.duration, packet.is_keyframe = duration, key
                    packet.time_base, packet.stream = ins.time_base, outs
                    dst.mux(packet)


def make_clip(workdir: Path, name: str, width: int, height: int, minutes: float, fps: int = 30,
              gop_s: float = 4.0, segment_s: float = 60.0, preset: str = "veryfast") -> Path:
    """The cached clip `name` (generated on first use): `minutes` long, keyframe every gop_s."""
    path = workdir / f"{name}-{width}x{height}-{fps}fps-{minutes * 60:g}s-gop{gop_s:g}s.mp4"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)  # `bench pipeline` may be the first to use it
    gop = max(1, int(round(gop_s * fps)))
    segment_s = min(segment_s, minutes * 60)
    segment_s = max(gop, int(round(segment_s * fps)) // gop * gop) / fps   # whole GOPs
    segment = workdir / f"segment-{width}x{height}-{fps}fps-{segment_s:g}s-gop{gop}.mp4"
    started = time.perf_counter()
    if not segment.exists():
        _encode_segment(segment.with_suffix(".part.mp4"), width, height, fps, segment_s, gop, preset)
        segment.with_suffix(".part.mp4").rename(segment)
    copies = max(1, int(round(minutes * 60 / segment_s)))
    _repeat(segment, path.with_suffix(".part.mp4"), copies)
    path.with_suffix(".part.mp4").rename(path)
    log.info("generated %s (%.1f MB) in %.1f s", path.name, path.stat().st_size / 1e6, time.perf_counter() - started)
    return path


# ----------------------------------------------------------------------------- child-process cases

def _child(case: str, path: str, frames: int, size: int, repeats: int) -> dict:
    """Run one case `repeats` times in this (fresh) process; seconds per run and peak RSS."""
    from nsnet.video import read_clip

    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        if case == "decode-all":
            with av.open(path) as container:
                stream = container.streams.video[0]
                stream.codec_context.thread_type = "AUTO"
                stream.codec_context.thread_count = min(os.cpu_count() or 1, 8)
                n = sum(1 for _ in container.decode(stream))
        else:
            n = read_clip(path, num_frames=frames, size=size).num_frames
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # KiB on Linux
    return {"seconds": statistics.median(seconds), "runs": seconds, "frames_out": n, "peak_rss_bytes": peak}


def _run_case(case: str, path: Path, frames: int, size: int, repeats: int) -> dict:
    cmd = [sys.executable, "-m", "nsnet.benchmarks.decode", "--child", case, str(path),
           "--frames", str(frames), "--size", str(size), "--repeats", str(repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {case} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _baseline_rss() -> int:
    """Peak RSS of a child that only imports nsnet.video (Python + numpy + PyAV)."""
    code = "import resource, nsnet.video; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


# ----------------------------------------------------------------------------- report

def _table(rows: list[dict]) -> str:
    lines = ["| case | clip | frames decoded/returned | time (s) | peak RSS (MiB) |",
             "|---|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['clip']} | {r['frames_out']} | {r['seconds']:.2f} | "
                     f"{r['peak_rss_bytes'] / 2**20:.0f} |")
    return "\n".join(lines)


def _targets(by_case: dict[str, dict]) -> list[dict]:
    out = []
    if "sample-short" in by_case and "sample-long" in by_case:
        ratio = by_case["sample-long"]["seconds"] / by_case["sample-short"]["seconds"]
        out.append({"target": "sample long / sample short time <= 1.5", "value": round(ratio, 2),
                    "pass": ratio <= 1.5})
    if "sample-short" in by_case and "decode-all" in by_case:
        speedup = by_case["decode-all"]["seconds"] / by_case["sample-short"]["seconds"]
        out.append({"target": "decode-all / sample short time >= 5", "value": round(speedup, 1),
                    "pass": speedup >= 5})
    if "sample-8k" in by_case:
        rss = by_case["sample-8k"]["peak_rss_bytes"]
        out.append({"target": "peak RSS on 8K < 1 GiB", "value": f"{rss / 2**20:.0f} MiB", "pass": rss < GiB})
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nsnet bench decode", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nsnet-bench-decode",
                   help="where generated clips are cached (default: %(default)s)")
    p.add_argument("--frames", type=int, default=16, help="T, frames sampled per clip")
    p.add_argument("--size", type=int, default=224, help="shorter side of the returned frames")
    p.add_argument("--height", type=int, default=720, help="height of the long clips (16:9)")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--gop-s", type=float, default=4.0, help="keyframe interval of the long clips, seconds")
    p.add_argument("--short-min", type=float, default=10.0)
    p.add_argument("--long-min", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=3, help="runs per sampling case (median reported)")
    p.add_argument("--skip-8k", action="store_true", help="leave out the 8K case")
    p.add_argument("--skip-decode-all", action="store_true", help="leave out decoding every frame")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.frames, args.size, args.repeats)))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    width = int(round(args.height * 16 / 9)) // 2 * 2
    res = f"{width}x{args.height}"
    short = make_clip(args.workdir, "clip", width, args.height, args.short_min, args.fps, args.gop_s)
    long_ = make_clip(args.workdir, "clip", width, args.height, args.long_min, args.fps, args.gop_s)
    cases = [("sample-short", short, f"{args.short_min:g} min {res}", args.repeats),
             ("sample-long", long_, f"{args.long_min:g} min {res}", args.repeats)]
    if not args.skip_decode_all:
        cases.append(("decode-all", short, f"{args.short_min:g} min {res}", 1))
    if not args.skip_8k:
        clip_8k = make_clip(args.workdir, "8k", 7680, 4320, 20 / 60, args.fps, gop_s=1.0, segment_s=2.0,
                            preset="ultrafast")
        cases.append(("sample-8k", clip_8k, "20 s 7680x4320", 1))
    rows = []
    for case, path, label, repeats in cases:
        log.info("running %s on %s", case, path.name)
        rows.append({"case": case, "clip": label, **_run_case(case, path, args.frames, args.size, repeats)})
    by_case = {r["case"]: r for r in rows}
    targets = _targets(by_case)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, PyAV {av.__version__}"
    baseline = _baseline_rss()
    print(_table(rows))
    print(f"\n(T={args.frames}, size={args.size}; peak RSS includes {baseline / 2**20:.0f} MiB for Python + "
          f"numpy + PyAV; {machine})\n")
    for t in targets:
        print(f"{'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['value']}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "targets": targets, "machine": machine,
                                         "baseline_rss_bytes": baseline, "argv": argv}, indent=2))
    return 0 if all(t["pass"] for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
