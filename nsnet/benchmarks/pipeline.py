"""``python -m nsnet bench pipeline``: per-stage cost of NSNet-K against dense-T on one clip.

For each repeat: decode T previews, run the sampler on them, run the recognizer on the
K selected frames (NSNet) and, separately, on all T previews (dense). Reports medians
of wall time per stage and GFLOPs per video. Also measures batch throughput (videos/s
for sampler + recognizer on already-decoded previews); on CUDA every timing is
synchronised. The default clip is a generated 60-s 1280x720 H.264 clip.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ..config import PipelineConfig
from ..inference import Pipeline
from ..inference.checkpoint import BUNDLED_CHECKPOINT, default_checkpoint
from .decode import make_clip

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nsnet bench pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, help="clip to measure (default: a generated 60-s 720p clip)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nsnet-bench-decode")
    p.add_argument("--clip-minutes", type=float, default=1.0, help="length of the generated clip (default 1)")
    p.add_argument("--clip-height", type=int, default=720, help="height of the generated 16:9 clip (default 720)")
    p.add_argument("--checkpoint", default=default_checkpoint())
    p.add_argument("--frames", "-T", type=int, default=None)
    p.add_argument("--k", "-K", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=8, help="videos per batch for the throughput measurement")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    return p


def _timed(fn, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3, out


@torch.inference_mode()
def _dense_ms(pipe: Pipeline, frames) -> float:
    """Recognizer on all T previews, preprocessing included (what dense-T costs after decode)."""
    return _timed(lambda: pipe.recognizer_probs(torch.as_tensor(frames)), pipe.device)[0]


@torch.inference_mode()
def throughput(pipe: Pipeline, frames, k: int, batch: int, repeats: int = 3) -> float:
    """Videos/s of sampler + top-K + recognizer on a batch of already-decoded previews."""
    frames = torch.as_tensor(frames)
    videos = frames.unsqueeze(0).expand(batch, *frames.shape)  # (B, T, H, W, 3)

    def run():  # backbones in the pipeline's precision, heads in float32 (Pipeline.run_batch)
        return pipe.run_batch(videos, k, pipe.config.lam)

    run()  # warm-up
    best = min(_timed(run, pipe.device)[0] for _ in range(repeats))
    return batch / (best / 1e3)


def _load(checkpoint: str, device: str) -> Pipeline:
    if checkpoint != str(BUNDLED_CHECKPOINT) or BUNDLED_CHECKPOINT.is_dir():
        return Pipeline.from_pretrained(checkpoint, device=device)
    log.warning("no checkpoint at %s: measuring an untrained pipeline (same architecture, same cost)", checkpoint)
    return Pipeline.build(PipelineConfig(class_names=[f"class_{i}" for i in range(10)]), device=device)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (1 <= args.repeats <= 1000 and 1 <= args.batch <= 1024 and 0 < args.clip_minutes <= 600
            and 16 <= args.clip_height <= 4320):
        _parser().error("need 1 <= --repeats <= 1000, 1 <= --batch <= 1024, 0 < --clip-minutes <= 600 and "
                        "16 <= --clip-height <= 4320")
    pipe = _load(args.checkpoint, args.device)
    t = args.frames or pipe.config.num_frames
    k = args.k or pipe.config.k
    width = int(round(args.clip_height * 16 / 9)) // 2 * 2
    video = args.video or make_clip(args.workdir, "bench", width, args.clip_height // 2 * 2, minutes=args.clip_minutes)
    pipe.analyze(video, t, k)  # warm-up: first-call allocations, FLOP counting
    stages: dict[str, list[float]] = {"decode": [], "sampler": [], "recognizer": [], "nsnet_total": [],
                                      "dense_recognizer": [], "dense_total": []}
    result = clip = None
    for _ in range(args.repeats):
        clip, decode_ms = pipe.read(video, t)   # the previews, kept for dense-T and the throughput
        result = pipe.analyze_clip(clip, k, decode_ms=decode_ms)
        tm = result.timings_ms
        for name in ("decode", "sampler", "recognizer"):
            stages[name].append(tm[name])
        stages["nsnet_total"].append(tm["total"])
        dense = _dense_ms(pipe, clip.frames)
        stages["dense_recognizer"].append(dense)
        stages["dense_total"].append(tm["decode"] + dense)
    med = {name: statistics.median(v) for name, v in stages.items()}
    vps = throughput(pipe, clip.frames, k, args.batch)
    g = result.gflops
    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, "
               f"{torch.cuda.get_device_name(pipe.device) if pipe.device.type == 'cuda' else 'CPU'}")
    rows = [
        "| path | decode ms | sampler ms | recognizer ms | total ms | GFLOPs/video (multiply-adds) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| NSNet (T={t} previews, K={k}) | {med['decode']:.0f} | {med['sampler']:.0f} | {med['recognizer']:.0f} | "
        f"{med['nsnet_total']:.0f} | {g['total']:.2f} |",
        f"| dense (all T={t} through the recognizer) | {med['decode']:.0f} | - | {med['dense_recognizer']:.0f} | "
        f"{med['dense_total']:.0f} | {g['dense']:.2f} |",
    ]
    table = "\n".join(rows)
    print(f"{video.name}: {result.video.get('width')}x{result.video.get('height')}, "
          f"{result.video.get('duration_s'):.0f} s; device {pipe.device} ({machine}); medians of {args.repeats}")
    print(table)
    print(f"throughput (decoded previews, batch {args.batch}): {vps:.1f} videos/s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"video": str(video), "t": t, "k": k, "device": str(pipe.device),
                                         "machine": machine, "median_ms": med, "gflops": g,
                                         "throughput_videos_per_s": vps, "batch": args.batch,
                                         "trained": pipe.config.trained}, indent=2) + "\n")
    return 0
