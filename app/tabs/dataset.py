"""The dataset room (dataset mode, ``--data`` / ``--results``): every video's outcome, filtered, sorted,
summarised, and a row opened in the analysis room; ``/dataset``.

``build(ctx, analysis_clip, tabs, run_after)`` lays the tab's contents out, wires its events and
returns its components as a ``DatasetTab``. Rows live in the shared ``DatasetStore``
(``ctx.dataset``); the table, its filters and the summary are pure functions of them
(``app.views.dataset_table``, ``app.views.dataset_summary``; the statistics are
``nsnet.evaluation.stats``'). Rows missing from ``--results`` are computed in the background the
first time the tab is opened or ``/dataset`` is called (``wait=True`` returns when all are in, within
``timeout_s``), with the default model, through ``ctx.runner`` (the same network-running function
as ``/analyze``). Over the whole dataset (``app.state.dataset_stats``, once per store version): the
faithfulness curves, a per-class table (a click on a class filters the rows to it) and, with
``--compare-results``, a second result set side by side (B's columns, outcome filters, both curves). The table is sent a page (``PAGE_ROWS``) at a time. A clicked row hands the clip
input a copy, in Gradio's cache, of its video checked at load (``app.state.dataset``): no dataset
folder is ever served. Callbacks (``DatasetRoom``) return
``{DatasetTab field: value}``.
"""
# No ``from __future__ import annotations``: Gradio reads these signatures at runtime (``gr.SelectData``).
from dataclasses import dataclass
from typing import Any, Callable, Optional

import gradio as gr

from nsnet.data.records import VideoRecord
from nsnet.evaluation.stats import DatasetSummary

from ..state.context import AppContext
from ..state.dataset import VideoRefused
from ..state.dataset_stats import DatasetNumbers, compare_run
from ..state.rows import error_row, result_row
from ..views import dataset_charts as charts
from ..views import dataset_summary as summary_views
from ..views import dataset_table as table
from .base import QUIET, Panel, named, plot_value
from .errors import user_errors
from .served import serve_copy

__all__ = ["DatasetTab", "DatasetRoom", "build", "DATASET_OUTPUTS", "POLL_S"]

# What opening the tab or a refresh sends.
DATASET_OUTPUTS = ("ds_status", "ds_summary", "ds_compare", "ds_confusion", "ds_kcurve", "ds_faith", "ds_classes",
                   "ds_table", "ds_count", "ds_page", "ds_version", "ds_timer")
VIEW_INPUTS = ("ds_class", "ds_outcome", "ds_text", "ds_sort", "ds_version", "ds_page")
POLL_S = 2.0   # while rows are being computed, the open tab refreshes this often (only if rows were added)
WAIT_DEFAULT_S = 300.0   # /dataset with wait=True: how long it waits for the missing rows by default
WAIT_MAX_S = 3600.0      # ... and at most


@dataclass(frozen=True)
class DatasetTab(Panel):
    """The dataset room's components by name (``clip`` and ``tabs`` are the page's: a row opens there)."""

    NOT_OUTPUTS = frozenset({"ds_tab"})
    ds_tab: gr.Tab
    ds_status: gr.Markdown
    ds_summary: gr.Markdown
    ds_confusion: gr.Plot
    ds_kcurve: gr.Plot
    ds_compare: gr.Markdown        # A and B side by side (with --compare-results)
    ds_faith: gr.Plot              # faithfulness curves
    ds_classes: gr.Dataframe       # per-class results; a click filters the table to the class
    ds_class: gr.Dropdown
    ds_outcome: gr.Dropdown
    ds_text: gr.Textbox
    ds_sort: gr.Dropdown
    ds_count: gr.Markdown
    ds_page: gr.Number
    ds_table: gr.Dataframe
    ds_timer: gr.Timer
    ds_version: gr.State
    clip: gr.File                  # the analysis room's clip input
    tabs: gr.Tabs                  # the page's tabs
    # the API-only /dataset endpoint (hidden)
    api_ds_class: gr.Textbox
    api_ds_outcome: gr.Textbox
    api_ds_text: gr.Textbox
    api_ds_sort: gr.Textbox
    api_ds_desc: gr.Checkbox
    api_ds_wait: gr.Checkbox
    api_ds_timeout: gr.Number
    api_ds_result: gr.JSON
    api_ds_button: gr.Button


