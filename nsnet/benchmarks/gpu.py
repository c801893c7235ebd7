"""``nsnet bench gpu``: everything a GPU changes, checked in one command (under 10 minutes on one GPU).

Sections (``--skip`` leaves some out; each one's failure is recorded and the others still run):

* **precision**: every precision this GPU runs (auto, fp32, fp16, bf16 where native) against
  CPU float32 on the same decoded previews: videos whose K selected frames are the same, the
  largest and mean change of the fused score, top-1 labels kept, NSNet mAP (labelled data).
* **analyze_eval**: ``nsnet analyze`` (videos batched, decoding workers) and ``eval``'s path
  (feature cache one video at a time, then the heads) on the same videos: the same selections,
  fused scores and labels?
* **folding**: each backbone's BatchNorm-folded copy against the original, in exact float32
  and with cuDNN's TF32 convolutions; whether the folded copy is used.
* **flops**: GFLOPs (multiply-adds) of the pipeline and of a ViT-B/16 built from its config
  (random weights, nothing downloaded), counted on the CPU and on the GPU: they must agree.
* **throughput**: videos/s of NSNet (T previews through the sampler, K frames through the
  recognizer) at ``--batch-size`` videos a batch: compute only (previews already on the GPU)
  and with decoding (DataLoader workers decoding while the GPU computes).
* **finetune**: a few fine-tuning steps of both backbones (``train --finetune``): seconds per
  step and peak GPU memory.
* **resume**: a training run interrupted (KeyboardInterrupt after a few optimiser steps,
  the state written every step) and resumed with ``--resume``, against the same run
  uninterrupted: the largest weight difference.

Data: ``--data`` (any format ``nsnet analyze`` reads), else synthetic videos generated once
under ``--workdir``. ``--dry-run`` runs every section at tiny sizes with a tiny pipeline
(EfficientNet-Lite0 at 48 / 64 px, random heads): seconds on a CPU; on a machine
without a GPU it takes the CPU branches, under the test suite's fake-CUDA harness the CUDA ones.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig
from ..inference import Pipeline, resolve_device
from ..inference.checkpoint import default_checkpoint
from ..inference.flops import count_gflops
from ..inference.pipeline import PRECISIONS, bf16_supported
from ..limits import MAX_FRAMES
from ..metrics import mean_average_precision
from ..models.fusion import agreement, exact_float32, fold_batchnorm, folded

__all__ = ["SECTIONS", "main", "precision_agreement", "analyze_vs_eval", "folding_check", "flops_per_device",
           "throughput", "finetune_steps", "interrupted_resume"]

log = logging.getLogger(__name__)

SECTIONS = ("precision", "analyze_eval", "folding", "flops", "throughput", "finetune", "resume")


@dataclasses.dataclass(frozen=True)
class Sizes:
    videos: int = 24
    frames: int = 16
    k: int = 4
    batch_size: int = 64
    rounds: int = 5
    decode_videos: int = 256   # videos decoded for the throughput with decoding (the data repeated)
    finetune_batch: int = 8
    train_epochs: int = 2


DRY = Sizes(videos=2, frames=4, k=2, batch_size=2, rounds=1, decode_videos=2, finetune_batch=2, train_epochs=1)


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet bench gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the bundled demo model; "
                                                      "with --dry-run a tiny pipeline, random heads)")
    p.add_argument("--data", type=Path, default=None, help="dataset (default: synthetic videos made under --workdir)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "nsnet-bench-gpu")
    p.add_argument("--videos", type=_bounded(1, 1000), default=None, help="videos (default 24; dry run 2)")
    p.add_argument("--frames", "-T", type=_bounded(2, MAX_FRAMES), default=None, help="previews T (default 16)")
    p.add_argument("--k", "-K", type=_bounded(1, MAX_FRAMES), default=None, help="frames kept K (default 4)")
    p.add_argument("--batch-size", type=_bounded(1, 1024), default=None, help="videos a batch (default 64)")
    p.add_argument("--device", default="auto", help="auto | cuda | cuda:N (cpu only with --dry-run)")
    p.add_argument("--skip", nargs="+", default=[], choices=SECTIONS, metavar="SECTION",
                   help=f"sections to leave out ({', '.join(SECTIONS)})")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, a tiny pipeline: checks that every section runs")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return p


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _machine(device: torch.device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


# --------------------------------------------------------------------------- data and models
def _dataset(args, sizes: Sizes) -> Path:
    if args.data is not None:
        return args.data
    from ..data.synthetic.generate import generate
    from ..data.synthetic.spec import SynthConfig

    cfg = SynthConfig(width=96, height=72, min_duration_s=2.0, max_duration_s=3.0) if args.dry_run else SynthConfig()
    out = args.workdir / ("data-dry" if args.dry_run else f"data-{sizes.videos}")
    if not (out / "annotations.json").is_file():
        generate(out, sizes.videos, seed=2024, cfg=cfg, workers=1 if args.dry_run else None, progress=False)
    return out


def _records(data: Path, class_names: list[str] | None, max_videos: int):
    from ..data.features import map_labels
    from ..evaluation.analyze import resolve_inputs

    records, names = resolve_inputs([data], subset="all", max_videos=max_videos)
    if class_names is not None and any(r.label is not None for r in records):
        records, _ = map_labels(records, class_names)
    if not records:
        raise ConfigError(f"{data}: no video whose label the checkpoint knows")
    return records, names


def tiny_config(class_names: list[str], t: int, k: int) -> PipelineConfig:
    """The dry run's pipeline: EfficientNet-Lite0 (its packaged ImageNet weights: features that differ from
    frame to frame) at 48 / 64 px, random heads."""
    return PipelineConfig(class_names=list(class_names), num_frames=t, k=k, lam=0.3,
                          sampler=SamplerConfig(backbone="efficientnet_lite0", input_size=48, hidden_dim=16,
                                                attention_dim=8),
                          recognizer=RecognizerConfig(backbone="efficientnet_lite0", input_size=64))


def _pipeline(args, device: torch.device, class_names: list[str], sizes: Sizes, precision: str = "auto") -> Pipeline:
    if args.dry_run and args.checkpoint is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return Pipeline.build(tiny_config(class_names, sizes.frames, sizes.k), device=device, precision=precision)
    return Pipeline.from_pretrained(args.checkpoint or default_checkpoint(), device=device, precision=precision)


# --------------------------------------------------------------------------- sections
def precision_agreement(reference: Pipeline, pipes: dict[str, Pipeline], clips: list, labels: list[int],
                        k: int, lam: float, contexts: dict[str, Callable] | None = None) -> dict[str, Any]:
    """Each pipeline against ``reference`` on the same decoded ``clips`` (see the module docstring);
    ``contexts[name]()`` (a context manager) is entered around that pipeline's runs."""
    ref = [reference(c.frames, k, lam) for c in clips]
    has_labels = bool(labels) and all(y >= 0 for y in labels)

    def nsnet_map(results) -> float | None:
        return mean_average_precision(np.stack([r.probs for r in results]), np.asarray(labels)) if has_labels else None

    out: dict[str, Any] = {"reference": f"{reference.device} {reference.compute_precision}", "videos": len(clips),
                           "reference_map": nsnet_map(ref), "by_precision": {}}
    for name, pipe in pipes.items():
        with (contexts or {}).get(name, contextlib.nullcontext)():
            got = [pipe(c.frames, k, lam) for c in clips]
        diffs = [float(np.abs(a.fused - b.fused).max()) for a, b in zip(ref, got)]
        out["by_precision"][name] = {
            "runs": pipe.compute_precision,
            "same_selection": sum(np.array_equal(a.selected, b.selected) for a, b in zip(ref, got)),
            "max_fused_diff": max(diffs), "mean_fused_diff": float(np.mean(diffs)),
            "same_top1": sum(a.labels[0]["label"] == b.labels[0]["label"] for a, b in zip(ref, got)),
            "map": nsnet_map(got)}
    return out


