"""``nsnet bench analyze``: videos/s of ``nsnet analyze`` against a Python loop over ``Pipeline.analyze``.

Both run in this process on the same videos with the same loaded model (the FLOP count
and one warm-up video done before either is timed), in ``--rounds`` paired rounds (each
a slice of the videos, the order of the paths rotating) so that a busy machine
slows both alike. Wall time and CPU time (this process and its workers) are reported.

* **loop**: ``for video: pipe.analyze(video, T, K, dense=True)`` (dense, because the rows
  need the recognizer on every preview: the teacher curve and the baselines);
* **analyze**: :func:`nsnet.evaluation.analyze.analyze` into a temporary ``OUT.jsonl``
  (decoding in DataLoader workers, networks batched across videos, rows written), once
  per ``--precision`` (e.g. ``--precision fp32 bf16``; the loop runs ``--loop-precision``,
  by default the pipeline's default).

It also checks that the two agree: the NSNet label of every video from the loop against
its row. The default data is the synthetic benchmark ``make-synthetic --videos 100 --seed
4242``, generated once under ``--workdir``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..evaluation.analyze import AnalyzeOptions, analyze, resolve_inputs
from ..evaluation.engine import default_workers
from ..evaluation.jsonl import iter_rows
from ..evaluation.rows import summarize
from ..inference import Pipeline
from ..inference.checkpoint import default_checkpoint
from ..inference.pipeline import PRECISIONS

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet bench analyze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None, help="dataset (default: the generated benchmark)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nsnet-bench-analyze")
    p.add_argument("--videos", type=int, default=100, help="videos of the generated benchmark (seed 4242)")
    p.add_argument("--max-videos", type=int, default=None)
    p.add_argument("--checkpoint", default=default_checkpoint())
    p.add_argument("--frames", "-T", type=int, default=16)
    p.add_argument("--k", "-K", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="decoding processes of analyze (default: as analyze)")
    p.add_argument("--device", default="auto")
    p.add_argument("--rounds", type=int, default=4,
                   help="split the videos into this many paired rounds, alternating which path goes first")
    p.add_argument("--precision", nargs="+", default=["auto"], choices=PRECISIONS,
                   help="time analyze in each of these precisions (e.g. fp32 bf16)")
    p.add_argument("--loop-precision", default="auto", choices=PRECISIONS,
                   help="the loop's precision (default: auto, what Pipeline.analyze runs unless told otherwise)")
    p.add_argument("--skip-loop", action="store_true", help="measure analyze only")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    return p


def _data(args) -> Path:
    if args.data is not None:
        return args.data
    from ..data.synthetic import main as make_synthetic

    folder = args.workdir / f"synthetic-{args.videos}-seed4242"
    if not (folder / "annotations.json").is_file():
        log.info("generating the benchmark in %s", folder)
        make_synthetic([str(folder), "--videos", str(args.videos), "--seed", "4242"])
    return folder


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the DataLoader workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _loop(pipe, records, t, k, lam, stages: dict[str, list[float]]) -> dict[str, str]:
    labels = {}
    for r in records:
        try:
            res = pipe.analyze(r.path, t, k, lam, dense=True)
        except Exception as exc:  # noqa: BLE001 - a bad video is skipped, as analyze makes it a row
            log.warning("%s: %s", r.video_id, exc)
            continue
        labels[r.video_id] = res.labels[0]["label"]
        for name, ms in (("decode", res.timings_ms["decode"]), ("sampler", res.timings_ms["sampler"]),
                         ("recognizer", res.dense_recognizer_ms)):
            stages[name].append(ms)
    return labels


def _medians(stages: dict[str, list[float]]) -> dict[str, float | None]:
    return {name: float(np.median(v)) if v else None for name, v in stages.items()}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data = _data(args)
    base = Pipeline.from_pretrained(args.checkpoint, device=args.device)
    # one view of the loaded networks per precision; one this device cannot run is refused before anything is timed
    pipes = {p: base.with_precision(p) for p in [*args.precision, args.loop_precision]}
    pipe = pipes[args.loop_precision]
    records, _ = resolve_inputs([data], subset="all", max_videos=args.max_videos)
    t, k, lam = args.frames, args.k, pipe.config.lam
    workers = default_workers(pipe.device) if args.workers is None else args.workers
    pipe.gflops_per_video(t, k)
    pipe.analyze(records[0].path, t, k, dense=True)  # warm-up: first-call allocations
    rounds = max(1, min(args.rounds, len(records)))
    chunks = [records[i * len(records) // rounds:(i + 1) * len(records) // rounds] for i in range(rounds)]
    paths = ([] if args.skip_loop else ["loop"]) + [f"analyze {p}" for p in args.precision]
    wall = {p: 0.0 for p in paths}
    cpu = dict(wall)
    loop_labels: dict[str, str] = {}
    loop_stages: dict[str, list[float]] = {"decode": [], "sampler": [], "recognizer": []}
    rows: dict[str, list[dict]] = {p: [] for p in paths if p != "loop"}
    with tempfile.TemporaryDirectory() as tmp:
        for i, chunk in enumerate(chunks):  # paired rounds, rotating which goes first: fair on a busy machine
            for what in paths[i % len(paths):] + paths[:i % len(paths)]:
                start, start_cpu = time.perf_counter(), _cpu_s()
                if what == "loop":  # Pipeline.analyze as a user calls it (by default: the default precision)
                    loop_labels.update(_loop(pipe, chunk, t, k, lam, loop_stages))
                else:
                    out = Path(tmp) / f"round{i}-{what.split()[1]}.jsonl"
                    analyze(pipes[what.split()[1]], chunk, AnalyzeOptions(out=str(out), num_frames=t, k=k, lam=lam,
                                                        batch_size=args.batch_size, workers=workers,
                                                        progress=False, checkpoint=str(args.checkpoint)))
                    rows[what] += list(iter_rows(out))
                wall[what] += time.perf_counter() - start
                cpu[what] += _cpu_s() - start_cpu
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
               f"{torch.cuda.get_device_name(pipe.device) if pipe.device.type == 'cuda' else 'CPU'}")
    n = len(records)
    loop_s = wall.get("loop")
    result: dict = {"videos": n, "t": t, "k": k, "device": str(pipe.device), "machine": machine, "rounds": rounds,
                    "batch_size": args.batch_size, "workers": workers, "loop": None, "analyze": {}}
    print(f"{n} videos of {data}; T={t}, K={k}; device {pipe.device} ({machine}); {rounds} paired rounds")
    if loop_s is not None:
        result["loop"] = {"precision": args.loop_precision, "s": loop_s, "videos_per_s": n / loop_s,
                          "cpu_s_per_video": cpu["loop"] / n,
                          "median_ms": _medians(loop_stages)}
        print(f"loop over Pipeline.analyze(dense=True), precision {args.loop_precision}: {loop_s:.1f} s, "
              f"{n / loop_s:.2f} videos/s "
              f"({cpu['loop'] / n:.2f} CPU s/video)")
        _print_stages("loop", result["loop"]["median_ms"])
    for what, got in rows.items():
        precision = what.split()[1]
        summary = summarize(got, pipe.class_names)
        timed = [r["timings_ms"] for r in got if r["timings_ms"] and not r["error"]]
        stages = _medians({name: [tm[name] for tm in timed] for name in ("decode", "sampler", "recognizer")})
        agree = sum(loop_labels.get(r["id"]) == (r["nsnet"] or {}).get("label") for r in got if r["id"] in loop_labels)
        entry = {"s": wall[what], "videos_per_s": n / wall[what], "cpu_s_per_video": cpu[what] / n,
                 "ratio": None if loop_s is None else loop_s / wall[what], "median_ms": stages,
                 "nsnet_label_agreement": None if loop_s is None else f"{agree}/{len(loop_labels)}",
                 "counts": summary["counts"], "methods": summary["methods"], "saliency_ap": summary["saliency_ap"]}
        result["analyze"][precision] = entry
        print(f"nsnet analyze --precision {precision} (batch {args.batch_size}, {workers} decoding workers): "
              f"{wall[what]:.1f} s, {n / wall[what]:.2f} videos/s ({cpu[what] / n:.2f} CPU s/video)")
        if loop_s is not None:
            print(f"  ratio: {entry['ratio']:.2f}x; NSNet labels agree with the loop on {agree} of "
                  f"{len(loop_labels)} videos")
        _print_stages("analyze", stages)
        for m, v in summary["methods"].items():
            if v["map"] is not None:
                print(f"  {m:8s} mAP {100 * v['map']:.1f}  top-1 {100 * v['top1']:.1f}  GFLOPs {v['gflops']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _print_stages(name: str, med: dict[str, float | None]) -> None:
    print(f"  median ms per video, {name}: " + ", ".join(
        f"{stage} {ms:.0f}" for stage, ms in med.items() if ms is not None) + " (recognizer: all T previews)")