def _value(update: Any) -> Any:
    """The value inside a ``gr.update(...)`` dict (initial values come from the same callbacks)."""
    return update.get("value") if isinstance(update, dict) and "__type__" in update else update


def build(ctx: AppContext, clip: gr.File, tabs: gr.Tabs, run_after: Callable[[Any], None]) -> DatasetTab:
    """The Dataset tab (inside the caller's ``gr.Tabs``; hidden without a dataset) and the hidden ``/dataset``
    inputs, events wired. A clicked row's video goes into ``clip``, ``tabs`` turns to the analysis room and
    ``run_after(event)`` runs it there."""
    room = DatasetRoom(ctx)
    first = room.everything(None, table.ALL, "") if ctx.dataset is not None else {}
    compared = room.compared
    with gr.Tab("Dataset", id="dataset", elem_id="tab-dataset", visible=ctx.dataset is not None) as ds_tab:
        status = gr.Markdown(_value(first.get("ds_status", "")), elem_id="ds-status")
        ds_compare = gr.Markdown(_value(first.get("ds_compare", "")), elem_id="ds-compare", visible=compared)
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=320):
                summary = gr.Markdown(_value(first.get("ds_summary", "")), elem_id="ds-summary")
            with gr.Column(scale=3, min_width=300):
                confusion = gr.Plot(_value(first.get("ds_confusion")), show_label=False, elem_id="ds-confusion")
            with gr.Column(scale=3, min_width=300):
                kcurve = gr.Plot(_value(first.get("ds_kcurve")), show_label=False, elem_id="ds-kcurve")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                faith = gr.Plot(_value(first.get("ds_faith")), show_label=False, elem_id="ds-faith")
            with gr.Column(scale=5, min_width=320):
                classes = gr.Dataframe(value=_value(first.get("ds_classes")) or None, interactive=False,
                                       max_height=340, elem_id="ds-classes", label="Per class (click one to filter)",
                                       wrap=False, headers=charts.per_class_table({}, {} if compared else None)[0])
        with gr.Row(equal_height=True):
            ds_class = gr.Dropdown([table.ANY_CLASS, *room.class_choices()], value=table.ANY_CLASS,
                                   label="Ground-truth class", elem_id="ds-class", scale=2)
            ds_outcome = gr.Dropdown(list(table.outcomes(compared)), value=table.ALL, label="Outcome",
                                     elem_id="ds-outcome", scale=2,
                                     info="NSNet / dense / uniform right or wrong against the ground truth"
                                          + ("; A: these rows, B: --compare-results" if compared else ""))
            ds_text = gr.Textbox(label="Search", placeholder="video id or label (every word must match)", max_lines=1,
                                 elem_id="ds-search", scale=2)
            ds_sort = gr.Dropdown(list(table.sorts(compared)), value=table.DATASET_ORDER, label="Sort",
                                  elem_id="ds-sort",
                                  scale=2, info="or any column from its ⋮ menu")
        with gr.Row(equal_height=True):
            count = gr.Markdown(_value(first.get("ds_count", "")), elem_id="ds-count")
            page = gr.Number(1, label=f"Page ({table.PAGE_ROWS} rows each)", precision=0, minimum=1, min_width=120,
                             scale=0, elem_id="ds-page")
        ds_table = gr.Dataframe(value=_value(first.get("ds_table")) or None, headers=table.headers(compared),
                                datatype=table.types(compared), interactive=False, max_height=620, elem_id="ds-table",
                                show_label=False, pinned_columns=1, buttons=["fullscreen", "copy"], wrap=False)
        gr.Markdown("Click a row to open that video in the analysis tab, with its ground truth beside the prediction "
                    "and its segments shaded. ✓ right, ✗ wrong, blank: no ground truth.", elem_id="ds-help")
        timer = gr.Timer(POLL_S, active=False)
        version = gr.State(first.get("ds_version", -1))
        with gr.Row(visible=False):   # /dataset answers with or without a dataset (then: how to start one)
            api = dict(api_ds_class=gr.Textbox("", label="class_name"),
                       api_ds_outcome=gr.Textbox(table.ALL, label="outcome"), api_ds_text=gr.Textbox("", label="text"),
                       api_ds_sort=gr.Textbox("", label="sort_by"), api_ds_desc=gr.Checkbox(False, label="descending"),
                       api_ds_wait=gr.Checkbox(False, label="wait"),
                       api_ds_timeout=gr.Number(WAIT_DEFAULT_S, label="timeout_s"),
                       api_ds_result=gr.JSON(label="rows"), api_ds_button=gr.Button("dataset"))
    tab = DatasetTab(ds_tab=ds_tab, ds_status=status, ds_summary=summary, ds_confusion=confusion, ds_kcurve=kcurve,
                     ds_compare=ds_compare, ds_faith=faith, ds_classes=classes,
                     ds_class=ds_class, ds_outcome=ds_outcome, ds_text=ds_text, ds_sort=ds_sort, ds_count=count, ds_page=page,
                     ds_table=ds_table, ds_timer=timer, ds_version=version, clip=clip, tabs=tabs, **api)
    wire(tab, room, run_after)
    return tab