def analyze_vs_eval(pipe: Pipeline, records, t: int, k: int, lam: float, workdir: Path, batch_size: int,
                    workers: int) -> dict[str, Any]:
    """``nsnet analyze``'s rows against ``eval --per-video``'s on the same videos and pipeline."""
    from ..data.features import build_feature_set
    from ..evaluation import frame_outputs, video_rows
    from ..evaluation.analyze import AnalyzeOptions, analyze
    from ..evaluation.jsonl import iter_rows

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out = Path(tmp) / "analyze.jsonl"
        start = time.perf_counter()
        analyze(pipe, records, AnalyzeOptions(out=str(out), num_frames=t, k=k, lam=lam, batch_size=batch_size,
                                              workers=workers, progress=False))
        analyze_s = time.perf_counter() - start
        rows_a = {r["id"]: r for r in iter_rows(out)}
        start = time.perf_counter()
        fs = build_feature_set(records, pipe.class_names, pipe, t, Path(tmp) / "cache", progress=False,
                               report_skipped=False)
        rows_e = {r["id"]: r for r in video_rows(pipe, fs, records, frame_outputs(pipe, fs), k, lam, 0)}
        eval_s = time.perf_counter() - start
    both = [i for i in rows_a if i in rows_e and not rows_a[i]["error"] and not rows_e[i]["error"]]
    diffs = [float(np.abs(np.subtract(rows_a[i]["fused"], rows_e[i]["fused"])).max()) for i in both]
    return {"videos": len(records), "compared": len(both),
            "same_selection": sum(rows_a[i]["selected"] == rows_e[i]["selected"] for i in both),
            "same_nsnet_label": sum(rows_a[i]["nsnet"]["label"] == rows_e[i]["nsnet"]["label"] for i in both),
            "max_fused_diff": max(diffs, default=None), "analyze_s": analyze_s, "eval_s": eval_s,
            "precision": pipe.compute_precision}


