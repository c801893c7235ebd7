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

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import distributed as dist_utils
from ..data.formats import load_dataset
from ..data.records import VIDEO_EXTENSIONS, DatasetError, VideoRecord
from ..models.backbones.base import backbone_fingerprint
from . import engine, jsonl
from .rows import ROW_METHODS, VideoInfo, summarize

__all__ = ["AnalyzeOptions", "resolve_inputs", "analyze", "format_summary", "model_fingerprint"]

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
    """Records to analyse and the datasets' class names (None when no annotation file is given).

    An annotation file (or a folder with ``annotations.json``) gives its records of
    ``subset`` (``None`` / ``"all"``: every one), labelled or not, missing files kept (they
    become error rows); several must share their class names. Every other input is a video
    file (id: its stem; its path when the stem is taken) or a folder (every video under it;
    id: the path relative to it without extension), unlabelled; paths that do not exist are
    kept as files (error rows). Inputs can be mixed: an annotated folder plus a few extra
    clips keeps the folder's labels, and the extra clips are unlabelled. A file listed
    twice is analysed once, as its first listing (a labelled one first).
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise DatasetError("no input: give an annotation file, a folder or video files")
    datasets = [p for p in paths if _is_dataset(p)]
    if not datasets and (video_root is not None or subset not in (None, "all")):
        log.warning("--video-root and --subset apply to annotation files only; ignored")
    records: list[VideoRecord] = []
    names: list[str] | None = None
    for p in datasets:
        found_records, found_names = load_dataset(p, video_root=video_root, subset=subset)
        if not found_records:
            raise DatasetError(f"{p}: no videos in subset {subset!r}")
        if names is not None and found_names != names:
            raise DatasetError(f"{p}: its classes differ from those of {datasets[0]}; analyse them separately")
        names = found_names
        records += found_records
    found: list[tuple[str, Path]] = []
    for p in paths:
        if p in datasets:
            continue
        if p.is_dir():
            found += [(f.relative_to(p).with_suffix("").as_posix(), f) for f in _walk(p)]
        else:
            found.append((p.stem, p))
    labelled_paths = {os.path.abspath(r.path) for r in records}
    unique_paths = {os.path.abspath(f): (vid, f) for vid, f in reversed(found)}  # first listing wins
    twice = len(found) - len(unique_paths) + sum(k in labelled_paths for k in unique_paths)
    if twice:
        log.warning("%d inputs listed twice were dropped", twice)
    found = [unique_paths[k] for k in dict.fromkeys(os.path.abspath(f) for _, f in found) if k not in labelled_paths]
    stems = [vid for vid, _ in found]
    taken = {r.video_id for r in records}
    records += [VideoRecord(vid if stems.count(vid) == 1 and vid not in taken else str(f), f, None, -1, None)
                for vid, f in found]
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
    if datasets and found:
        labelled = sum(r.label is not None for r in records)
        log.info("%d videos from annotation files and other files: %d labelled, %d unlabelled",
                 len(records), labelled, len(records) - labelled)
    return records, names


def model_fingerprint(pipe) -> str:
    """Short hash of a pipeline's weights (every tensor of sampler and recognizer) and class names:
    what ``OUT.run.json`` records so that ``--resume`` appends only rows of the same model."""
    h = hashlib.sha256()
    for module in (pipe.sampler, pipe.recognizer):
        h.update(backbone_fingerprint(module).encode())
    h.update(json.dumps(list(pipe.class_names)).encode())
    return h.hexdigest()[:16]


def _settings(opts: AnalyzeOptions, pipe) -> dict[str, Any]:
    """What ``OUT.run.json`` records: the settings ``--resume`` checks, what the model knows (``model``,
    :func:`~nsnet.inference.result.model_info`) and its class names in the order of the rows'
    ``class_scores`` / ``frame_probs`` (``classes``), so the rows read without the checkpoint."""
    from ..inference.result import model_info

    return {"checkpoint": opts.checkpoint, "fingerprint": model_fingerprint(pipe), "t": opts.num_frames,
            "k": opts.k, "lam": opts.lam, "seed": opts.seed, "precision": pipe.compute_precision,
            "model": model_info(pipe.config, opts.checkpoint), "classes": list(pipe.class_names)}


def _prepare_out(opts: AnalyzeOptions, pipe, settings: dict[str, Any]) -> set[str]:
    """Check ``OUT`` against ``resume`` (:func:`nsnet.evaluation.jsonl.prepare_out`); the ids already done.
    Every rank reads, nothing is written."""
    return jsonl.prepare_out(opts.out, settings, resume=opts.resume, num_classes=len(pipe.class_names))


def _same_on_every_rank(message: str | None, dist: dist_utils.DistInfo) -> str | None:
    """Rank 0's ``message`` on every rank (a refusal only rank 0 can see: the lock)."""
    if not dist.enabled:
        return message
    import torch.distributed

    box = [message]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def analyze(pipe, records: Sequence[VideoRecord], opts: AnalyzeOptions,
            dist: dist_utils.DistInfo | None = None) -> dict[str, Any] | None:
    """Analyse ``records`` into ``opts.out``; rank 0 returns the summary (other ranks None).

    ``OUT`` is checked up front (:func:`~nsnet.evaluation.jsonl.check_out`: a folder, a FIFO or a
    device is refused before anything is created) and rank 0 holds
    :class:`~nsnet.evaluation.jsonl.OutLock` for the whole run, so a second run on the same
    ``OUT`` is refused (``ResultFileError``, one line naming the holder). A full disk or a
    file-size limit is a ``ResultFileError`` too; the rows written before it are kept for
    ``--resume``.
    """
    dist = dist or dist_utils.DistInfo()
    out = Path(opts.out)
    jsonl.check_out(out)
    lock, refused = jsonl.OutLock(out), None
    if dist.is_main:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except (jsonl.ResultFileError, OSError) as exc:
            refused = str(exc) if isinstance(exc, jsonl.ResultFileError) else \
                f"{out}: cannot create it ({exc.strerror or type(exc).__name__})"
    refused = _same_on_every_rank(refused, dist)
    if refused:
        raise jsonl.ResultFileError(refused)
    try:
        return _analyze_locked(pipe, records, opts, dist)
    finally:
        lock.release()


