"""A results file read back without the checkpoint: rows, run settings, class names, summary.

``nsnet analyze --out OUT.jsonl`` writes the rows and ``OUT.run.json`` (its settings and,
from the model, the class names as ``classes``). The rows carry ``class_scores`` and
``frame_probs`` as vectors over those classes, so with ``classes`` beside them every number
of the summary -- per-method mAP / top-1, ``per_class``, ``faithfulness`` -- can be
recomputed from the file alone (:func:`summarize_results`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import jsonl
from .rows import summarize

__all__ = ["Results", "load_results", "summarize_results"]


@dataclass(frozen=True)
class Results:
    """Valid rows of a results file in file order, its run settings (None without a run file) and class names."""

    path: Path
    rows: list[dict[str, Any]]
    run: dict[str, Any] | None
    class_names: list[str]
    skipped: int  # lines that are not valid rows


def _classes(run: dict[str, Any] | None) -> list[str] | None:
    names = (run or {}).get("classes")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def load_results(path: str | os.PathLike, class_names: Sequence[str] | None = None) -> Results:
    """Rows of ``OUT.jsonl`` with the class names of ``OUT.run.json`` (``classes``), else ``class_names``.

    Raises :class:`~nsnet.evaluation.jsonl.ResultFileError` (one line) when the file cannot
    be read, when neither the run file nor the caller names the classes, or when the rows'
    vectors have another number of classes than the names.
    """
    path = Path(path)
    read = jsonl.read_rows(path)
    run_file = jsonl.run_path(path)
    run = jsonl.read_run(run_file) if run_file.is_file() else None
    names = _classes(run) or (list(class_names) if class_names else None)
    if names is None:
        raise jsonl.ResultFileError(f"{path}: no class names ({run_file.name} has no 'classes', from an nsnet analyze "
                                    "older than this one): pass the checkpoint's class names")
    for row in read.rows:
        probs = row.get("frame_probs")
        if not row.get("error") and isinstance(probs, list) and probs and isinstance(probs[0], list):
            if len(probs[0]) != len(names):
                raise jsonl.ResultFileError(f"{path}: rows score {len(probs[0])} classes, the names are "
                                            f"{len(names)}: not the classes of this run")
            break
    return Results(path, read.rows, run, names, read.skipped_count)


def summarize_results(path: str | os.PathLike, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """:func:`~nsnet.evaluation.rows.summarize` of a results file, seeded with its run's seed."""
    res = load_results(path, class_names)
    seed = (res.run or {}).get("seed", 0)
    return summarize(res.rows, res.class_names, seed=seed if isinstance(seed, int) else 0)
