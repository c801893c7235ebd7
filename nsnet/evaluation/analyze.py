"""``nsnet analyze``: NSNet over a whole dataset, one JSONL row a video, resumable, on one or many processes.

Inputs (:func:`resolve_inputs`): an annotation file (ActivityNet JSON, Kinetics CSV, or a
folder holding ``annotations.json``) with ``video_root`` and ``subset``, labelled or not;
or folders (every video under them, recursively) and video files, unlabelled.

:func:`analyze` loads nothing: it takes a :class:`~nsnet.inference.Pipeline` and runs
:mod:`nsnet.evaluation.engine` over the videos this process owns, writing rows with
:mod:`nsnet.evaluation.jsonl`. Under ``torchrun`` rank ``r`` of ``W`` takes every ``W``-th
video still missing and writes ``OUT.rank{r}.jsonl``; after a barrier rank 0 merges
everything into ``OUT.jsonl`` (input order) and writes ``OUT.summary.json``. With
``resume`` every video already in ``OUT.jsonl`` or a part file is skipped, so a rerun
after a crash or a killed rank does only what is missing.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import distributed as dist_utils
from ..config import ConfigError
from ..data.formats import load_dataset
from ..data.records import VIDEO_EXTENSIONS, DatasetError, VideoRecord
from . import engine, jsonl
from .rows import ROW_METHODS, VideoInfo, summarize

__all__ = ["AnalyzeOptions", "resolve_inputs", "analyze", "format_summary"]

log = logging.getLogger(__name__)


@dataclass
class AnalyzeOptions:
    out: str
    num_frames: int
    k: int
    lam: float
    seed: int = 0
    batch_size: int = 8
    workers: int = 1
    time_budget_s: float | None = 30.0
    resume: bool = False
    progress: bool = True
    checkpoint: str | None = None  # recorded in OUT.run.json and the summary


def _walk(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / n for n in sorted(filenames)
                  if not n.startswith(".") and os.path.splitext(n)[1].lower() in VIDEO_EXTENSIONS]
    return sorted(found, key=lambda f: f.relative_to(folder).as_posix())


def _is_dataset(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in (".json", ".csv")) or (path / "annotations.json").is_file()


def resolve_inputs(inputs: Sequence[str | os.PathLike], *, video_root: str | os.PathLike | None = None,
                   subset: str | None = None, max_videos: int | None = None
                   ) -> tuple[list[VideoRecord], list[str] | None]:
    """Records to analyse and the dataset's class names (None for plain files and folders).

    One annotation file (or a folder with ``annotations.json``) gives its records of
    ``subset`` (``None`` / ``"all"``: every one), labelled or not, missing files kept (they
    become error rows). Otherwise each input is a video file (id: its stem, its path when
    two stems collide) or a folder (every video under it; id: the path relative to it
    without extension); paths that do not exist are kept as files (error rows).
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise DatasetError("no input: give an annotation file, a folder or video files")
    if len(paths) == 1 and _is_dataset(paths[0]):
        records, names = load_dataset(paths[0], video_root=video_root, subset=subset)
        if not records:
            raise DatasetError(f"{paths[0]}: no videos in subset {subset!r}")
    else:
        if video_root is not None or subset not in (None, "all"):
            log.warning("--video-root and --subset apply to annotation files only; ignored")
        found: list[tuple[str, Path]] = []
        for p in paths:
            if p.is_dir():
                found += [(f.relative_to(p).with_suffix("").as_posix(), f) for f in _walk(p)]
            else:
                found.append((p.stem, p))
        unique_paths = {os.path.abspath(f): (vid, f) for vid, f in reversed(found)}  # first listing wins
        if len(unique_paths) < len(found):
            log.warning("%d inputs listed twice were dropped", len(found) - len(unique_paths))
        found = [unique_paths[k] for k in dict.fromkeys(os.path.abspath(f) for _, f in found)]
        stems = [vid for vid, _ in found]
        records = [VideoRecord(vid if stems.count(vid) == 1 else str(f), f, None, -1, None) for vid, f in found]
        names = None
    unique: dict[str, VideoRecord] = {}
    for r in records:
        unique.setdefault(r.video_id, r)
    if len(unique) < len(records):
        log.warning("%d inputs listed twice were dropped", len(records) - len(unique))
    records = list(unique.values())
    if max_videos is not None:
        records = records[:max_videos]
    if not records:
        raise DatasetError("no videos found in the inputs")
    return records, names


def _settings(opts: AnalyzeOptions, pipe) -> dict[str, Any]:
    return {"checkpoint": opts.checkpoint, "t": opts.num_frames, "k": opts.k, "lam": opts.lam, "seed": opts.seed,
            "precision": pipe.compute_precision}