def folding_check(pipe: Pipeline) -> dict[str, Any]:
    """Each backbone's folded copy against the original: in exact float32 and with TF32 convolutions."""
    out = {}
    for role in ("sampler", "recognizer"):
        module = getattr(pipe, role).backbone
        copy_ = fold_batchnorm(module.eval())
        if copy_ is None:
            out[role] = {"foldable": False}
            continue
        exact, tolerance = agreement(module, copy_)
        entry = {"foldable": True, "diff_exact": exact, "tolerance": tolerance, "used": folded(module) is not module}
        if pipe.device.type == "cuda" and hasattr(torch.backends.cudnn, "conv"):
            saved = torch.backends.cudnn.conv.fp32_precision
            torch.backends.cudnn.conv.fp32_precision = "tf32"
            try:
                entry["diff_tf32"] = _ambient_diff(module, copy_)
            finally:
                torch.backends.cudnn.conv.fp32_precision = saved
        out[role] = entry
    return out


@torch.inference_mode()
def _ambient_diff(original, copy_) -> float:
    """The relative difference under the current TF32 settings (what the old check measured)."""
    first = next(original.parameters())
    size = int(getattr(original, "input_size", 64) or 64)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(first.device)
    a = original.forward_features(x).float()
    b = copy_.forward_features(x.contiguous(memory_format=torch.channels_last)).float()
    return float((a - b).abs().max()) / float(a.abs().max().clamp_min(1e-6))


def _vit(tiny: bool):
    from transformers import ViTConfig, ViTModel

    size = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
                patch_size=8) if tiny else {}  # ViTConfig's defaults are ViT-B/16 at 224 px (17.6 G multiply-adds)
    return ViTModel(ViTConfig(attn_implementation="sdpa", **size), add_pooling_layer=False).eval(), size.get(
        "image_size", 224)


def flops_per_device(pipe: Pipeline, cpu_pipe: Pipeline, t: int, k: int, tiny: bool) -> dict[str, Any]:
    """GFLOPs counted on the CPU and on ``pipe``'s device: the pipeline (``cpu_pipe`` is the same
    model on the CPU) and a ViT whose attention is scaled-dot-product attention."""
    vit, size = _vit(tiny)
    out: dict[str, Any] = {"vit": {}, "pipeline": {}}
    for where, p in (("cpu", cpu_pipe), (str(pipe.device), pipe)):
        out["vit"][where] = count_gflops(vit.to(where), pixel_values=torch.zeros(1, 3, size, size, device=where))
        out["pipeline"][where] = p.gflops_per_video(t, k)
    vit.to("cpu")
    out["agree"] = (len(set(out["vit"].values())) == 1
                    and len({json.dumps(v, sort_keys=True) for v in out["pipeline"].values()}) == 1)
    return out