def wire(tab: DatasetTab, room: "DatasetRoom", run_after: Callable[[Any], None]) -> None:
    """Rows computed lazily on first open (polled while they come), filters, a row -> a Run, ``/dataset``."""
    view_in, view_out = tab.pick(*VIEW_INPUTS), tab.pick(*DATASET_OUTPUTS)
    tab.ds_tab.select(named(tab, user_errors(room.open_tab)), view_in, view_out, api_name="dataset_open", **QUIET)
    tab.ds_timer.tick(named(tab, user_errors(room.tick)), view_in, view_out, api_name="dataset_tick", **QUIET)
    gr.on([tab.ds_class.change, tab.ds_outcome.change, tab.ds_text.change, tab.ds_sort.change],
          named(tab, user_errors(room.filter)), inputs=tab.pick("ds_class", "ds_outcome", "ds_text", "ds_sort"),
          outputs=tab.pick("ds_table", "ds_count", "ds_page"), trigger_mode="always_last", api_name="dataset_filter",
          **QUIET)
    tab.ds_page.input(named(tab, user_errors(room.page)),
                      inputs=tab.pick("ds_class", "ds_outcome", "ds_text", "ds_sort", "ds_page"),
                      outputs=tab.pick("ds_table", "ds_count", "ds_page"), trigger_mode="always_last",
                      api_name="dataset_page", **QUIET)
    tab.ds_classes.select(named(tab, user_errors(room.pick_class)), None, tab.pick("ds_class"), api_name="pick_class",
                          **QUIET)   # the class dropdown's change refreshes the table
    run_after(tab.ds_table.select(named(tab, user_errors(room.open_row)), None, tab.pick("clip", "tabs"),
                                  api_name="open_row", **QUIET))
    tab.api_ds_button.click(named(tab, user_errors(room.dataset_api, api=True)),
                            tab.pick("api_ds_class", "api_ds_outcome", "api_ds_text", "api_ds_sort", "api_ds_desc",
                                     "api_ds_wait", "api_ds_timeout"),
                            tab.pick("api_ds_result"), api_name="dataset", concurrency_limit=None,
                            api_description="The Dataset tab's rows as JSON: class_name (ground truth; '' = any), "
                                            "outcome (e.g. 'NSNet wrong, dense right'; default all), text (id or "
                                            "label words), sort_by (a row key, e.g. 'saliency_ap'), descending. "
                                            "Calling it starts the analysis of rows not computed yet; wait=True "
                                            f"returns only when every row is in, or after timeout_s (default "
                                            f"{WAIT_DEFAULT_S:g}, at most {WAIT_MAX_S:g}) seconds.")


