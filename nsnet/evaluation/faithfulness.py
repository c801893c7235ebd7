"""Is the saliency faithful? Keep or drop the frames it ranks first, and watch the recognizer.

The deletion / insertion test of saliency maps (RISE, Petsiuk et al. 2018) applied to
frames, from cached per-frame outputs only (no network runs): a video's previews are
ranked by the fused saliency ``s_t`` (ties: the earlier frame first, as
:func:`~nsnet.models.selection.select_topk`), and for ``k = 1 .. T-1`` the video is
recognised, as every method here does, from the mean of the recognizer's class
probabilities over a set of its previews:

============  ================================================================
curve         previews the recognizer sees
============  ================================================================
keep_most     the k most salient (``keep_most`` at k = K is NSNet-K)
keep_least    the k least salient
keep_random   k at random
drop_most     the T - k left after dropping the k most salient
drop_least    the T - k left after dropping the k least salient
drop_random   the T - k left after dropping k at random
============  ================================================================

The random curves are averaged over ``seeds`` random orders per video; order ``j`` of a
video is ``torch.randperm(T)`` from a generator seeded with
:func:`~nsnet.inference.methods.video_seed` ``(seed + j, video_id)``, so the first k
previews of order 0 are exactly the frames random-K picks for that video at K = k.

Each curve is the top-1 accuracy over the videos (against the ground truth; in a set
without any labelled video, agreement with the full-clip prediction from all T previews,
and ``target`` says which), and, where labels exist, the mAP. ``auc`` is the normalised
area under each curve: the trapezoidal area over ``k = 1 .. T-1`` divided by its width
``T - 2`` (the single value when T = 2), so it lies in [0, 1] and reads as the curve's
average; it is comparable across T. A faithful saliency has ``keep_most`` high and
``keep_least`` low (the few frames it picks carry the evidence), and ``drop_most`` low
and ``drop_least`` high (without the frames it picks, the evidence is gone); random sits
between. docs/method.md, "Faithfulness", says how to read the curves.

:func:`removal_curve` is the one-clip view: what the recognizer says as the most (or
least) salient previews are removed one by one, from a dense ``PipelineResult``.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..inference.methods import video_seed
from ..inference.result import PipelineResult, json_safe
from ..models.selection import fuse
from .classwise import mean_ap, mean_ap_many

__all__ = ["CURVES", "DEFAULT_SEEDS", "MAX_SEEDS", "saliency_order", "normalised_auc", "faithfulness",
           "RowCollector", "faithfulness_from_rows", "faithfulness_from_outputs", "removal_curve"]

CURVES: tuple[str, ...] = ("keep_most", "keep_least", "keep_random", "drop_most", "drop_least", "drop_random")
DEFAULT_SEEDS = 5   # random orders per video
MAX_SEEDS = 100


def saliency_order(fused: np.ndarray, most_first: bool = True) -> np.ndarray:
    """(..., T) preview indices ranked by ``fused``, most (or least) salient first; ties: earlier frame first."""
    fused = np.asarray(fused, dtype=np.float64)
    return np.argsort(-fused if most_first else fused, axis=-1, kind="stable")


def normalised_auc(values: Sequence[float]) -> float | None:
    """Trapezoidal area under ``values`` at k = 1, 2, ... divided by the width (one value: itself)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return None
    if v.size == 1:
        return float(v[0])
    return float((v[:-1] + v[1:]).sum() / 2 / (v.size - 1))


def _random_orders(video_ids: Sequence[str], t: int, seed: int, seeds: int) -> np.ndarray:
    """(seeds, N, T) random preview orders, one generator per (seed + j, video)."""
    return np.stack([np.stack([torch.randperm(t, generator=torch.Generator().manual_seed(video_seed(seed + j, vid)))
                               .numpy() for vid in video_ids]) if video_ids else np.zeros((0, t), np.int64)
                     for j in range(seeds)])


