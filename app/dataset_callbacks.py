"""Callbacks of the Dataset tab and of the ``/dataset`` endpoint (dataset mode, ``--data``).

Like ``app.callbacks`` they return ``{layout field name: value}``. Rows live in the shared
``DatasetStore`` (``AppContext.dataset``); the table, its filters and the summary are pure
functions of them (``app.dataset``, ``app.dataset_views``). Rows missing from ``--results``
are computed in the background the first time the tab is opened, with the default model,
through ``AppContext.runner`` (the same network-running function as a Run), and the
method decisions come from ``nsnet.inference.methods`` (``app.dataset.result_row``).
"""
# No ``from __future__ import annotations``: Gradio reads these signatures at runtime (``gr.SelectData``).
import threading
from typing import Any, Optional

import gradio as gr

from nsnet.data.records import VideoRecord

from . import dataset as ds
from . import dataset_views as dv
from .callbacks import AppContext, plot_value

__all__ = ["DatasetCallbacks", "DATASET_OUTPUTS", "POLL_S"]

# What opening the tab or a refresh sends (names of ``app.ui.Layout`` fields).
DATASET_OUTPUTS = ("ds_status", "ds_summary", "ds_confusion", "ds_kcurve", "ds_table", "ds_count", "ds_version",
                   "ds_timer")
POLL_S = 2.0   # while rows are being computed, the open tab refreshes this often (only if rows were added)


class DatasetCallbacks:
    """Event handlers of the Dataset tab, bound to one ``AppContext`` with a dataset."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._summary: tuple[int, Any] = (-1, None)
        self._params: Optional[tuple[int, int, float]] = None
        self._lock = threading.Lock()

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
        if not record.path.is_file():
            return ds.error_row(record, f"{record.path.name}: video file not found")
        _, result = self.ctx.runner.analyze(self.ctx.store.default, str(record.path), t, k, lam,
                                            self.ctx.settings.time_budget_s, None)
        return ds.result_row(record, result)

    def ensure_started(self) -> bool:
        """Start computing the rows that are missing (once per server); True while rows are being computed."""
        store = self.store
        if store.missing():
            store.start(self.compute_row, self.ctx.store.default_option.label)
        return store.computing

    # ------------------------------------------------------------------ views
    def summary(self):
        """The summary of every row (cached per store version: computed once per change)."""
        store = self.store
        with self._lock:
            version = store.version
            if self._summary[0] != version:
                _, _, lam = self.row_params()
                self._summary = (version, ds.summarise(store.rows(), self.ctx.store.default.class_names, lam))
            return self._summary[1]

    def table(self, class_name: Optional[str], outcome: Optional[str], text: Optional[str],
              sort: Optional[str] = None) -> tuple[list, int]:
        """The table's rows (filtered, then sorted by a ``dataset.SORTS`` choice) and how many there are."""
        if sort and sort not in ds.SORTS:
            raise gr.Error(f"unknown sort {sort!r}; choose from: {', '.join(ds.SORTS)}")
        key, descending = ds.SORTS[sort or ds.DATASET_ORDER]
        rows = ds.sort_rows(ds.filter_rows(self.store.rows(), class_name, outcome, text), key, descending)
        return [ds.table_row(r) for r in rows], len(rows)

    def status(self) -> str:
        store = self.store
        done, total, computing, errors = store.progress()
        t, k, lam = self.row_params()
        model = store.model_label or self.ctx.store.default_option.label
        if store.from_file and not store.model_label:
            model = str(store.results_settings.get("checkpoint") or "")
        return dv.status_markdown(store.results_path or store.source, model, total, done, computing, t, k, lam,
                                  from_file=store.from_file and not store.model_label, errors=errors)

    def everything(self, class_name, outcome, text, sort=None) -> dict[str, Any]:
        """Every output of the tab for the rows as they are now."""
        store = self.store
        s = self.summary()
        t, k, lam = self.row_params()
        note = ("" if s.analysed == 0 or not store.from_file else
                "needs per-frame class probabilities (frame_probs),<br>which this results file does not hold "
                "(rerun nsnet analyze)")
        values, shown = self.table(class_name, outcome, text, sort)
        return {
            "ds_status": self.status(),
            "ds_summary": dv.summary_markdown(s, k, t),
            "ds_confusion": plot_value(dv.confusion_spec(s, self.store.class_names)),
            "ds_kcurve": plot_value(dv.k_curve_spec(s.k_curve, k, note=note)),
            "ds_table": gr.update(value=values, headers=ds.TABLE_HEADERS),
            "ds_count": dv.count_note(shown, len(store.records)),
            "ds_version": store.version,
            "ds_timer": gr.Timer(active=store.computing),
        }

    # ------------------------------------------------------------------ events
    def open_tab(self, class_name, outcome, text, sort, version):
        """The tab was opened: start the lazy rows if any are missing; redraw when rows changed."""
        computing = self.ensure_started()
        if not computing and version == self.store.version:
            return {"ds_status": self.status()}
        return self.everything(class_name, outcome, text, sort)

    def tick(self, class_name, outcome, text, sort, version):
        """While rows are computed: redraw when rows were added; stop polling when done."""
        store = self.store
        if version == store.version:
            return {} if store.computing else {"ds_timer": gr.Timer(active=False), "ds_status": self.status()}
        return self.everything(class_name, outcome, text, sort)

    def filter(self, class_name, outcome, text, sort=None):
        """A filter or the sort changed: the table and the count (the summary is over the whole dataset)."""
        values, shown = self.table(class_name, outcome, text, sort)
        return {"ds_table": gr.update(value=values, headers=ds.TABLE_HEADERS),
                "ds_count": dv.count_note(shown, len(self.store.records))}

    def open_row(self, evt: gr.SelectData):
        """A row was clicked: its video goes into the clip input and the analysis tab opens (a Run follows)."""
        row = getattr(evt, "row_value", None) or []
        video_id = str(row[0]) if row else None
        record = self.store.record(video_id) if video_id is not None else None
        if record is None:
            raise gr.Error("This row is not a video of the dataset.", title="Cannot open")
        if not record.path.is_file():
            raise gr.Error(f"{record.video_id}: its video file is missing on the server.", title="Cannot open")
        return {"clip": str(record.path), "tabs": gr.Tabs(selected="analysis")}

    def dataset_api(self, class_name, outcome, text, sort_by, descending):
        """``/dataset``: the table rows as JSON, filtered (class, outcome, text) and sorted (a column key)."""
        if outcome and outcome not in ds.OUTCOMES:
            raise gr.Error(f"unknown outcome {outcome!r}; choose from: {', '.join(ds.OUTCOMES)}")
        if sort_by and sort_by not in ds.SORT_KEYS:
            raise gr.Error(f"unknown sort column {sort_by!r}; choose from: {', '.join(ds.SORT_KEYS)}")
        rows = ds.filter_rows(self.store.rows(), class_name or None, outcome or None, text or None)
        rows = ds.sort_rows(rows, sort_by or None, bool(descending))
        return {"api_ds_result": [ds.api_row(r) for r in rows]}