def _prepare_out(opts: AnalyzeOptions, pipe) -> set[str]:
    """Check ``OUT`` against ``resume``; the ids already done. Every rank reads, nothing is written."""
    out, parts = Path(opts.out), jsonl.part_files(opts.out)
    existing = [p for p in [out, *parts] if p.is_file() and p.stat().st_size > 0]
    if not opts.resume:
        if existing:
            raise ConfigError(f"{existing[0]} already exists: pass --resume to finish that run, or remove it")
        return set()
    run = jsonl.run_path(out)
    if run.is_file():
        try:
            before = json.loads(run.read_text())
        except (OSError, json.JSONDecodeError):
            before = {}
        mine = _settings(opts, pipe)
        changed = [key for key in ("t", "k", "lam", "seed", "precision") if key in before and before[key] != mine[key]]
        if changed:
            raise ConfigError(f"{out} was written with other settings ({', '.join(f'{c}={before[c]}' for c in changed)})"
                              ": resume with the same ones, or write to another --out")
    return jsonl.done_ids(out)


def analyze(pipe, records: Sequence[VideoRecord], opts: AnalyzeOptions,
            dist: dist_utils.DistInfo | None = None) -> dict[str, Any] | None:
    """Analyse ``records`` into ``opts.out``; rank 0 returns the summary (other ranks None)."""
    dist = dist or dist_utils.DistInfo()
    start = time.perf_counter()
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _prepare_out(opts, pipe)
    dist_utils.barrier(dist)  # every rank has read what is done before anyone writes
    if dist.is_main:
        tmp = jsonl.run_path(out).with_name(f".{jsonl.run_path(out).name}.tmp")
        tmp.write_text(json.dumps(_settings(opts, pipe), indent=1) + "\n")
        os.replace(tmp, jsonl.run_path(out))
    todo = [r for r in records if r.video_id not in done]
    mine = [VideoInfo.from_record(r) for r in todo[dist.rank::dist.world_size]]
    if dist.is_main:
        log.info("%d videos: %d done before, %d to analyse on %d process(es)", len(records), len(records) - len(todo),
                 len(todo), dist.world_size)
    target = out if not dist.enabled else jsonl.part_path(out, dist.rank)
    with jsonl.RowWriter(target) as writer:
        engine.run(pipe, mine, writer.write, num_frames=opts.num_frames, k=opts.k, lam=opts.lam, seed=opts.seed,
                   batch_size=opts.batch_size, workers=opts.workers, time_budget_s=opts.time_budget_s,
                   progress=opts.progress, is_main=dist.is_main, scale=dist.world_size)
    dist_utils.barrier(dist)
    if not dist.is_main:
        return None
    total = jsonl.merge(out, {r.video_id: i for i, r in enumerate(records)})
    wall = time.perf_counter() - start
    summary = summarize(jsonl.iter_rows(out), pipe.class_names)
    processed = max(0, total - len(done))
    summary.update(_settings(opts, pipe), num_videos=total, processed=processed, wall_s=round(wall, 2),
                   videos_per_s=round(processed / wall, 3) if wall > 0 else None, device=str(pipe.device),
                   world_size=dist.world_size, batch_size=opts.batch_size, workers=opts.workers, out=str(out))
    path = jsonl.summary_path(out)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, path)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines and a Markdown table (what ``nsnet analyze`` prints)."""
    c = summary["counts"]
    lines = [f"{c['videos']} videos in {summary['out']}: {c['ok']} analysed, {c['errors']} errors, "
             f"{c['labelled']} labelled; this run {summary['processed']} videos in {summary['wall_s']:.1f} s "
             f"({summary['videos_per_s'] or 0:.2f} videos/s, {summary['device']} {summary['precision']}, "
             f"{summary['world_size']} process(es))"]
    if summary.get("first_error"):
        lines.append(f"first error: {summary['first_error']}")
    lines += ["", f"| method (K = {summary['k']} of T = {summary['t']}) | mAP | top-1 | GFLOPs/video |",
              "|---|---:|---:|---:|"]
    for m in ROW_METHODS:
        v = summary["methods"][m]
        pct = lambda x: "-" if x is None else f"{100 * x:.1f}"  # noqa: E731
        gf = "-" if v["gflops"] is None else f"{v['gflops']:.2f}"
        lines.append(f"| {m} | {pct(v['map'])} | {pct(v['top1'])} | {gf} |")
    if summary.get("saliency_ap") is not None:
        lines.append(f"\nsaliency AP (fused, against ground-truth segments): {100 * summary['saliency_ap']:.1f}")
    return "\n".join(lines)
