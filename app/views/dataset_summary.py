"""Pure views of a dataset's summary (``nsnet.evaluation.stats.DatasetSummary``): the markdown above
the table, where the rows come from, and two Plotly figure dicts (NSNet's confusion between classes,
accuracy vs K). No Gradio, no network."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from nsnet.evaluation.stats import DatasetSummary

from .plots import COLORS, FONT

__all__ = ["summary_markdown", "status_markdown", "checkpoint_name", "confusion_spec", "k_curve_spec", "count_note",
           "chart_frame", "empty_chart", "compare_markdown", "run_text",
           "MAX_CONFUSION_CLASSES"]

MAX_CONFUSION_CLASSES = 20
METHOD_NAMES = {"nsnet": "NSNet", "uniform": "Uniform", "random": "Random", "dense": "Dense"}
CURVE_COLORS = {"nsnet": COLORS["fused"], "uniform": "#0891b2", "random": "#9ca3af", "dense": "#111827"}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def summary_markdown(s: DatasetSummary, k: int | None = None, t: int | None = None,
                     predictions: Mapping[str, int] | None = None) -> str:
    """Per-method accuracy, the saliency AP and the most frequent NSNet confusions; without any ground truth,
    that accuracy needs labels and NSNet's most frequent predictions (``predictions``: label -> videos)."""
    if s.analysed == 0:
        return "No video analysed yet." if s.pending else "No video could be analysed."
    if s.with_gt == 0:
        text = (f"{s.analysed} video{'s' * (s.analysed != 1)} analysed, none with a ground-truth label: accuracy "
                "needs labels (an annotation file or a folder per class), so no row is marked right or wrong. "
                "The table shows every prediction.")
        if predictions:
            top = ", ".join(f"{label} ({n})" for label, n in Counter(predictions).most_common(5))
            text += f"\n\nNSNet's most frequent predictions: {top}."
        return text
    kk = f"-{k}" if k else ""
    head = ["| | NSNet" + kk + " | Uniform" + kk + " | Random" + kk + f" | Dense{'-' + str(t) if t else ''} |",
            "|---|---:|---:|---:|---:|",
            "| top-1 | " + " | ".join(f"**{_pct(s.accuracy['nsnet'])}**" if m == "nsnet" else _pct(s.accuracy[m])
                                     for m in ("nsnet", "uniform", "random", "dense")) + " |",
            "| right | " + " | ".join(f"{s.correct[m]} / {s.with_gt}" for m in ("nsnet", "uniform", "random", "dense"))
            + " |"]
    if any(v is not None for v in s.map.values()):
        head.append("| mAP | " + " | ".join(_pct(s.map[m]) for m in ("nsnet", "uniform", "random", "dense")) + " |")
    lines = ["\n".join(head)]
    facts = [f"{s.with_gt} video{'s' * (s.with_gt != 1)} with a ground-truth label"]
    if s.saliency_ap is not None:
        facts.append(f"mean saliency AP {s.saliency_ap:.3f}")
    lines.append(" · ".join(facts) + ".")
    errors = Counter({pair: n for pair, n in s.confusion.items() if pair[0] != pair[1]})
    if errors:
        top = ", ".join(f"{gt} → {pred} ({n})" for (gt, pred), n in errors.most_common(5))
        lines.append(f"NSNet's most frequent confusions (truth → predicted): {top}.")
    else:
        lines.append("NSNet confused no two classes.")
    return "\n\n".join(lines)


def checkpoint_name(checkpoint) -> str:
    """A results file's checkpoint as the page names it: a folder by its name (never a server path), a Hub id as is."""
    text = str(checkpoint or "")
    if not text or text.startswith("hub:") or not (text.startswith(("/", "~", ".")) or "\\" in text):
        return text
    return Path(text.rstrip("/\\")).name or text


