"""``nsnet analyze``: NSNet over a whole dataset, one JSONL row a video (see ``nsnet.evaluation.analyze``).

Inputs: an annotation file (ActivityNet JSON, Kinetics CSV, or a folder holding
annotations.json) with --video-root and --subset, labelled or not; or folders (every video
under them) and video files. The model loads once; decoding runs in --workers processes,
overlapped with the networks, which run on --batch-size videos at a time. Rows go to
--out as each video finishes; --resume finishes a killed run. Under
``torchrun --nproc_per_node N -m nsnet analyze ...`` each rank takes a share and rank 0
merges. A summary is printed and written to OUT.summary.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging

import torch

from .. import distributed as dist_utils
from ..config import PipelineConfig
from ..errors import one_line
from ..evaluation.analyze import AnalyzeOptions, analyze, format_summary, resolve_inputs
from ..evaluation.engine import default_workers
from ..evaluation.jsonl import check_out
from ..inference import Pipeline, resolve_device
from .common import (INTERRUPTED, USER_ERRORS, add_backbone_path_flag, add_precision_flag, default_checkpoint,
                     is_main_process, resume_command)

log = logging.getLogger(__name__)

#: Collectives wait this long for the slowest rank's shard (torch's default is minutes); ``train`` waits as long.
BARRIER_TIMEOUT_S = dist_utils.DEFAULT_TIMEOUT_S


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet analyze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="annotation file (.json/.csv or a folder with annotations.json), "
                                             "or folders and video files")
    p.add_argument("--out", required=True, help="rows go to OUT.jsonl (summary: OUT.summary.json)")
    p.add_argument("--video-root", default=None, help="where an annotation file's videos are")
    p.add_argument("--subset", default="all", help="subset of an annotation file (default: all)")
    p.add_argument("--checkpoint", default=default_checkpoint(),
                   help="checkpoint folder or hub id (default: $NSNET_CHECKPOINT, else the bundled demo model)")
    p.add_argument("--frames", "-T", type=int, default=None, help="previews T (default: the checkpoint's)")
    p.add_argument("--k", "-K", type=int, default=None, help="frames kept (default: the checkpoint's)")
    p.add_argument("--lam", type=float, default=None, help="fusion weight (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-K baseline")
    p.add_argument("--batch-size", type=int, default=8, help="videos per network batch (default 8)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (default: on CUDA cores - 1, up to 8; on CPU 0 up to 2 cores, "
                        "else cores / 4; 0 decodes in this process)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (under torchrun: each rank its GPU)")
    p.add_argument("--resume", action="store_true", help="skip the videos already in OUT and its part files")
    p.add_argument("--max-videos", type=int, default=None)
    p.add_argument("--time-budget-s", type=float, default=30.0, help="give up decoding one video after this long")
    p.add_argument("--no-progress", action="store_true")
    add_precision_flag(p)
    add_backbone_path_flag(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    info = dist_utils.DistInfo()
    try:
        check_out(args.out)  # a folder, FIFO or device --out is refused before the model loads
        device = resolve_device(args.device)
        info = dist_utils.init(device)  # collectives wait dist_utils.collective_timeout_s()
        if device.type == "cuda" and info.enabled:
            device = torch.device("cuda", info.local_rank)
        pipe = Pipeline.from_pretrained(args.checkpoint, device=device,
                                        precision=args.precision, backbone_paths=dict(args.backbone_paths))
        t = args.frames or pipe.config.num_frames
        k = pipe.config.k if args.k is None else args.k
        lam = pipe.config.lam if args.lam is None else args.lam
        PipelineConfig.validate(t, k, lam)
        records, _ = resolve_inputs(args.inputs, video_root=args.video_root, subset=args.subset,
                                    max_videos=args.max_videos)
        index = {name: i for i, name in enumerate(pipe.class_names)}  # labels are matched to the model's by name
        records = [dataclasses.replace(r, label_index=index.get(r.label, -1)) for r in records]
        unknown = sorted({r.label for r in records if r.label is not None and r.label not in index})
        if unknown:
            log.warning("%d labels of the dataset are not classes of the checkpoint (e.g. %s): their videos are "
                        "analysed, with correct = null", len(unknown), ", ".join(unknown[:3]))
        opts = AnalyzeOptions(out=args.out, num_frames=t, k=k, lam=lam, seed=args.seed, batch_size=args.batch_size,
                              workers=default_workers(device) if args.workers is None else args.workers,
                              time_budget_s=args.time_budget_s, resume=args.resume, progress=not args.no_progress,
                              checkpoint=str(args.checkpoint))
        summary = analyze(pipe, records, opts, info)
    except (*USER_ERRORS, ValueError) as exc:  # a bad flag, checkpoint, dataset, --device cuda without a GPU
        log.error("%s", exc)
        return 2
    except OSError as exc:  # the file system: a folder that cannot be created, a read-only disk
        log.error("%s", one_line(exc))
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; the rows written so far stay
        if is_main_process():
            log.warning("interrupted: the rows written so far are kept in %s; resume with: %s", args.out,
                        resume_command("analyze", argv))
        return INTERRUPTED
    finally:
        dist_utils.shutdown(info)
    if summary is not None:
        print(format_summary(summary))
    return 0
