"""``python -m nsnet make-synthetic OUT --videos N --seed S``: write the benchmark folder.

Layout of ``OUT``::

    videos/<id>.mp4     h264 clips (written atomically: temp name + os.replace)
    classes.txt         one class name per line, in label-index order
    annotations.json    ActivityNet v1.3 layout, written last (its presence = complete)
    scenes.json         per video, the scene timeline (kind, start_s, end_s): for analysis
    generator.json      seed + config; a re-run with the same ones keeps finished videos

Generation is deterministic per seed (and config); videos render in parallel worker
processes (``--workers``, default ``os.cpu_count()``).
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import time
from pathlib import Path

from tqdm import tqdm

from ...progress import RateLog, show_bar
from .spec import SUBSETS, SynthConfig, VideoSpec, sample_spec

__all__ = ["generate", "main", "GENERATOR_VERSION", "write_json_atomic"]

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1


def write_json_atomic(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _render_one(job: tuple[VideoSpec, str]) -> tuple[str, float]:
    from .encode import GENERATOR_TAG, write_mp4
    from .render import Renderer

    spec, path = job
    t0 = time.perf_counter()
    write_mp4(Renderer(spec).frames(), path, spec.fps, comment=GENERATOR_TAG)
    return spec.video_id, time.perf_counter() - t0


def annotations_json(specs: list[VideoSpec], class_names: list[str]) -> dict:
    """The ActivityNet v1.3 document for ``specs`` (flat taxonomy under one root)."""
    taxonomy = [{"nodeId": 0, "nodeName": "Root", "parentId": None, "parentName": None}]
    taxonomy += [{"nodeId": k + 1, "nodeName": c, "parentId": 0, "parentName": "Root"}
                 for k, c in enumerate(class_names)]
    return {"version": "VERSION 1.3", "taxonomy": taxonomy,
            "database": {s.video_id: s.annotation() for s in specs}}


def generate(
    out: str | os.PathLike,
    num_videos: int,
    seed: int = 0,
    cfg: SynthConfig = SynthConfig(),
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Generate ``num_videos`` videos into ``out``; returns a summary dict."""
    if num_videos < 1:
        raise ValueError(f"--videos must be >= 1, got {num_videos}")
    out = Path(out)
    vdir = out / "videos"
    vdir.mkdir(parents=True, exist_ok=True)
    for stale in vdir.glob(".*.part"):
        stale.unlink()
    (out / "annotations.json").unlink(missing_ok=True)  # reappears only when complete
    manifest = {"generator": "nsnet.data.synthetic", "version": GENERATOR_VERSION, "seed": seed,
                "config": json.loads(json.dumps(cfg.to_dict()))}
    man_path = out / "generator.json"
    reuse = (not overwrite and man_path.exists()
             and json.loads(man_path.read_text() or "null") == manifest)
    write_json_atomic(manifest, man_path)

    specs = [sample_spec(seed, i, cfg) for i in range(num_videos)]
    jobs = [(s, str(vdir / f"{s.video_id}.mp4")) for s in specs]
    if reuse:
        jobs = [j for j in jobs if not Path(j[1]).exists()]
    kept = num_videos - len(jobs)
    if kept:
        log.info("keeping %d finished videos from an earlier run with the same seed and config", kept)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    t0 = time.perf_counter()
    # the CLI's rule (nsnet.progress): a bar only on a terminal; a log line every ~10% otherwise
    bar = tqdm(total=len(jobs), desc="rendering", unit="video", disable=not show_bar(progress) or not jobs)
    lines = RateLog(log, "rendering", len(jobs), max(1, len(jobs) // 10), enabled=progress and bar.disable)

    def done() -> None:
        bar.update()
        lines.update()

    if workers == 1:
        for job in jobs:
            _render_one(job)
            done()
    else:
        # forkserver: workers never inherit the caller's threads (torch, tqdm), unlike fork
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            for _ in pool.imap_unordered(_render_one, jobs, chunksize=1):
                done()
    bar.close()
    lines.finish()
    elapsed = time.perf_counter() - t0

    names = cfg.class_names
    (out / "classes.txt").write_text("\n".join(names) + "\n")
    write_json_atomic({s.video_id: [{"kind": sc.kind, "start_s": round(sc.start / s.fps, 4),
                                     "end_s": round(sc.end / s.fps, 4)} for sc in s.scenes] for s in specs},
                      out / "scenes.json")
    write_json_atomic(annotations_json(specs, names), out / "annotations.json")
    counts = {sub: sum(s.subset == sub for s in specs) for sub in SUBSETS}
    return {"out": str(out), "videos": num_videos, "rendered": len(jobs), "kept": kept,
            "classes": len(names), "subsets": counts, "seconds": elapsed,
            "videos_per_s": len(jobs) / elapsed if jobs and elapsed > 0 else None,
            "hours_of_video": sum(s.duration for s in specs) / 3600}


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, got {text!r}") from None
    return w, h


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nsnet make-synthetic",
                                 description="Generate the synthetic untrimmed-video benchmark.")
    ap.add_argument("out", help="output folder")
    ap.add_argument("--videos", type=int, default=300, help="number of videos (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=int, default=SynthConfig.num_classes,
                    help=f"number of classes, 2..{SynthConfig.num_classes} (default all)")
    ap.add_argument("--size", type=_size, default=(SynthConfig.width, SynthConfig.height), help="WxH (default 320x240)")
    ap.add_argument("--fps", type=int, default=SynthConfig.fps)
    ap.add_argument("--workers", type=int, default=None, help="processes (default os.cpu_count())")
    ap.add_argument("--overwrite", action="store_true", help="re-render videos even if already there")
    ap.add_argument("--contact-sheet", metavar="PNG", help="also draw a contact sheet (one row per class)")
    ap.add_argument("--sheet-frames", type=int, default=8, help="previews per row of the contact sheet")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        cfg = SynthConfig(num_classes=args.classes, width=args.size[0], height=args.size[1], fps=args.fps)
    except ValueError as e:
        ap.error(str(e))
    summary = generate(args.out, args.videos, args.seed, cfg, args.workers, args.overwrite,
                       progress=not args.no_progress)
    if args.contact_sheet:
        from .contact_sheet import make_contact_sheet

        make_contact_sheet([sample_spec(args.seed, i, cfg) for i in range(cfg.num_classes)],
                           args.contact_sheet, args.sheet_frames)
    rate = f", {summary['videos_per_s']:.2f} videos/s" if summary["videos_per_s"] else ""
    subs = ", ".join(f"{v} {k}" for k, v in summary["subsets"].items())
    print(f"wrote {summary['videos']} videos ({subs}; {summary['classes']} classes, "
          f"{summary['hours_of_video']:.2f} h) to {summary['out']} in {summary['seconds']:.1f} s{rate}"
          + (f"; contact sheet {args.contact_sheet}" if args.contact_sheet else ""))
    return 0