def _stacked(frames: list[torch.Tensor]) -> list[torch.Tensor]:
    """Videos' uint8 previews (T, H, W, 3) stacked into (B, T, H, W, 3) tensors, one per frame shape."""
    groups: dict[tuple, list] = {}
    for f in frames:
        groups.setdefault(tuple(f.shape), []).append(f)
    return [torch.stack(g) for g in groups.values()]


def throughput(pipe: Pipeline, clips: list, records, t: int, k: int, batch_size: int, rounds: int,
               decode_videos: int, workers: int) -> dict[str, Any]:
    """Videos/s of :meth:`Pipeline.run_batch`: compute only, then with decoding in DataLoader workers."""
    from ..evaluation.engine import DecodeDataset, collate
    from ..evaluation.rows import VideoInfo

    dev, lam = pipe.device, pipe.config.lam
    repeated = [torch.from_numpy(clips[i % len(clips)].frames) for i in range(batch_size)]
    batches = [b.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else b for b in _stacked(repeated)]
    for b in batches:  # warm-up: first-call allocations, cuDNN's algorithm choice
        pipe.run_batch(b, k, lam)
    _sync(dev)
    start = time.perf_counter()
    for _ in range(rounds):
        for b in batches:
            pipe.run_batch(b, k, lam)
    _sync(dev)
    compute = rounds * batch_size / (time.perf_counter() - start)

    infos = [VideoInfo.from_record(records[i % len(records)]) for i in range(decode_videos)]
    data = DecodeDataset(infos, t, pipe.config.recognizer.input_size, threads=1 if workers > 0 else None)
    loader = DataLoader(data, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                        pin_memory=dev.type == "cuda", prefetch_factor=2 if workers > 0 else None)
    done = 0
    start = time.perf_counter()
    for items in loader:
        good = [it["frames"] for it in items if "error" not in it]
        for group in _stacked(good):
            pipe.run_batch(group.pin_memory() if dev.type == "cuda" else group, k, lam)
        done += len(good)
    _sync(dev)
    decoded = done / (time.perf_counter() - start)
    return {"batch_size": batch_size, "t": t, "k": k, "compute_videos_per_s": compute,
            "with_decoding_videos_per_s": decoded, "decoded_videos": done, "workers": workers,
            "precision": pipe.compute_precision}


def _train_config(pipe: Pipeline, data: Path, out: Path, sizes: Sizes, **changes):
    from ..training import TrainConfig

    base = pipe.config
    pipeline = dataclasses.replace(base, class_names=[], trained=False, meta={}, num_frames=sizes.frames, k=sizes.k)
    cfg = TrainConfig(data=str(data), out=str(out / "model"), cache_dir=str(out / "cache"), subset="all",
                      max_videos=sizes.videos, pipeline=pipeline, recognizer_epochs=sizes.train_epochs,
                      sampler_epochs=sizes.train_epochs, val_subset="none", progress=False, log_every=0,
                      device=str(pipe.device), precision=pipe.precision)
    return cfg.replace(**changes) if changes else cfg


def finetune_steps(pipe: Pipeline, data: Path, workdir: Path, sizes: Sizes) -> dict[str, Any]:
    """A few fine-tuning steps of both backbones: seconds per step and peak GPU memory."""
    from ..training import train

    dev = pipe.device
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        cfg = _train_config(pipe, data, Path(tmp), sizes, finetune=True, batch_size=sizes.finetune_batch,
                            recognizer_epochs=1, sampler_epochs=1, save_state=False)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
        start = time.perf_counter()
        result = train(cfg)
        _sync(dev)
        seconds = time.perf_counter() - start
    steps = 2 * math.ceil(result.num_videos / sizes.finetune_batch)
    peak = torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == "cuda" else None
    return {"videos": result.num_videos, "batch_size": sizes.finetune_batch, "steps": steps, "seconds": seconds,
            "s_per_step_incl_preview_decoding": seconds / steps, "peak_gib": peak,
            "final_loss": {k: (v[-1] if v else None) for k, v in result.history.items()},
            "precision": pipe.compute_precision}