def status_markdown(source: str, model: str, total: int, done: int, computing: bool, t: int, k: int, lam: float,
                    *, from_file: bool, errors: int = 0) -> str:
    """Where the rows come from and how far the lazy computation is."""
    params = f"T={t}, K={k}, λ={lam:.2f}"
    if from_file:
        how = f"rows from the results file `{source}` (" + (f"checkpoint `{model}`, " if model else "") + params + ")"
    else:
        how = f"rows computed here with **{model}** at {params} and cached"
    parts = [f"**{total}** videos · {how}"]
    if done < total:
        parts.append(f"analysing: {done} of {total} done" if computing else f"{done} of {total} analysed")
    if errors:
        parts.append(f"{errors} could not be analysed")
    parts.append("click a row to open it in the analysis view (with its ground truth)")
    return " · ".join(parts) + "."


def count_note(shown: int, total: int, page: int = 1, page_rows: int | None = None) -> str:
    """How many videos match the filters, and which page of them the table holds when there are several."""
    note = f"Showing **{shown}** of {total} videos." if shown != total else f"Showing all **{total}** videos."
    if page_rows and shown > page_rows:
        pages = -(-shown // page_rows)
        first, last = (page - 1) * page_rows + 1, min(page * page_rows, shown)
        note += f" Rows {first}–{last} (page {page} of {pages}); every row: the `/dataset` endpoint."
    return note


def chart_frame(title: str, height: int, x_title: str, y_title: str) -> dict:
    return dict(height=height, margin=dict(l=56, r=16, t=36, b=48), font=dict(family=FONT, size=12, color="#1f2937"),
                plot_bgcolor="white", paper_bgcolor="white", title=dict(text=title, font=dict(size=13), x=0.01),
                xaxis=dict(title=dict(text=x_title), automargin=True, gridcolor="#eef0f3"),
                yaxis=dict(title=dict(text=y_title), automargin=True, gridcolor="#eef0f3"))


def empty_chart(title: str, message: str, height: int) -> dict:
    layout = chart_frame(title, height, "", "")
    layout["xaxis"]["visible"] = layout["yaxis"]["visible"] = False
    layout["annotations"] = [dict(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                                  font=dict(size=13, color="#6b7280"))]
    return {"data": [], "layout": layout}


def confusion_spec(s: DatasetSummary, class_order: Sequence[str] = (), height: int = 340) -> dict:
    """NSNet's confusion (rows: ground truth, columns: predicted), as a heatmap figure dict.

    With more than ``MAX_CONFUSION_CLASSES`` classes, the ones with most errors are shown.
    """
    title = "NSNet confusion (truth ↓, predicted →)"
    if not s.confusion:
        return empty_chart(title, "no analysed video with a ground-truth label yet", height)
    seen = {c for pair in s.confusion for c in pair if c is not None}
    order = [c for c in class_order if c in seen] + sorted(seen - set(class_order))
    if len(order) > MAX_CONFUSION_CLASSES:
        wrong = Counter()
        for (gt, pred), n in s.confusion.items():
            if gt != pred:
                wrong[gt] += n
                wrong[pred] += n
        keep = {c for c, _ in wrong.most_common(MAX_CONFUSION_CLASSES)}
        order = [c for c in order if c in keep] or order[:MAX_CONFUSION_CLASSES]
        title += f": the {len(order)} most confused classes"
    z = [[s.confusion.get((gt, pred), 0) for pred in order] for gt in order]
    data = [dict(type="heatmap", x=order, y=order, z=z, colorscale=[[0, "#ffffff"], [1, COLORS["fused"]]],
                 showscale=False, xgap=1, ygap=1, text=[[str(v) if v else "" for v in row] for row in z],
                 texttemplate="%{text}", hovertemplate="truth %{y}<br>predicted %{x}<br>%{z} video(s)<extra></extra>")]
    layout = chart_frame(title, height, "", "")
    layout["yaxis"].update(autorange="reversed", tickfont=dict(size=10))
    layout["xaxis"].update(tickangle=-40, tickfont=dict(size=10))
    return {"data": data, "layout": layout}


def k_curve_spec(curve: dict | None, k: int | None = None, height: int = 340, note: str = "") -> dict:
    """Top-1 vs K for NSNet, uniform and random (lines) and dense-T (a flat line), figure dict."""
    title = "Top-1 vs K (cached per-frame outputs)"
    if not curve:
        return empty_chart(title, note or "no analysed video with a ground-truth label yet", height)
    ks = curve["k"]
    data: list[dict[str, Any]] = []
    for m in ("nsnet", "uniform", "random"):
        data.append(dict(type="scatter", mode="lines+markers", x=ks, y=[100 * v for v in curve[m]],
                         name=METHOD_NAMES[m] + "-K",
                         line=dict(color=CURVE_COLORS[m], width=3 if m == "nsnet" else 1.8),
                         marker=dict(size=5), hovertemplate="K=%{x}: %{y:.1f}%<extra>" + METHOD_NAMES[m] + "</extra>"))
    data.append(dict(type="scatter", mode="lines", x=[ks[0], ks[-1]], y=[100 * curve["dense"]] * 2,
                     name=f"Dense-{curve['t']}", line=dict(color=CURVE_COLORS["dense"], width=1.5, dash="dash"),
                     hovertemplate="%{y:.1f}%<extra>dense</extra>"))
    layout = chart_frame(f"Top-1 vs K · {curve['n']} video{'s' * (curve['n'] != 1)} · λ={curve['lam']:.2f}", height,
                     "K (frames to the recognizer)", "top-1 (%)")
    layout["yaxis"]["range"] = [0, 102]
    layout["legend"] = dict(x=0.99, xanchor="right", y=0.03, yanchor="bottom", bgcolor="rgba(255,255,255,0.85)",
                            font=dict(size=11))
    if k:
        layout["shapes"] = [dict(type="line", xref="x", yref="y domain", x0=k, x1=k, y0=0, y1=1,
                                 line=dict(color="#6b7280", width=1, dash="dot"))]
    return {"data": data, "layout": layout}


def _num(x: float | None, pct: bool = True) -> str:
    return "–" if x is None else (f"{100 * x:.1f}%" if pct else f"{x:.2f}")


def compare_markdown(c, a_name: str, b_name: str, a_params: str = "", b_params: str = "") -> str:
    """A and B (``app.state.dataset_stats.Comparison``) side by side: NSNet top-1 and mAP on the videos both
    analysed, how many each gets right that the other does not, and the mean overlap of the selections."""
    head = [f"| | A: `{a_name}` {a_params} | B: `{b_name}` {b_params} |", "|---|---:|---:|",
            f"| NSNet top-1 | {_num(c.top1['A'])} | {_num(c.top1['B'])} |"]
    if c.map["A"] is not None or c.map["B"] is not None:
        head.append(f"| NSNet mAP | {_num(c.map['A'])} | {_num(c.map['B'])} |")
    head.append(f"| right where the other is wrong | {c.a_only} | {c.b_only} |")
    facts = [f"on the {c.both} labelled video{'s' * (c.both != 1)} both analysed"]
    if c.overlap is not None:
        facts.append(f"mean overlap of the selections (IoU) {c.overlap:.2f} over {c.overlap_n}")
    if c.missing:
        facts.append(f"{c.missing} analysed video{'s' * (c.missing != 1)} not in B")
    return "\n".join(head) + "\n\n" + " · ".join(facts) + "."


def run_text(checkpoint: Any, t: Any, k: Any, lam: Any) -> str:
    """A run's checkpoint (by name, never a server path), T, K and λ, for the parts that are known."""
    name = checkpoint_name(checkpoint)
    parts = [f"checkpoint `{name}`" if name else "", f"T={t}, K={k}" if t is not None and k is not None else "",
             f"λ={lam:.2f}" if isinstance(lam, (int, float)) and not isinstance(lam, bool) else ""]
    return ", ".join(p for p in parts if p)