class DatasetRoom:
    """The room's callbacks, bound to one ``AppContext`` with a dataset."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._params: Optional[tuple[int, int, float]] = None
        self._copies: dict = {}   # (video, size, mtime) -> its copy in Gradio's cache (``serve_copy``)
        data = ctx.dataset   # with --compare-results, B is attached when the store opens (app.shell.open_dataset)
        self.numbers = DatasetNumbers(data, ctx.store.default.class_names) if data is not None else None

    @property
    def compared(self) -> bool:
        """A second result set (B, ``--compare-results``) is shown beside the rows."""
        return self.ctx.dataset is not None and self.ctx.dataset.compared

    def class_choices(self) -> list[str]:
        """The class filter's choices: the dataset's classes, then any other ground truth of the rows."""
        names = list(self.ctx.dataset.class_names) if self.ctx.dataset is not None else []
        extra = {r.get("gt") for r in self.ctx.dataset.rows()} - set(names) - {None} if self.ctx.dataset else set()
        return names + sorted(str(x) for x in extra)

    @property
    def store(self):
        if self.ctx.dataset is None:
            raise gr.Error("No dataset is loaded on this server (start it with --data ANN|CSV|DIR).",
                           title="No dataset")
        return self.ctx.dataset

    # ------------------------------------------------------------------ the decisions rows use
    def row_params(self) -> tuple[int, int, float]:
        """T, K, λ of the rows: the results file's (T and K of its first analysed row), else the default model's."""
        if self._params is None:
            cfg = self.ctx.store.default.config
            t = min(cfg.num_frames, self.ctx.settings.max_frames)
            k, lam = min(cfg.k, t), float(cfg.lam)
            if self.ctx.dataset is not None and self.ctx.dataset.from_file:
                run = self.ctx.dataset.results_settings
                for row in self.ctx.dataset.rows():
                    if row.get("timestamps_s") and row.get("selected"):
                        t, k = len(row["timestamps_s"]), len(row["selected"])
                        break
                if isinstance(run.get("lam"), (int, float)):
                    lam = float(run["lam"])
            self._params = (t, k, lam)
        return self._params

    def compute_row(self, record: VideoRecord) -> dict:
        """Analyse one dataset video with the default model (dense, so the K curve needs no new pass)."""
        t, k, lam = self.row_params()
        store = self.store
        try:
            path = store.served(record.video_id)   # resolved and checked when the dataset loaded
        except VideoRefused:
            path = None
        if path is None or not path.is_file():
            name = store.shown_name(record)
            return error_row(record, f"{name}: video file not found", path=name)
        _, result = self.ctx.runner.analyze(self.ctx.store.default, str(path), t, k, lam,
                                            self.ctx.settings.time_budget_s, None)
        return result_row(record, result)

    def ensure_started(self) -> bool:
        """Start computing the rows that are missing (once per server); True while rows are being computed."""
        store = self.store
        if store.missing():
            store.start(self.compute_row, self.ctx.store.default_option.label)
        return store.computing

    # ------------------------------------------------------------------ views
    def summary(self) -> DatasetSummary:
        """The summary of every row (cached per store version: computed once per change)."""
        return self.numbers_now().summary

    def numbers_now(self):
        """Every number over the whole dataset (``app.state.dataset_stats.Numbers``), once per store version."""
        self.store   # noqa: B018 (no dataset: the one-line error)
        return self.numbers.get(self.row_params()[2])

    def table(self, class_name: Optional[str], outcome: Optional[str], text: Optional[str],
              sort: Optional[str] = None, page: Any = 1) -> tuple[list, int, int]:
        """One page (``table.PAGE_ROWS``) of the table's rows (filtered, then sorted by a ``SORTS`` choice), how
        many rows match and the page shown (clamped): a large dataset is never sent to the browser whole."""
        sorts, compared = table.sorts(self.compared), self.compared
        if sort and sort not in sorts:
            raise gr.Error(f"unknown sort {sort!r}; choose from: {', '.join(sorts)}")
        self._check_outcome(outcome)
        key, descending = sorts[sort or table.DATASET_ORDER]
        rows = table.sort_rows(table.filter_rows(self.store.joined_rows(), class_name, outcome, text), key, descending)
        shown, page = table.page_of(rows, page, table.PAGE_ROWS)
        return [table.table_row(r, compared) for r in shown], len(rows), page

    def _check_outcome(self, outcome: Optional[str]) -> None:
        known = table.outcomes(self.compared)
        if outcome and outcome not in known:
            extra = " (A/B outcomes need --compare-results)" if outcome in table.COMPARE_OUTCOMES else ""
            raise gr.Error(f"unknown outcome {outcome!r}{extra}; choose from: {', '.join(known)}")

    def status(self) -> str:
        store = self.store
        done, total, computing, errors = store.progress()
        t, k, lam = self.row_params()
        model = store.model_label or self.ctx.store.default_option.label
        if store.from_file and not store.model_label:
            model = summary_views.checkpoint_name(store.results_settings.get("checkpoint"))
        text = summary_views.status_markdown(store.source_name, model, total, done, computing, t, k,
                                             lam, from_file=store.from_file and not store.model_label, errors=errors)
        return text + (f"<br>B: rows from `{store.compare_name}` ({self._b_params()})." if store.compared else "")

    def _b_params(self) -> str:
        return summary_views.run_text(*compare_run(self.store))

    def everything(self, class_name, outcome, text, sort=None, page=1) -> dict[str, Any]:
        """Every output of the tab for the rows as they are now."""
        store, n = self.store, self.numbers_now()
        s, compared = n.summary, store.compared
        t, k, lam = self.row_params()
        note = ("" if s.analysed == 0 or not store.from_file else
                "needs per-frame class probabilities (frame_probs),<br>which this results file does not hold "
                "(rerun nsnet analyze)")
        values, shown, page = self.table(class_name, outcome, text, sort, page)
        heads, _, class_rows = charts.per_class_table(n.per_class, n.b_per_class if compared else None)
        return {
            "ds_status": self.status(),
            "ds_summary": summary_views.summary_markdown(s, k, t, n.predictions),
            "ds_compare": summary_views.compare_markdown(n.comparison, store.source_name, store.compare_name,
                                                         f"(T={t}, K={k}, λ={lam:.2f})", f"({self._b_params()})")
                          if compared and n.comparison is not None else "",
            "ds_confusion": plot_value(summary_views.confusion_spec(s, self.store.class_names)),
            "ds_kcurve": plot_value(summary_views.k_curve_spec(s.k_curve, k, note=note)),
            "ds_faith": plot_value(charts.faithfulness_spec(n.faithfulness, n.faithfulness_note, n.b_faithfulness,
                                                            ("A", "B"))),
            "ds_classes": gr.update(value=class_rows, headers=heads),
            "ds_table": gr.update(value=values, headers=table.headers(compared)),
            "ds_count": summary_views.count_note(shown, len(store.records), page, table.PAGE_ROWS),
            "ds_page": page,
            "ds_version": store.version,
            "ds_timer": gr.Timer(active=store.computing, render=False),
        }

    # ------------------------------------------------------------------ events
    def open_tab(self, class_name, outcome, text, sort, version, page=1):
        """The tab was opened: start the lazy rows if any are missing; redraw when rows changed."""
        computing = self.ensure_started()
        if not computing and version == self.store.version:
            return {"ds_status": self.status()}
        return self.everything(class_name, outcome, text, sort, page)

    def tick(self, class_name, outcome, text, sort, version, page=1):
        """While rows are computed: redraw when rows were added; stop polling when done."""
        store = self.store
        if version == store.version:
            return {} if store.computing else {"ds_timer": gr.Timer(active=False, render=False), "ds_status": self.status()}
        return self.everything(class_name, outcome, text, sort, page)

    def filter(self, class_name, outcome, text, sort=None):
        """A filter or the sort changed: the table and the count (the summary is over the whole dataset)."""
        return self.page(class_name, outcome, text, sort, 1)

    def page(self, class_name, outcome, text, sort=None, page=1):
        """Another page of the table (``table.PAGE_ROWS`` rows each), with the same filters and sort."""
        values, shown, page = self.table(class_name, outcome, text, sort, page)
        return {"ds_table": gr.update(value=values, headers=table.headers(self.compared)),
                "ds_count": summary_views.count_note(shown, len(self.store.records), page, table.PAGE_ROWS),
                "ds_page": page}

    def pick_class(self, evt: gr.SelectData):
        """A row of the per-class table was clicked: the class filter takes its class (its change redraws the
        table); an unknown class is refused in one line."""
        row = getattr(evt, "row_value", None) or []
        name = str(row[0]) if row else None
        if name is None or name not in self.class_choices():
            raise gr.Error("This row is not a class of the dataset.", title="Cannot filter")
        return {"ds_class": name}

    def open_row(self, evt: gr.SelectData):
        """A row was clicked: its video goes into the clip input and the analysis tab opens (a Run follows)."""
        row = getattr(evt, "row_value", None) or []
        video_id = str(row[0]) if row else None
        record = self.store.record(video_id) if video_id is not None else None
        if record is None:
            raise gr.Error("This row is not a video of the dataset.", title="Cannot open")
        store = self.store
        try:
            path = store.served(record.video_id)   # only videos checked at load (inside the dataset, video files)
        except VideoRefused:
            row = store.row(record.video_id) or {}
            raise gr.Error(str(row.get("error") or f"{store.shown_name(record)}: its video file is missing on the "
                                                   "server."), title="Cannot open") from None
        if not path.is_file():
            raise gr.Error(f"{store.shown_name(record)}: its video file is missing on the server.", title="Cannot open")
        return {"clip": serve_copy(path, self._copies), "tabs": gr.Tabs(selected="analysis")}

    def dataset_api(self, class_name, outcome, text, sort_by, descending, wait=False, timeout_s=WAIT_DEFAULT_S):
        """``/dataset``: the table rows as JSON, filtered (class, outcome, text) and sorted (a column key).

        Starts the analysis of the rows not computed yet (as opening the tab does). With ``wait`` it returns
        only when every row is in, or after ``timeout_s`` seconds (at most ``WAIT_MAX_S``): rows still being
        computed then come back pending (``nsnet_label`` null)."""
        self._check_outcome(outcome)
        keys = table.sort_keys(self.compared)
        if sort_by and sort_by not in keys:
            raise gr.Error(f"unknown sort column {sort_by!r}; choose from: {', '.join(keys)}")
        try:
            bound = WAIT_DEFAULT_S if timeout_s is None else float(timeout_s)
        except (TypeError, ValueError):
            raise gr.Error(f"timeout_s must be a number of seconds, got {timeout_s!r}") from None
        if not 0 <= bound <= WAIT_MAX_S:
            raise gr.Error(f"timeout_s must be between 0 and {WAIT_MAX_S:g} seconds, got {timeout_s!r}")
        if self.ensure_started() and wait:
            self.store.wait(bound)
        rows = table.filter_rows(self.store.joined_rows(), class_name or None, outcome or None, text or None)
        rows = table.sort_rows(rows, sort_by or None, bool(descending))
        return {"api_ds_result": [table.api_row(r, self.compared) for r in rows]}