class _StopAfter(logging.Handler):
    """Raise KeyboardInterrupt (as Ctrl-C would) on the ``n``-th progress line of the training loop."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def emit(self, record: logging.LogRecord) -> None:
        if "step" in str(record.msg):
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt


def interrupted_resume(pipe: Pipeline, data: Path, workdir: Path, sizes: Sizes, stop_after: int = 3) -> dict[str, Any]:
    """A run stopped after ``stop_after`` optimiser steps and resumed, against the same run uninterrupted."""
    from ..training import train

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        cache = Path(tmp) / "cache"
        common = dict(batch_size=max(1, sizes.videos // 3), state_every_min=0.0, state_min_interval_s=0.0,
                      cache_dir=str(cache))
        whole = train(_train_config(pipe, data, Path(tmp) / "whole", sizes, **common)).pipeline
        cfg = _train_config(pipe, data, Path(tmp) / "cut", sizes, log_every=1, **common)
        logger, stopper = logging.getLogger("nsnet.training.monitor"), _StopAfter(stop_after)
        level = logger.level
        logger.addHandler(stopper)
        logger.setLevel(logging.INFO)  # the progress lines are emitted whatever the root level
        interrupted = False
        try:
            train(cfg)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            logger.removeHandler(stopper)
            logger.setLevel(level)
        resumed = train(cfg.replace(resume=True, log_every=0)).pipeline
    a, b = whole.trained_state_dict(), resumed.trained_state_dict()
    diff = max(float((a[n].float() - b[n].float()).abs().max()) for n in a if a[n].is_floating_point())
    return {"interrupted": interrupted, "after_steps": stop_after, "max_weight_diff": diff,
            "tensors": len(a), "equal": diff == 0.0}


# --------------------------------------------------------------------------- driver
def _run_sections(args, device: torch.device, sizes: Sizes) -> dict[str, Any]:
    from ..video import VideoError, read_clip

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = _dataset(args, sizes)
    _, names = _records(data, None, sizes.videos)
    pipe = _pipeline(args, device, names or [], sizes)
    records, _ = _records(data, pipe.class_names, sizes.videos)
    t, k, lam = sizes.frames, sizes.k, pipe.config.lam
    PipelineConfig.validate(t, k, lam)
    decoded = []
    for r in records:  # a video that cannot be read is left out (and said), as analyze would
        try:
            decoded.append((r, read_clip(r.path, num_frames=t, size=pipe.config.recognizer.input_size)))
        except VideoError as exc:
            log.warning("left out %s: %s", r.video_id, exc)
    if not decoded:
        raise ConfigError(f"none of the {len(records)} videos of {data} could be read")
    records, clips = [r for r, _ in decoded], [c for _, c in decoded]
    cpu_pipe = _pipeline(args, torch.device("cpu"), names or [], sizes, "fp32")  # the reference: CPU float32
    workers = (max(1, min(8, (os.cpu_count() or 1) - 1)) if device.type == "cuda" else 0) if not args.dry_run else 0
    checkpoint = args.checkpoint or ("tiny (dry run)" if args.dry_run else default_checkpoint())
    result: dict[str, Any] = {"device": str(device), "machine": _machine(device), "dry_run": args.dry_run,
                              "data": str(data), "videos": len(records), "t": t, "k": k, "lam": lam,
                              "checkpoint": checkpoint}
    jobs: dict[str, Callable[[], Any]] = {
        "precision": lambda: precision_agreement(
            cpu_pipe, {p: pipe.with_precision(p.partition("-")[0]) for p in _precisions(device)}, clips,
            [r.label_index for r in records], k, lam, contexts={"fp32-ieee": exact_float32}),
        "analyze_eval": lambda: analyze_vs_eval(pipe, records, t, k, lam, args.workdir, min(8, sizes.batch_size),
                                                workers),
        "folding": lambda: folding_check(pipe),
        "flops": lambda: flops_per_device(pipe, cpu_pipe, t, k, args.dry_run),
        "throughput": lambda: throughput(pipe, clips, records, t, k, sizes.batch_size, sizes.rounds,
                                         sizes.decode_videos, workers),
        "finetune": lambda: finetune_steps(pipe, data, args.workdir, sizes),
        "resume": lambda: interrupted_resume(pipe, data, args.workdir, sizes),
    }
    for name in SECTIONS:
        if name in args.skip:
            continue
        start = time.perf_counter()
        try:
            result[name] = jobs[name]()
        except Exception as exc:  # noqa: BLE001 - one section's failure never hides the others' numbers
            log.exception("section %s failed", name)
            result[name] = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
        result[name]["seconds"] = round(time.perf_counter() - start, 2)
        log.info("%s done in %.1f s", name, result[name]["seconds"])
    return result


def _precisions(device: torch.device) -> list[str]:
    """What the precision section compares; on CUDA ``fp32`` runs cuDNN's TF32 convolutions (torch's default)
    and ``fp32-ieee`` has them off."""
    if device.type == "cuda":
        return [p for p in PRECISIONS if p != "bf16" or bf16_supported()] + ["fp32-ieee"]
    return ["auto", "fp32", "bf16"]


def format_report(r: dict[str, Any]) -> str:
    """The human summary of a result (one line a number)."""
    lines = [f"nsnet bench gpu on {r['device']} ({r['machine']}){' [dry run]' if r['dry_run'] else ''}: "
             f"{r['videos']} videos, T={r['t']}, K={r['k']}, lambda={r['lam']}"]
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for name in SECTIONS:
        s = r.get(name)
        if s is None:
            continue
        if "error" in s:
            lines.append(f"{name}: FAILED: {s['error']}")
        elif name == "precision":
            lines.append(f"precision vs {s['reference']} (NSNet mAP {pct(s['reference_map'])}):")
            for p, e in s["by_precision"].items():
                lines.append(f"  {p:5s} ({e['runs']}): same selection {e['same_selection']}/{s['videos']}, fused diff "
                             f"max {e['max_fused_diff']:.4f} mean {e['mean_fused_diff']:.4f}, same top-1 "
                             f"{e['same_top1']}/{s['videos']}, mAP {pct(e['map'])}")
        elif name == "analyze_eval":
            lines.append(f"analyze = eval ({s['precision']}): same selection {s['same_selection']}/{s['compared']}, "
                         f"same label {s['same_nsnet_label']}/{s['compared']}, fused diff max {s['max_fused_diff']}")
        elif name == "folding":
            for role, e in s.items():
                if isinstance(e, dict) and e.get("foldable"):
                    tf32 = f", TF32 diff {e['diff_tf32']:.2e}" if "diff_tf32" in e else ""
                    lines.append(f"folding {role}: exact diff {e['diff_exact']:.2e} (tolerance {e['tolerance']:.0e})"
                                 f"{tf32}, folded copy used: {e['used']}")
        elif name == "flops":
            lines.append(f"GFLOPs agree across devices: {s['agree']}; ViT {s['vit']}; pipeline "
                         f"{ {d: round(v['total'], 3) for d, v in s['pipeline'].items()} }")
        elif name == "throughput":
            lines.append(f"throughput (batch {s['batch_size']}, {s['precision']}): {s['compute_videos_per_s']:.1f} "
                         f"videos/s compute only, {s['with_decoding_videos_per_s']:.1f} with decoding "
                         f"({s['workers']} workers)")
        elif name == "finetune":
            peak = "n/a" if s["peak_gib"] is None else f"{s['peak_gib']:.2f} GiB"
            lines.append(f"fine-tune ({s['precision']}): {s['steps']} steps of {s['batch_size']} videos, "
                         f"{s['s_per_step_incl_preview_decoding']:.2f} s/step (preview decoding included), peak {peak}")
        elif name == "resume":
            lines.append(f"resume: interrupted {s['interrupted']} after {s['after_steps']} steps; resumed = "
                         f"uninterrupted: {s['equal']} (max weight diff {s['max_weight_diff']:.2e})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = DRY if args.dry_run else Sizes()
    sizes = dataclasses.replace(sizes, **{f: getattr(args, f) for f in ("videos", "frames", "k", "batch_size")
                                          if getattr(args, f) is not None})
    try:
        device = resolve_device(args.device)
        if device.type != "cuda" and not args.dry_run:
            raise ConfigError("no CUDA GPU here: nsnet bench gpu measures one (--dry-run runs every section at tiny "
                              "sizes on this device)")
        if not 1 <= sizes.k < sizes.frames:
            raise ConfigError(f"need 1 <= K < T, got K={sizes.k}, T={sizes.frames}")
        started = time.perf_counter()
        result = _run_sections(args, device, sizes)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        log.error("%s", " ".join(str(exc).split()))
        return 2
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = format_report(result) + f"\ntotal {result['seconds']:.0f} s"
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 1 if any(isinstance(v, dict) and "error" in v for v in result.values()) else 0
