"""``nsnet predict VIDEO``: saliency curves, selected frames and labels for one video."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

from ..inference import Pipeline
from ..inference.result import model_info
from ..video import VideoError
from .common import add_backbone_path_flag, default_checkpoint

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet predict", description=__doc__)
    p.add_argument("video", help="path to a video file")
    p.add_argument("--checkpoint", default=default_checkpoint(),
                   help="checkpoint folder or Hugging Face Hub id (default: $NSNET_CHECKPOINT, else the bundled "
                        "demo model)")
    p.add_argument("--frames", "-T", type=int, default=None, help="preview frames T (default: the checkpoint's)")
    p.add_argument("--k", "-K", type=int, default=None, help="frames kept for the recognizer (default: the checkpoint's)")
    p.add_argument("--lam", type=float, default=None, help="fusion weight of the frame-level branch in [0, 1]")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--time-budget-s", type=float, default=None, help="give up decoding after this many seconds")
    p.add_argument("--json", action="store_true", help="print one JSON object (the documented schema)")
    add_backbone_path_flag(p)
    return p


def _summary(result) -> str:
    lines = [f"{result.video.get('path')}: T={result.num_frames} K={result.k} lam={result.lam:g}"]
    lines.append("selected previews: " + ", ".join(
        f"#{i} @ {result.timestamps_s[i]:.2f}s (s={result.fused[i]:.2f})" for i in result.selected))
    lines += [f"  {d['score']:6.1%}  {d['label']}" for d in result.labels]
    t, g = result.timings_ms, result.gflops
    lines.append(f"time: decode {t['decode']:.0f} ms, sampler {t['sampler']:.0f} ms, recognizer "
                 f"{t['recognizer']:.0f} ms on {result.device}; GFLOPs (multiply-adds) {g['total']:.2f} "
                 f"(dense {g['dense']:.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        pipe = Pipeline.from_pretrained(args.checkpoint, device=args.device, backbone_paths=dict(args.backbone_paths))
        budget = {} if args.time_budget_s is None else {"time_budget_s": args.time_budget_s}
        result = pipe.analyze(args.video, num_frames=args.frames, k=args.k, lam=args.lam, **budget)
    except (VideoError, ValueError) as exc:  # ConfigError, CheckpointError, --device cuda without a GPU
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not pipe.config.trained:
        log.warning("checkpoint %s is untrained: labels are meaningless", args.checkpoint)
    result = dataclasses.replace(result, model=model_info(pipe.config, args.checkpoint))
    warning = synthetic_warning(result, args.video)
    if warning:
        print(warning, file=sys.stderr)
    print(json.dumps(result.to_dict()) if args.json else _summary(result))
    return 0


def synthetic_warning(result, video: str) -> str | None:
    """One line when a model that knows only synthetic-benchmark classes labels a clip that is not a
    benchmark video (:func:`~nsnet.data.synthetic.encode.is_benchmark_video`); None otherwise."""
    model = result.model or {}
    if not model.get("synthetic") or not result.labels:
        return None
    from ..data.synthetic.encode import is_benchmark_video

    if is_benchmark_video(video):
        return None
    return (f"warning: {model.get('name') or 'this model'} knows only the {model.get('num_classes')} classes of "
            f"NSNet's synthetic benchmark: '{result.labels[0]['label']}' is one of them, not a description of "
            "this clip; for real videos pass a checkpoint trained on real data (--checkpoint DIR_OR_HUB_ID, or "
            "set NSNET_CHECKPOINT)")
