"""``nsnet export VIDEO --out DIR``: the saliency chart (PNG, SVG), a highlight clip (MP4) and the JSON of one video.

Writes DIR/<stem>.png and DIR/<stem>.svg (the explorer's chart: p_t, g_t, the fused
saliency, the selected previews with their ranks, the top labels), DIR/<stem>.highlights.mp4
(WINDOW seconds around each selected preview, in time order, rank and time drawn on
each frame, one chapter a segment; H.264) and DIR/<stem>.json (the `predict --json`
object of the same run). The figure is rendered by kaleido in a headless Chrome or
Chromium (no display needed; set BROWSER_PATH if it is not on PATH). A bad input is one
line on stderr and exit code 2, with nothing written.
"""
from __future__ import annotations

import argparse
import logging
import sys

from ..export import ExportError, export_video
from ..export.figure import FORMATS
from ..export.highlights import MAX_SIZE, MAX_WINDOW_S, MIN_SIZE, SIZE, WINDOW_S
from ..inference import Pipeline
from ..video import VideoError
from .common import USER_ERRORS, add_backbone_path_flag, default_checkpoint
from .predict import synthetic_warning

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="path to a video file")
    p.add_argument("--out", required=True, help="folder for <stem>.png, .svg, .highlights.mp4 and .json "
                                                "(created when missing)")
    p.add_argument("--checkpoint", default=default_checkpoint(),
                   help="checkpoint folder or hub id (default: $NSNET_CHECKPOINT, else the bundled demo model)")
    p.add_argument("--frames", "-T", type=int, default=None, help="preview frames T (default: the checkpoint's)")
    p.add_argument("--k", "-K", type=int, default=None, help="frames kept (default: the checkpoint's)")
    p.add_argument("--lam", type=float, default=None, help="fusion weight in [0, 1] (default: the checkpoint's)")
    p.add_argument("--window-s", type=float, default=WINDOW_S,
                   help=f"seconds of video shown on each side of a selected preview (default {WINDOW_S:g}, "
                        f"at most {MAX_WINDOW_S:g})")
    p.add_argument("--clip-size", type=int, default=SIZE,
                   help=f"shorter side of the highlight clip in pixels, never above the source's "
                        f"({MIN_SIZE}..{MAX_SIZE}, default {SIZE})")
    p.add_argument("--no-svg", action="store_true", help="write the PNG only")
    p.add_argument("--overwrite", action="store_true", help="replace files of an earlier export")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: auto)")
    p.add_argument("--time-budget-s", type=float, default=30.0, help="give up decoding the previews after this long")
    add_backbone_path_flag(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    formats = tuple(f for f in FORMATS if not (args.no_svg and f == "svg"))
    try:
        pipe = Pipeline.from_pretrained(args.checkpoint, device=args.device, backbone_paths=dict(args.backbone_paths))
        done = export_video(pipe, args.video, args.out, num_frames=args.frames, k=args.k, lam=args.lam,
                            window_s=args.window_s, clip_size=args.clip_size, figure_formats=formats,
                            overwrite=args.overwrite, time_budget_s=args.time_budget_s, checkpoint=args.checkpoint)
    except (*USER_ERRORS, VideoError, ExportError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return 2
    warning = synthetic_warning(done.result, args.video)  # as predict: synthetic classes on a real clip
    if warning:
        print(warning, file=sys.stderr)
    for path in done.files.values():
        print(path)
    return 0