def _analyze_locked(pipe, records: Sequence[VideoRecord], opts: AnalyzeOptions,
                    dist: dist_utils.DistInfo) -> dict[str, Any] | None:
    start = time.perf_counter()
    out = Path(opts.out)
    settings = _settings(opts, pipe)
    done = _prepare_out(opts, pipe, settings)
    dist_utils.barrier(dist)  # every rank has read what is done before anyone writes
    if dist.is_main:
        jsonl.atomic_write_text(jsonl.run_path(out), json.dumps(settings, indent=1) + "\n")
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
    processed = sum(dist_utils.all_gather(writer.count, dist))   # rows this run wrote, every rank's
    if not dist.is_main:
        return None
    total = jsonl.merge(out, {r.video_id: i for i, r in enumerate(records)})
    wall = time.perf_counter() - start
    summary = summarize(jsonl.iter_rows(out), pipe.class_names, seed=opts.seed)
    summary.update(settings, num_videos=total, processed=processed, wall_s=round(wall, 2),
                   videos_per_s=round(processed / wall, 3) if wall > 0 else None, device=str(pipe.device),
                   world_size=dist.world_size, batch_size=opts.batch_size, workers=opts.workers, out=str(out))
    jsonl.atomic_write_text(jsonl.summary_path(out), json.dumps(summary, indent=2) + "\n",
                            "the rows are complete in " + out.name)
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
    faith = summary.get("faithfulness")
    if faith:  # docs/method.md, "Faithfulness"
        auc = {name: "-" if v is None else f"{100 * v:.1f}" for name, v in faith["auc"].items()}
        lines.append(f"faithfulness (top-1 vs {faith['target']}, area over k = 1..{faith['t'] - 1}, "
                     f"{faith['videos']} videos): keep most / random / least salient {auc['keep_most']} / "
                     f"{auc['keep_random']} / {auc['keep_least']}; drop them {auc['drop_most']} / "
                     f"{auc['drop_random']} / {auc['drop_least']}")
    return "\n".join(lines)
