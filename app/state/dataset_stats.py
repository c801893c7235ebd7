"""Numbers over a dataset's rows beyond ``nsnet.evaluation.stats``: faithfulness curves, per-class results, and
the two result sets side by side (``--compare-results``). All from the rows' cached outputs (``fused``,
``frame_probs``, ``class_scores``, the methods' marks): no network runs, no Gradio.

* :func:`faithfulness_of` -- ``nsnet.evaluation.faithfulness.faithfulness_from_rows`` of the analysed rows, or
  why there is none (a line the chart shows);
* :func:`per_class_of` -- ``nsnet.evaluation.classwise.per_class`` of the labelled rows' ``class_scores``; rows
  without them (an older results file) still give each class's ``n`` and top-1 from the rows' ✓/✗ marks;
* :func:`compare_of` -- A's and B's NSNet top-1 and mAP on the videos both analysed, the counts behind the
  outcome filters ``A right, B wrong`` / ``B right, A wrong``, and the mean overlap of the selections;
* :class:`DatasetNumbers` -- all of it (and ``nsnet.evaluation.stats.summarise``) for a ``DatasetStore``, once
  per store version.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from nsnet.evaluation.classwise import mean_ap, per_class
from nsnet.evaluation.faithfulness import DEFAULT_SEEDS, faithfulness_from_rows
from nsnet.evaluation.stats import finite, summarise
from nsnet.inference.methods import CLIP_METHODS

from .rows import run_classes

__all__ = ["faithfulness_of", "per_class_of", "compare_of", "Comparison", "Numbers", "DatasetNumbers", "compare_run",
           "NO_FRAME_PROBS"]

NO_FRAME_PROBS = ("needs the per-frame class probabilities (frame_probs),<br>which these rows do not hold "
                  "(rerun nsnet analyze)")


def _analysed(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if not r.get("error") and not r.get("pending") and isinstance(r.get("nsnet"), dict)]


def faithfulness_of(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str] | None, seed: int = 0,
                    seeds: int = DEFAULT_SEEDS) -> tuple[dict | None, str]:
    """(the ``faithfulness`` object of the analysed rows, "") or (None, why not). Top-1 only (no mAP: the chart
    shows top-1); rows without ground truth count against the full-clip prediction (``target`` says which)."""
    analysed = _analysed(rows)
    if not analysed:
        return None, "no analysed video yet"
    if not any(r.get("frame_probs") is not None for r in analysed):
        return None, NO_FRAME_PROBS
    names = list(class_names or ())
    if not names:
        return None, "the class names of these rows are unknown (no run file with 'classes')"
    width = {np.shape(r["frame_probs"])[-1] for r in analysed if r.get("frame_probs") is not None}
    if width != {len(names)}:
        return None, f"the rows score {sorted(width)} classes, the names are {len(names)}"
    try:
        out = faithfulness_from_rows(analysed, names, seed=seed, seeds=seeds, with_map=False)
    except ValueError as exc:   # T < 2
        return None, str(exc)
    return (out, "") if out is not None else (None, NO_FRAME_PROBS)


def _scores_ok(row: Mapping[str, Any], c: int) -> bool:
    scores = row.get("class_scores")
    return isinstance(scores, dict) and all(len(scores.get(m) or ()) == c for m in CLIP_METHODS)


def per_class_of(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str] | None) -> dict[str, Any]:
    """``{class: {n, top1: {method}, ap: {method}}}`` over the analysed rows with a ground-truth label, classes in
    the order of ``class_names`` (then any other label, sorted). ``ap`` is None for every method when the rows
    carry no ``class_scores`` over ``class_names`` (top-1 then comes from the rows' marks)."""
    judged = [r for r in _analysed(rows) if r.get("gt")]
    if not judged:
        return {}
    names = list(class_names or ())
    index = {c: i for i, c in enumerate(names)}
    if names and all(r["gt"] in index and _scores_ok(r, len(names)) for r in judged):
        scores = {m: np.asarray([r["class_scores"][m] for r in judged], dtype=np.float32) for m in CLIP_METHODS}
        return per_class(scores, [index[r["gt"]] for r in judged], names)
    labels = [r["gt"] for r in judged]
    order = [c for c in names if c in set(labels)] + sorted(set(labels) - set(names))
    out = {}
    for c in order:
        mine = [r for r in judged if r["gt"] == c]
        out[c] = {"n": len(mine),
                  "top1": {m: float(np.mean([(r.get(m) or {}).get("correct") is True for r in mine]))
                           for m in CLIP_METHODS},
                  "ap": {m: None for m in CLIP_METHODS}}
    return out


@dataclass(frozen=True)
class Comparison:
    """A and B on the videos both analysed with a ground-truth label (``both``), and the overlap of the
    selections over every video both analysed."""

    both: int                      # videos both analysed, with a ground-truth label
    top1: dict[str, float | None]  # "A" / "B" -> NSNet top-1 over ``both``
    map: dict[str, float | None]   # "A" / "B" -> NSNet mAP over ``both`` (None without class_scores)
    a_only: int                    # A right, B wrong
    b_only: int                    # B right, A wrong
    overlap: float | None          # mean IoU of the selections
    overlap_n: int                 # videos it is the mean over
    missing: int                   # rows B has no usable row for


def _nsnet_map(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> float | None:
    index = {c: i for i, c in enumerate(names)}
    usable = [r for r in rows if r.get("gt") in index and isinstance(r.get("class_scores"), dict)
              and len(r["class_scores"].get("nsnet") or ()) == len(names)]
    if not names or len(usable) != len(rows) or not rows:
        return None
    scores = np.asarray([r["class_scores"]["nsnet"] for r in usable], dtype=np.float32)
    return finite(mean_ap(scores, np.asarray([index[r["gt"]] for r in usable])))


def compare_of(joined: Sequence[Mapping[str, Any]], b_rows: Mapping[str, Mapping[str, Any]],
               a_classes: Sequence[str] | None, b_classes: Sequence[str] | None) -> Comparison:
    """The A/B numbers of ``DatasetStore.joined_rows()`` (A's rows with ``b_nsnet`` and ``overlap``); ``b_rows``:
    B's rows by id (for B's ``class_scores``)."""
    a_done = _analysed(joined)
    both = [r for r in a_done if isinstance(r.get("b_nsnet"), dict)]
    judged = [r for r in both if r.get("gt")]
    a_ok = [(r["nsnet"].get("correct") is True) for r in judged]
    b_ok = [(r["b_nsnet"].get("correct") is True) for r in judged]
    overlaps = [x for r in both if (x := finite(r.get("overlap"))) is not None]
    b_judged = [b_rows[str(r["id"])] for r in judged]
    return Comparison(
        both=len(judged),
        top1={"A": float(np.mean(a_ok)) if judged else None, "B": float(np.mean(b_ok)) if judged else None},
        map={"A": _nsnet_map(judged, a_classes or ()), "B": _nsnet_map(b_judged, b_classes or a_classes or ())},
        a_only=sum(a and not b for a, b in zip(a_ok, b_ok)), b_only=sum(b and not a for a, b in zip(a_ok, b_ok)),
        overlap=float(np.mean(overlaps)) if overlaps else None, overlap_n=len(overlaps),
        missing=len(a_done) - len(both))


@dataclass(frozen=True)
class Numbers:
    """Every number the Dataset tab shows about the whole dataset (one store version)."""

    summary: Any                          # ``nsnet.evaluation.stats.DatasetSummary`` of A's rows
    faithfulness: dict | None             # A's curves (None: ``faithfulness_note`` says why)
    faithfulness_note: str
    per_class: dict[str, Any]             # A's ``per_class``
    predictions: dict[str, int]           # NSNet label -> analysed videos (for a dataset without labels)
    b_faithfulness: dict | None = None    # with B loaded: B's curves, per-class and the comparison
    b_per_class: dict[str, Any] | None = None
    comparison: Comparison | None = None


def _seed(run: Mapping[str, Any]) -> int:
    seed = run.get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


class DatasetNumbers:
    """``Numbers`` of a ``DatasetStore``, computed once per store version (rows added, B attached) and shared by
    every visitor. ``model_classes``: what the default model scores (the lazily computed rows' classes), used when
    the results file's run file does not name its classes."""

    def __init__(self, store, model_classes: Sequence[str]) -> None:
        self.store = store
        self.model_classes = list(model_classes)
        self._cached: tuple[int, Numbers | None] = (-1, None)
        self._lock = threading.Lock()

    @property
    def a_classes(self) -> list[str]:
        return self.store.score_classes or self.model_classes

    @property
    def b_classes(self) -> list[str]:
        return run_classes(self.store.compare_settings) or self.a_classes

    def get(self, lam: float) -> Numbers:
        with self._lock:
            version = self.store.version
            if self._cached[0] != version or self._cached[1] is None:
                self._cached = (version, self._compute(lam))
            return self._cached[1]

    def _compute(self, lam: float) -> Numbers:
        store, names = self.store, self.a_classes
        rows = store.joined_rows()
        faith, note = faithfulness_of(rows, names, seed=_seed(store.results_settings))
        labels = Counter(r["nsnet"].get("label") for r in _analysed(rows) if r["nsnet"].get("label"))
        numbers = Numbers(summary=summarise(rows, names, lam, seed=_seed(store.results_settings)),
                          faithfulness=faith, faithfulness_note=note, per_class=per_class_of(rows, names),
                          predictions=dict(labels))
        if not store.compared:
            return numbers
        b_rows = store.compare_rows()
        b_faith, _ = faithfulness_of(b_rows, self.b_classes, seed=_seed(store.compare_settings))
        return replace(numbers, b_faithfulness=b_faith, b_per_class=per_class_of(b_rows, self.b_classes),
                       comparison=compare_of(rows, {str(r["id"]): r for r in b_rows}, names, self.b_classes))


def compare_run(store) -> tuple[Any, Any, Any, Any]:
    """B's (checkpoint, T, K, λ) as its run file records them (T and K else from its first analysed row)."""
    run = store.compare_settings
    t, k = run.get("t"), run.get("k")
    if not (isinstance(t, int) and isinstance(k, int)):
        row = next((r for r in store.compare_rows() if r.get("selected")), None)
        if row is not None:
            t, k = len(row.get("timestamps_s") or ()), len(row["selected"])
    return run.get("checkpoint"), t, k, run.get("lam")
