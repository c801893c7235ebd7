"""Pure views of a dataset's faithfulness curves and per-class results: a Plotly figure dict and a table.

``faithfulness_spec`` draws top-1 against k for the six curves of
``nsnet.evaluation.faithfulness`` (keep / drop the k most, least or random previews, ranked by the
fused saliency), their normalised areas (AUC) in the legend; with a second result set (B) its
``keep_most`` and ``drop_most`` on the same axes. ``per_class_table`` turns
``nsnet.evaluation.classwise``'s ``per_class`` object into the rows of the Dataset tab's per-class
table. No Gradio, no network.
"""
from __future__ import annotations

from typing import Any, Mapping

from .dataset_summary import chart_frame, empty_chart
from .plots import COLORS

__all__ = ["faithfulness_spec", "per_class_table", "CURVE_STYLE", "CLASS_METHODS"]

# curve -> (legend name, colour, dash)
CURVE_STYLE: dict[str, tuple[str, str, str]] = {
    "keep_most": ("keep most salient", COLORS["fused"], "solid"),
    "keep_least": ("keep least salient", "#0891b2", "solid"),
    "keep_random": ("keep random", "#9ca3af", "solid"),
    "drop_most": ("drop most salient", COLORS["fused"], "dash"),
    "drop_least": ("drop least salient", "#0891b2", "dash"),
    "drop_random": ("drop random", "#9ca3af", "dash"),
}
B_COLOR = "#d97706"
TITLE = "Faithfulness: keep / drop the k most salient frames"
CLASS_METHODS = {"nsnet": "NSNet", "uniform": "Uniform", "random": "Random", "dense": "Dense"}


def _auc(faith: Mapping[str, Any], curve: str) -> str:
    value = (faith.get("auc") or {}).get(curve)
    return "" if value is None else f" · AUC {value:.2f}"


def faithfulness_spec(a: Mapping[str, Any] | None, note: str = "", b: Mapping[str, Any] | None = None,
                      names: tuple[str, str] = ("A", "B"), height: int = 420) -> dict:
    """Top-1 (%) against k of A's six curves (B's ``keep_most`` / ``drop_most`` too when given); an empty chart
    saying ``note`` (why there are no curves) when ``a`` is None."""
    if not a:
        return empty_chart(TITLE, note or "no analysed video yet", height)
    prefix = f"{names[0]}: " if b else ""
    data: list[dict[str, Any]] = []
    for curve, (label, color, dash) in CURVE_STYLE.items():
        data.append(dict(type="scatter", mode="lines+markers", x=a["k"], y=[100 * v for v in a[curve]],
                         name=prefix + label + _auc(a, curve), marker=dict(size=4),
                         line=dict(color=color, dash=dash, width=2.6 if curve.endswith("most") else 1.6),
                         hovertemplate="k=%{x}: %{y:.1f}%<extra>" + prefix + label + "</extra>"))
    if b:
        for curve in ("keep_most", "drop_most"):
            label = CURVE_STYLE[curve][0]
            data.append(dict(type="scatter", mode="lines+markers", x=b["k"], y=[100 * v for v in b[curve]],
                             name=f"{names[1]}: {label}{_auc(b, curve)}", marker=dict(size=4, symbol="diamond"),
                             line=dict(color=B_COLOR, dash=CURVE_STYLE[curve][2], width=2.6),
                             hovertemplate="k=%{x}: %{y:.1f}%<extra>" + names[1] + ": " + label + "</extra>"))
    target = "ground truth" if a.get("target") == "ground truth" else "full-clip prediction (no ground-truth labels)"
    layout = chart_frame(f"{TITLE} · {a['videos']} video{'s' * (a['videos'] != 1)} · top-1 vs {target}", height,
                         f"k (of T={a['t']} previews kept, or dropped)", "top-1 (%)")
    layout["yaxis"]["range"] = [0, 102]
    layout["legend"] = dict(font=dict(size=10), orientation="h", x=0, y=-0.2, yanchor="top")
    layout["margin"]["b"] = 120
    return {"data": data, "layout": layout}


def _pct(x: Any) -> float | None:
    return None if x is None else round(100 * float(x), 1)


def per_class_table(per_class: Mapping[str, Any], b: Mapping[str, Any] | None = None
                    ) -> tuple[list[str], list[str], list[list[Any]]]:
    """(headers, datatypes, rows) of the per-class table: class, n, top-1 (%) of each method, AP (%) of each
    method; with ``b`` (B's ``per_class``) also B's NSNet top-1 and AP. Blank where unknown."""
    headers = ["Class", "n", *[f"top-1 {n}" for n in CLASS_METHODS.values()],
               *[f"AP {n}" for n in CLASS_METHODS.values()]]
    if b is not None:
        headers += ["top-1 B", "AP B"]
    types = ["str"] + ["number"] * (len(headers) - 1)
    rows = []
    for name, entry in per_class.items():
        row = [name, entry["n"], *[_pct(entry["top1"].get(m)) for m in CLASS_METHODS],
               *[_pct(entry["ap"].get(m)) for m in CLASS_METHODS]]
        if b is not None:
            other = b.get(name) or {}
            row += [_pct((other.get("top1") or {}).get("nsnet")), _pct((other.get("ap") or {}).get("nsnet"))]
        rows.append(row)
    return headers, types, rows
