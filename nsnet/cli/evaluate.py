"""``nsnet eval``: NSNet against the baselines at the same K on a dataset (see ``nsnet.evaluation``).

Methods: dense-T, uniform-K, random-K, frame-only (lam = 1), attention-only (lam = 0),
NSNet (the checkpoint's lam) and oracle-K. Each gets mAP, top-1 and GFLOPs per video;
with ground-truth segments also the saliency AP and the pseudo labels' precision/recall.

Videos are labelled by the checkpoint's classes, matched by name: a dataset may lack some
of them; videos whose label the checkpoint does not know are left out and counted in one
log line and in the JSON's ``unknown_labels`` (``{label: videos}``).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..config import ConfigError
from ..data.features import build_feature_set, default_cache_dir, load_records, map_labels, write_skipped
from ..evaluation import evaluate, frame_outputs, k_curve, video_rows, write_curve_html, write_rows
from ..evaluation.jsonl import ResultFileError, atomic_write_text
from ..inference import Pipeline
from .common import USER_ERRORS, add_backbone_path_flag, add_precision_flag, default_checkpoint

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder or annotation file")
    p.add_argument("--video-root", default=None)
    p.add_argument("--checkpoint", default=default_checkpoint(),
                   help="checkpoint folder or hub id (default: $NSNET_CHECKPOINT, else the bundled demo model)")
    p.add_argument("--subset", default="validation", help="subset to evaluate, or 'all' (default: validation)")
    p.add_argument("--k", type=int, default=None, help="frames kept (default: the checkpoint's K)")
    p.add_argument("--lam", type=float, default=None, help="fusion weight (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-K baseline")
    p.add_argument("--cache-dir", default=None, help="feature cache, shared with train (default: $NSNET_CACHE_DIR, "
                   "else $XDG_CACHE_HOME/nsnet or ~/.cache/nsnet)")
    p.add_argument("--max-videos", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", dest="json_out", default=None, help="write the result object here")
    p.add_argument("--per-video", default=None, metavar="OUT.jsonl",
                   help="also write one row a video, the rows of `nsnet analyze` (same numbers as the table)")
    p.add_argument("--plot", default=None, help="write the accuracy-vs-GFLOPs curve (K = 1..T) as Plotly HTML")
    p.add_argument("--plot-js", choices=["directory", "inline", "cdn"], default="directory",
                   help="directory: write plotly.min.js once beside the HTML and load it from there (offline, "
                        "small HTML); inline: inside every HTML (~5 MB each); cdn: from the CDN when opened "
                        "(default: directory)")
    p.add_argument("--no-progress", action="store_true")
    add_precision_flag(p)
    add_backbone_path_flag(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        records, _ = load_records(args.data, args.subset, video_root=args.video_root, max_videos=args.max_videos)
        pipe = Pipeline.from_pretrained(args.checkpoint, device=args.device,
                                        precision=args.precision, backbone_paths=dict(args.backbone_paths))
        records, unknown = map_labels(records, pipe.class_names)  # the checkpoint's classes, by name
        if unknown:
            log.warning("left out %d videos whose labels the checkpoint does not know: %s",
                        sum(unknown.values()), ", ".join(f"{k} ({v})" for k, v in unknown.items()))
        if not records:
            raise ConfigError(f"none of the dataset's labels is a class of the checkpoint "
                              f"({', '.join(pipe.class_names[:5])}, ...)")
        cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        fs = build_feature_set(records, pipe.class_names, pipe, pipe.config.num_frames, cache,
                               progress=not args.no_progress, report_skipped=not args.json_out)
        out = frame_outputs(pipe, fs)
        result = evaluate(pipe, fs, args.k, args.lam, args.seed, outputs=out)
        result["unknown_labels"] = unknown
        result["precision"] = pipe.compute_precision
        if args.per_video:
            write_rows(args.per_video, video_rows(pipe, fs, records, out, args.k, args.lam, args.seed))
        text = json.dumps(result, indent=2)
        if args.json_out:  # atomically: a full disk leaves the old file (or none), never half a result
            atomic_write_text(args.json_out, text + "\n")
            write_skipped(Path(args.json_out).with_suffix(".skipped.tsv"), fs.skipped, len(records))
        print(text)
        if args.plot:
            lam = pipe.config.lam if args.lam is None else args.lam
            path = write_curve_html(k_curve(pipe, out, lam, args.seed), result["methods"]["dense"], args.plot,
                                    f"{args.checkpoint} on {args.subset}: mAP vs GFLOPs over K = 1..{result['t']}",
                                    args.plot_js)
            log.info("wrote %s", path)
    except (*USER_ERRORS, ResultFileError) as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:  # the file system while writing an output: a full disk, a read-only folder
        where = f" {exc.filename}" if exc.filename else ""
        log.error("eval: cannot write%s: %s", where, exc.strerror or exc)
        return 2
    return 0