def _curves(probs: np.ndarray, order: np.ndarray, target: np.ndarray, labels: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Top-1 (and mAP) at k = 1..T-1 of keeping / dropping the first k previews of ``order``.

    probs (N, T, C); order (N, T); target (N,) the class each video should get; labels
    (N,) for the mAP or None. Returns keep top-1 (T-1,), drop top-1, keep mAP, drop mAP.
    """
    t = probs.shape[1]
    ranked = np.take_along_axis(probs, order[:, :, None], axis=1)     # (N, T, C)
    kept = np.cumsum(ranked, axis=1, dtype=np.float64)[:, :-1]        # (N, T-1, C): sums over the first k
    dropped = probs.sum(1, dtype=np.float64)[:, None, :] - kept       # sums over the T-k others
    # the arg-max of a mean is the arg-max of the sum: no division for top-1
    keep_top1 = (kept.argmax(-1) == target[:, None]).mean(0)
    drop_top1 = (dropped.argmax(-1) == target[:, None]).mean(0)
    if labels is None:
        return keep_top1, drop_top1, None, None
    ks = np.arange(1, t)
    keep_map = mean_ap_many(np.swapaxes(kept / ks[None, :, None], 0, 1), labels)          # (T-1,)
    drop_map = mean_ap_many(np.swapaxes(dropped / (t - ks)[None, :, None], 0, 1), labels)
    return keep_top1, drop_top1, keep_map, drop_map


def faithfulness(frame_probs: np.ndarray, fused: np.ndarray, labels: Sequence[int] | np.ndarray,
                 video_ids: Sequence[str], *, seed: int = 0, seeds: int = DEFAULT_SEEDS,
                 with_map: bool = True) -> dict[str, Any] | None:
    """The ``faithfulness`` object of N videos (see the module docstring); None for no video.

    frame_probs (N, T, C) recognizer probabilities on every preview; fused (N, T) the
    saliency that ranks them; labels (N,) class indices, -1 for an unlabelled video (top-1
    and mAP are over the labelled ones; with none, top-1 is agreement with the full-clip
    prediction); video_ids (N,) seed the random orders (:func:`video_seed`).
    """
    probs = np.asarray(frame_probs, dtype=np.float32)
    fused = np.asarray(fused, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if probs.ndim != 3 or fused.shape != probs.shape[:2] or labels.shape != probs.shape[:1] \
            or len(video_ids) != probs.shape[0]:
        raise ValueError(f"frame_probs (N, T, C), fused (N, T), labels (N,) and video_ids (N,) must agree, got "
                         f"{probs.shape}, {fused.shape}, {labels.shape} and {len(video_ids)}")
    if not 1 <= int(seeds) <= MAX_SEEDS:
        raise ValueError(f"seeds must be between 1 and {MAX_SEEDS}, got {seeds}")
    n, t, c = probs.shape
    if t < 2:
        raise ValueError(f"faithfulness needs T >= 2 previews, got {t}")
    labels = np.where((labels >= 0) & (labels < c), labels, -1)
    labelled = labels >= 0
    ids = [str(v) for v in video_ids]
    if labelled.any():
        keep_rows, what = labelled, "ground truth"
    else:
        keep_rows, what = np.ones(n, bool), "full-clip prediction"
    probs, fused, ids = probs[keep_rows], fused[keep_rows], [v for v, k in zip(ids, keep_rows) if k]
    labels = labels[keep_rows]
    if probs.shape[0] == 0:
        return None
    full = probs.mean(1, dtype=np.float64)                                # (N, C): all T previews
    target = labels if what == "ground truth" else full.argmax(1)
    map_labels = labels if with_map and what == "ground truth" else None

    top1: dict[str, np.ndarray] = {}
    maps: dict[str, np.ndarray] = {}
    for name, order in (("most", saliency_order(fused, True)), ("least", saliency_order(fused, False))):
        top1[f"keep_{name}"], top1[f"drop_{name}"], maps[f"keep_{name}"], maps[f"drop_{name}"] = \
            _curves(probs, order, target, map_labels)
    runs = [_curves(probs, order, target, map_labels) for order in _random_orders(ids, t, seed, int(seeds))]
    top1["keep_random"] = np.mean([r[0] for r in runs], axis=0)
    top1["drop_random"] = np.mean([r[1] for r in runs], axis=0)
    if map_labels is not None:
        maps["keep_random"] = np.mean([r[2] for r in runs], axis=0)
        maps["drop_random"] = np.mean([r[3] for r in runs], axis=0)

    result: dict[str, Any] = {
        "t": t, "videos": int(probs.shape[0]), "target": what, "seed": int(seed), "seeds": int(seeds),
        "k": list(range(1, t)),
        **{name: [float(x) for x in top1[name]] for name in CURVES},
        "all_frames": float((full.argmax(1) == target).mean()),
        "auc": {name: normalised_auc(top1[name]) for name in CURVES},
        "map": None,
    }
    if map_labels is not None:
        result["map"] = {**{name: [float(x) for x in maps[name]] for name in CURVES},
                         "all_frames": mean_ap(full, map_labels),
                         "auc": {name: normalised_auc(maps[name]) for name in CURVES}}
    return json_safe(result)


class RowCollector:
    """Gathers what the curves need from ``analyze`` rows, one row at a time, as float32 arrays.

    A row is used when it has no ``error`` and its ``fused`` (T,) and ``frame_probs``
    (T, C) are complete; the first such row fixes T and C, and rows of another shape (a
    results file with mixed settings) or without ``frame_probs`` (an older file) are
    counted in ``skipped``.
    """

    def __init__(self, class_names: Sequence[str]) -> None:
        self.index = {name: i for i, name in enumerate(class_names)}
        self.ids: list[str] = []
        self.labels: list[int] = []
        self.probs: list[np.ndarray] = []
        self.fused: list[np.ndarray] = []
        self.shape: tuple[int, int] | None = None
        self.skipped = 0

    def add(self, row: dict) -> bool:
        """Take one row; False (and counted in ``skipped``) when it cannot be used."""
        if row.get("error"):
            return False
        try:
            probs = np.asarray(row.get("frame_probs"), dtype=np.float32)
            fused = np.asarray(row.get("fused"), dtype=np.float32)
        except (TypeError, ValueError):  # missing, ragged, or a null inside
            self.skipped += 1
            return False
        shape = self.shape or (probs.shape if probs.ndim == 2 else None)
        if (probs.ndim != 2 or probs.shape != shape or fused.shape != shape[:1] or shape[0] < 2
                or not (np.all(np.isfinite(probs)) and np.all(np.isfinite(fused)))):
            self.skipped += 1
            return False
        self.shape = shape
        self.ids.append(str(row.get("id")))
        self.labels.append(self.index.get(row.get("gt"), -1) if row.get("gt") is not None else -1)
        self.probs.append(probs)
        self.fused.append(fused)
        return True

    def result(self, *, seed: int = 0, seeds: int = DEFAULT_SEEDS, with_map: bool = True) -> dict[str, Any] | None:
        """The ``faithfulness`` object of the rows taken (plus ``skipped``), or None when none was usable."""
        if not self.ids:
            return None
        out = faithfulness(np.stack(self.probs), np.stack(self.fused), self.labels, self.ids, seed=seed,
                           seeds=seeds, with_map=with_map)
        if out is not None:
            out["skipped"] = self.skipped
        return out


def faithfulness_from_rows(rows: Iterable[dict], class_names: Sequence[str], *, seed: int = 0,
                           seeds: int = DEFAULT_SEEDS, with_map: bool = True) -> dict[str, Any] | None:
    """The ``faithfulness`` object of ``analyze`` rows (a results file read with ``jsonl.iter_rows``).

    ``class_names`` map the rows' ``gt`` to indices (the run file's ``classes``, see
    :func:`nsnet.evaluation.results.load_results`); ``seed`` should be the run's, so
    ``keep_random`` at k = K agrees with the rows' random-K.
    """
    collector = RowCollector(class_names)
    for row in rows:
        collector.add(row)
    return collector.result(seed=seed, seeds=seeds, with_map=with_map)


def faithfulness_from_outputs(out, lam: float, *, seed: int = 0, seeds: int = DEFAULT_SEEDS,
                              with_map: bool = True) -> dict[str, Any] | None:
    """The ``faithfulness`` object of ``eval``'s per-frame outputs (:class:`~nsnet.evaluation.evaluate.FrameOutputs`:
    ``frame_scores``, ``attention``, ``frame_probs``, ``labels``, ``video_ids``), ranked by ``fuse(p, g, lam)``."""
    n = out.frame_scores.shape[0]
    fused = fuse(out.frame_scores, out.attention, lam)
    ids = list(out.video_ids) or [str(i) for i in range(n)]
    return faithfulness(out.frame_probs.numpy(), fused.numpy(), out.labels.numpy(), ids, seed=seed, seeds=seeds,
                        with_map=with_map)


def removal_curve(result: PipelineResult, most_first: bool = True) -> dict[str, Any]:
    """What the recognizer says as the most (or least) salient previews are removed one by one.

    Needs a dense result (``frame_probs``). Step ``r = 0 .. T-1`` has removed the first r
    previews of the saliency order (step 0: all T previews, the full clip). Returns lists
    over the steps: ``removed`` (r), ``frame`` (the preview removed at that step, null at
    step 0), ``time_s`` (its timestamp), ``label`` / ``score`` (the top class on the
    previews left and its probability), ``full_label_prob`` (the probability of the
    full-clip label); plus ``full_label`` and ``order`` (``"most"`` or ``"least"``).
    """
    if result.frame_probs is None:
        raise ValueError("the removal curve needs per-frame recognizer outputs: run the pipeline with dense=True")
    probs = np.asarray(result.frame_probs, dtype=np.float64)                  # (T, C)
    t = probs.shape[0]
    order = saliency_order(result.fused, most_first)
    left = np.cumsum(probs[order[::-1]], axis=0)[::-1]                        # row r: sum over order[r:]
    means = left / (t - np.arange(t))[:, None]                                # (T, C) step r
    full = int(np.argmax(means[0]))
    tops = means.argmax(1)
    times = np.asarray(result.timestamps_s, dtype=np.float64)
    frames = [None] + [int(i) for i in order[:-1]]
    return json_safe({
        "order": "most" if most_first else "least",
        "full_label": result.class_names[full],
        "removed": list(range(t)),
        "frame": frames,
        "time_s": [None if i is None else round(float(times[i]), 4) for i in frames],
        "label": [result.class_names[int(c)] for c in tops],
        "score": [float(means[r, c]) for r, c in enumerate(tops)],
        "full_label_prob": [float(x) for x in means[:, full]],
    })
