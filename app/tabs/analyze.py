"""The analysis room: one clip in; its three curves, chosen frames, labels and cost out; ``/analyze``.

``build(ctx, banner)`` lays the room out (inside the caller's tab), wires its events and returns
its components as an ``AnalyzeTab``. Its callbacks (``Analysis``) are thin: check the request
(``app.tabs.request``), call nsnet (through ``ctx.runner``), hand the result to the pure views
(``app.views``) and return ``{AnalyzeTab field: value}``.

A Run sends its outputs in two steps: NSNet's own result (curves, chosen frames, labels, cost)
as soon as it exists, then, after the dense pass (the recognizer on every preview), the
comparison table, the teacher curve and what depends on them. A K / λ move re-ranks the
session's dense run (no decode, no network, no files) and sends only what would look different;
one made before the dense pass lands waits for it, and the run's last step follows the page's
latest K, λ, teacher curve and viewed frame, so either order ends right.
"""
# No ``from __future__ import annotations``: Gradio reads these signatures at runtime
# (``gr.Progress`` defaults, ``gr.SelectData`` and ``gr.Request`` hints).
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr

from nsnet.data.records import VIDEO_EXTENSIONS
from nsnet.inference import PipelineResult

from ..state.context import AppContext
from ..state.examples import EXAMPLES_PER_PAGE, count_videos, examples_label
from ..state.session import DensePass, Session, at, cleanup_session, start_session
from ..views import exports, plots
from ..views import result as views
from .base import QUIET, Panel, banner_value, named, plot_value
from .downloads import Downloads, wire_downloads
from .errors import finite_number, user_errors, whole_number
from .request import complete, dense_result, first_result, make_request

__all__ = ["AnalyzeTab", "Analysis", "build", "run_after", "RESULT_OUTPUTS"]

# What a run sends (``Analysis.render``); a K/λ move sends a subset.
RESULT_OUTPUTS = ("summary", "plot", "gallery", "labels", "compare", "removal", "cost", "frame_slider", "frame_image",
                  "frame_caption", "csv_button", "json_button", "png_button", "mp4_button", "session", "banner")
RUN_INPUTS = ("clip", "t_slider", "k_slider", "lam_slider", "checkpoint", "hub_id", "teacher", "frame_slider",
              "session")
DENSE_WAIT_S = 120.0   # a K / λ move waits this long for the dense pass of the run it re-ranks


@dataclass(frozen=True)
class AnalyzeTab(Panel):
    """The analysis room's components by name (the names its callbacks and events use)."""

    NOT_OUTPUTS = frozenset({"examples"})
    # inputs
    clip: gr.File
    examples: Optional[gr.Examples]
    t_slider: gr.Slider
    k_slider: gr.Slider
    lam_slider: gr.Slider
    checkpoint: gr.Dropdown
    hub_id: gr.Textbox
    teacher: gr.Checkbox
    run_button: gr.Button
    # results
    summary: gr.Markdown
    plot: gr.Plot
    gallery: gr.Gallery
    frame_slider: gr.Slider
    frame_image: gr.Image
    frame_caption: gr.Markdown
    labels: gr.Label
    cost: gr.Markdown
    csv_button: gr.Button          # visible; its click writes the CSV into csv_file
    json_button: gr.Button
    png_button: gr.Button          # the figure (PNG) and the highlight clip (MP4): made on the press only
    mp4_button: gr.Button
    csv_file: gr.DownloadButton    # hidden holders of the file just written, downloaded from the page
    json_file: gr.DownloadButton
    png_file: gr.DownloadButton
    mp4_file: gr.DownloadButton
    compare: gr.Dataframe
    removal: gr.Plot               # the one-clip removal curve (nsnet.evaluation.faithfulness.removal_curve)
    session: gr.State
    banner: gr.Markdown            # the page's model banner (the shell's): names the model of the result shown
    # the API-only /analyze endpoint (hidden)
    api_clip: gr.File
    api_t: gr.Number
    api_k: gr.Number
    api_lam: gr.Number
    api_checkpoint: gr.Textbox     # optional: a picker label, or (with --allow-hub) a Hub id
    api_result: gr.JSON
    api_button: gr.Button


def build(ctx: AppContext, banner: gr.Markdown) -> AnalyzeTab:
    """Lay the room out (inside the caller's ``gr.Blocks``), wire its events and return its components."""
    settings, store, examples = ctx.settings, ctx.store, ctx.examples
    cfg = store.default.config
    t0 = min(cfg.num_frames, settings.max_frames)
    k0 = min(cfg.k, t0)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):   # inputs
            clip = gr.File(label="Video clip", file_types=list(VIDEO_EXTENSIONS), type="filepath",
                           elem_id="clip-input", height=120)
            ex = gr.Examples(
                examples=[[str(e.path)] for e in examples], inputs=[clip],
                example_labels=[e.name + (f" · {e.label}" if e.label else "") for e in examples],
                label=examples_label(len(examples), max(len(examples), count_videos(settings.examples_dir))),
                examples_per_page=EXAMPLES_PER_PAGE) if examples else None
            t_slider = gr.Slider(2, settings.max_frames, value=t0, step=1, label="Preview frames T",
                                 elem_id="t-slider", info="decoded and scored by the sampler")
            k_slider = gr.Slider(1, t0, value=k0, step=1, label="Selected frames K", elem_id="k-slider",
                                 info="sent to the recognizer; moving it re-ranks instantly")
            lam_slider = gr.Slider(0.0, 1.0, value=float(cfg.lam), step=0.05, label="Fusion weight λ",
                                   elem_id="lam-slider", info="1 = frame-level head only, 0 = attention only")
            checkpoint = gr.Dropdown(store.labels, value=store.default_option.label, label="Checkpoint",
                                     interactive=len(store.labels) > 1)
            hub_id = gr.Textbox(label="…or a Hugging Face Hub id", placeholder="user/nsnet-checkpoint",
                                visible=settings.allow_hub, max_lines=1)
            teacher = gr.Checkbox(False, label="Show teacher curve",
                                  info="recognizer confidence of the predicted class on every preview")
            run_button = gr.Button("Run", variant="primary", elem_id="run-button")
            gr.Markdown(
                f"Accepts {', '.join(e.lstrip('.') for e in VIDEO_EXTENSIONS)} up to "
                f"{settings.max_upload_mb:g} MB; decoding stops after {settings.time_budget_s:g} s. "
                "NSNet's result shows first; then each run also puts the other previews through the recognizer "
                "(the *dense* pass, about T/K times the recognizer cost) so that K and λ re-rank instantly and "
                "the comparison table and teacher curve are exact; the cost panel shows both.", elem_id="limits")

        with gr.Column(scale=3, min_width=480):
            summary = gr.Markdown("### No clip analysed yet\n\nUpload a clip or pick an example, "
                                  "then press **Run**.", elem_id="summary")
            plot = gr.Plot(plots.empty_figure(), label="Saliency over time", elem_id="saliency-plot",
                           show_label=False)
            gallery = gr.Gallery(label="Selected frames, in time order (#rank · time · fused score)",
                                 columns=4, height=250, object_fit="contain", allow_preview=False,
                                 elem_id="selected-gallery", buttons=[])
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=300):
                    frame_slider = gr.Slider(1, t0, value=1, step=1, label="Inspect any preview frame",
                                             interactive=False, elem_id="frame-slider")
                    frame_image = gr.Image(type="numpy", interactive=False, show_label=False, height=250,
                                           elem_id="frame-image", buttons=[])
                    frame_caption = gr.Markdown(elem_id="frame-caption")
                with gr.Column(scale=1, min_width=300):
                    labels = gr.Label(num_top_classes=5, label="Top-5 labels", elem_id="labels")
                    cost = gr.Markdown("**Cost** appears here after a run.", elem_id="cost")
                    with gr.Row():
                        csv_button = gr.Button("Per-frame table (CSV)", interactive=False, size="sm",
                                               elem_id="download-csv")
                        json_button = gr.Button("Full result (JSON)", interactive=False, size="sm",
                                                elem_id="download-json")
                        csv_file = gr.DownloadButton(visible="hidden", elem_id="csv-file")
                        json_file = gr.DownloadButton(visible="hidden", elem_id="json-file")
                    with gr.Row():
                        png_button = gr.Button("Figure (PNG)", interactive=False, size="sm", elem_id="download-png")
                        mp4_button = gr.Button("Highlights (MP4)", interactive=False, size="sm",
                                               elem_id="download-mp4")
                        png_file = gr.DownloadButton(visible="hidden", elem_id="png-file")
                        mp4_file = gr.DownloadButton(visible="hidden", elem_id="mp4-file")
            compare = gr.Dataframe(value=None, headers=views.COMPARISON_HEADERS, interactive=False,
                                   label="Same clip, same K: NSNet vs baselines", elem_id="compare",
                                   datatype=["str", "str", "str", "number", "number", "number"])
            removal = gr.Plot(plots.empty_figure("The removal curve appears after a run.", 260), show_label=False,
                              label="Removing the most salient previews one by one", elem_id="removal-plot")
    session = gr.State(None, time_to_live=3 * 3600, delete_callback=cleanup_session)
    with gr.Row(visible=False):   # the API-only /analyze (precision=None: 2.5 reaches the callback and is refused)
        api = dict(api_clip=gr.File(label="clip", type="filepath"), api_t=gr.Number(t0, label="num_frames"),
                   api_k=gr.Number(k0, label="k"), api_lam=gr.Number(float(cfg.lam), label="lam"),
                   api_checkpoint=gr.Textbox("", label="checkpoint"), api_result=gr.JSON(label="result"),
                   api_button=gr.Button("analyze"))
    tab = AnalyzeTab(
        clip=clip, examples=ex, t_slider=t_slider, k_slider=k_slider, lam_slider=lam_slider, checkpoint=checkpoint,
        hub_id=hub_id, teacher=teacher, run_button=run_button, summary=summary, plot=plot,
        gallery=gallery, frame_slider=frame_slider, frame_image=frame_image, frame_caption=frame_caption,
        labels=labels, cost=cost, csv_button=csv_button, json_button=json_button, png_button=png_button,
        mp4_button=mp4_button, csv_file=csv_file, json_file=json_file, png_file=png_file, mp4_file=mp4_file,
        compare=compare, removal=removal, session=session, banner=banner, **api)
    wire(tab, Analysis(ctx), ctx)
    return tab


def run_event(tab: AnalyzeTab, cb: "Analysis", ctx: AppContext, **extra: Any) -> dict[str, Any]:
    """The keyword arguments of a Run event (the button, an example, a dataset row that opens)."""
    return dict(fn=named(tab, user_errors(cb.run)), inputs=tab.pick(*RUN_INPUTS), outputs=tab.pick(*RESULT_OUTPUTS),
                concurrency_limit=ctx.settings.concurrency, concurrency_id="inference", show_progress_on=[tab.plot],
                **extra)


def run_after(tab: AnalyzeTab, ctx: AppContext, trigger: Any) -> None:
    """A Run of the clip in ``tab.clip`` when ``trigger`` (an event's dependency) succeeds: a dataset row opened."""
    trigger.success(**run_event(tab, Analysis(ctx), ctx, api_name="run_row", api_visibility="private"))


def wire(tab: AnalyzeTab, cb: "Analysis", ctx: AppContext) -> None:
    """Connect the room's events (inside the ``gr.Blocks`` that holds it)."""
    results = tab.pick(*RESULT_OUTPUTS)
    # Run (button or example click): the one event that decodes and runs networks, queued. Its
    # progress bar (decode, sampler, recognizer) is drawn over the chart only.
    tab.run_button.click(**run_event(tab, cb, ctx, api_name="run", api_visibility="undocumented"))
    if tab.examples is not None:
        tab.examples.load_input_event.then(**run_event(tab, cb, ctx, api_name="run_example",
                                                       api_visibility="undocumented"))
    # K or λ: re-rank the session's dense run; then the viewed frame's caption, once the re-rank is on the page.
    gr.on([tab.k_slider.change, tab.lam_slider.change], named(tab, user_errors(cb.rerank)),
          inputs=tab.pick("session", "k_slider", "lam_slider", "teacher", "frame_slider"), outputs=results,
          trigger_mode="always_last", show_progress="hidden", queue=False, api_name="rerank",
          api_visibility="undocumented"
          ).then(named(tab, user_errors(cb.show_caption)), tab.pick("session", "frame_slider"),
                 tab.pick("frame_caption"), **QUIET)
    tab.t_slider.change(named(tab, cb.limit_k), tab.pick("t_slider", "k_slider"), tab.pick("k_slider"), **QUIET)
    tab.teacher.change(named(tab, user_errors(cb.redraw_plot)), tab.pick("session", "teacher"), tab.pick("plot"),
                       **QUIET)
    tab.frame_slider.change(named(tab, user_errors(cb.show_frame)), tab.pick("session", "frame_slider"),
                            tab.pick("frame_image", "frame_caption"), trigger_mode="always_last", **QUIET)
    tab.gallery.select(named(tab, cb.select_gallery_frame), tab.pick("session"), tab.pick("frame_slider"), **QUIET)
    wire_downloads(tab, cb)
    # /analyze (clip, T, K, lam[, checkpoint] -> the ``predict --json`` object), queued with the runs. Its
    # errors are plain text (``api=True``); the page's are HTML-escaped for Gradio's toasts.
    tab.api_button.click(named(tab, user_errors(cb.analyze_api, api=True)),
                         tab.pick("api_clip", "api_t", "api_k", "api_lam", "api_checkpoint"), tab.pick("api_result"),
                         api_name="analyze", concurrency_limit=ctx.settings.concurrency, concurrency_id="inference",
                         api_description="Analyse a clip: clip, num_frames (T), k (K), lam and optionally checkpoint "
                                         "(a name of the checkpoint picker, or with --allow-hub a Hub id "
                                         "owner/name[@revision]; default: the default model) in; the "
                                         "`python -m nsnet predict --json` object out.")


def _images(session: Session) -> Any:
    """The session's preview JPEGs, or its in-memory frames once the export area evicted its folder."""
    if session.frame_files and (not session.export_dir or Path(session.export_dir).is_dir()):
        return session.frame_files
    frames = session.frames
    if frames is None:
        raise gr.Error("The previews of this run are no longer kept (this server bounds the disk and memory each "
                       "visitor may use); press Run to analyse the clip again.", title="Previews expired")
    return frames


class Analysis(Downloads):
    """The room's callbacks, bound to one ``AppContext``; each returns ``{AnalyzeTab field: value}``
    (the download buttons' from ``app.tabs.downloads``)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------ runs
    def run(self, clip, t, k, lam, checkpoint, hub_id, teacher, frame, session, progress=gr.Progress(),
            request: gr.Request = None):
        """The Run button: NSNet's result first, then the dense pass's (see the module docstring)."""
        def report(stage: str, frac: float) -> None:
            progress(min(max(frac, 0.0), 1.0), desc=stage)

        req = make_request(self.ctx, clip, t, k, lam, checkpoint, hub_id)
        frames, base, cached = first_result(self.ctx, req, report)
        dense = None if cached else DensePass(k=req.k, lam=req.lam, teacher=bool(teacher), frame=None)
        known = req.known
        new = start_session(session, self.ctx.exports, self.ctx.frame_pool, getattr(request, "session_hash", None),
                            frames, base, at(base, req.k, req.lam) if base.frame_probs is not None else base,
                            clip_name=req.clip_name, model_name=req.option.label, cached=cached, dense=dense,
                            segments=tuple(known.segments) if known else (), gt_label=known.label if known else None,
                            video_id=known.name if known else None)
        ranks = views.selection_ranks(new.result)
        best = min(ranks, key=ranks.get) + 1  # show the most salient frame first
        if dense is not None:
            dense.note(frame=best)
        first = self.render(new, teacher, best, reset_frame=True)
        first["banner"] = banner_value(req.pipe.config, req.option.label, req.option.source)
        if dense is None:
            yield first
            return
        completed = None
        try:
            yield first
            completed = complete(self.ctx, req, frames, base)
        finally:   # an event waiting for the dense pass goes on (it says so if the pass failed)
            view = dense.finish(completed)
        done = dataclasses.replace(new, base=completed, result=at(completed, view["k"], view["lam"]), dense=None)
        out = self.render(done, view["teacher"], view["frame"], reset_frame=False, previous=new.result)
        shown = views.clamp_frame(view["frame"], done.base.num_frames) - 1
        out["frame_caption"] = views.frame_caption(done.result, shown, done.segments)
        for name in ("summary", "plot"):
            if out[name] == first[name]:
                del out[name]
        yield out

    def rerank(self, session, k, lam, teacher, frame):
        """K or λ moved: re-rank the cached per-frame outputs (no decode, no network, no files)."""
        if not isinstance(session, Session):
            return {}
        k, lam = whole_number(k, "K"), finite_number(lam, "λ")
        if k > session.base.num_frames:
            raise gr.Error(f"K={k} is larger than the T={session.base.num_frames} previews of the last run; "
                           "press Run to decode more previews.", title="K too large")
        if session.dense is not None:
            session.dense.note(k=k, lam=lam, teacher=bool(teacher), frame=frame)
        done = session.completed(DENSE_WAIT_S)
        if done is None:
            raise gr.Error("The dense pass of this run did not finish; press Run again.", title="Run incomplete")
        return self.render(dataclasses.replace(done, result=at(done.base, k, lam)), teacher, frame, reset_frame=False,
                           previous=session.result)

    def render(self, session: Session, teacher: bool, frame: Any, *, reset_frame: bool,
               previous: Optional[PipelineResult] = None) -> dict[str, Any]:
        """The result outputs for a session (names from ``RESULT_OUTPUTS``).

        With ``previous`` (the result the page shows now), outputs whose content would not
        change are left out, so the browser redraws only what moved. After a run
        (``reset_frame``) every output is sent and the download buttons are enabled.
        """
        r = session.result
        images = _images(session)
        out: dict[str, Any] = {
            "summary": views.summary_markdown(r, session.clip_name, session.model_name, cached=session.cached,
                                              segments=session.segments, gt_label=session.gt_label),
            "plot": plot_value(plots.saliency_spec(r, segments=session.segments, teacher=bool(teacher))),
            "session": session,
        }

        def changed(view: Callable[[PipelineResult], Any]) -> bool:
            return previous is None or view(previous) != view(r)

        if changed(views.gallery_key):
            out["gallery"] = gr.update(value=views.gallery_items(r, images), columns=min(max(r.k, 2), 8))
        if changed(views.label_scores):
            out["labels"] = views.label_scores(r)
        table = functools.partial(views.comparison_rows, video_id=session.video_id)  # random-K: the row's frames
        if changed(table):
            out["compare"] = gr.update(value=table(r), headers=views.COMPARISON_HEADERS)
        if changed(lambda x: (x.lam, x.frame_probs is not None)):   # the removal order follows λ, not K
            out["removal"] = plot_value(plots.removal_spec(r))
        if changed(views.cost_markdown):
            out["cost"] = views.cost_markdown(r)
        if reset_frame:  # (after a K / λ move the viewed frame is unchanged; its caption follows in a chained event)
            frame_index = views.clamp_frame(frame, r.num_frames)
            image, caption = views.frame_view(r, frame_index - 1, session.segments, images)
            out.update(frame_slider=gr.update(maximum=r.num_frames, value=frame_index, interactive=True),
                       frame_image=image, frame_caption=caption,
                       **{b: gr.update(interactive=True) for b in ("csv_button", "json_button", "png_button",
                                                                   "mp4_button")})
        return out

    # ------------------------------------------------------------ the page, no network
    def redraw_plot(self, session, teacher):
        if not isinstance(session, Session):
            return {}
        if session.dense is not None:
            session.dense.note(teacher=bool(teacher))   # the curve follows with the dense pass
        return {"plot": plot_value(plots.saliency_spec(session.result, segments=session.segments,
                                                       teacher=bool(teacher)))}

    def show_frame(self, session, frame):
        if not isinstance(session, Session):
            return {}
        r = session.result
        if session.dense is not None:
            session.dense.note(frame=frame)
        image, caption = views.frame_view(r, views.clamp_frame(frame, r.num_frames) - 1, session.segments,
                                          _images(session))
        return {"frame_image": image, "frame_caption": caption}

    def show_caption(self, session, frame):
        """The viewed frame's caption (after K / λ moved, its rank may have changed)."""
        if not isinstance(session, Session):
            return {}
        r = session.result
        return {"frame_caption": views.frame_caption(r, views.clamp_frame(frame, r.num_frames) - 1, session.segments)}

    def select_gallery_frame(self, session, evt: gr.SelectData):
        """Clicking a gallery thumbnail shows that frame in the viewer (1-based slider value)."""
        if not isinstance(session, Session) or evt is None or evt.index is None:
            return {}
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        selected = sorted(int(i) for i in session.result.selected)
        if not 0 <= int(index) < len(selected):
            return {}
        return {"frame_slider": selected[int(index)] + 1}

    def limit_k(self, t, k):
        """Keep K <= T on the sliders."""
        try:
            t, k = int(t), int(k)
        except (TypeError, ValueError):
            return {}
        return {"k_slider": gr.update(maximum=t, value=min(k, t))}

    def forget_session(self, request: gr.Request = None):
        """``demo.unload``: the visitor left; remove the session's folder now (not at its state's expiry)."""
        key = getattr(request, "session_hash", None)
        if key:
            self.ctx.exports.remove(self.ctx.exports.folder_of(key))

    # ------------------------------------------------------------ API
    def analyze_api(self, clip, num_frames, k, lam, checkpoint=None):
        """``/analyze``: the ``predict --json`` object of a clip as ``api_result`` (one dense run, cached for
        examples). ``checkpoint`` (optional): a label of the checkpoint picker, or, only with ``--allow-hub``,
        a Hub id ``owner/name[@revision]``; empty: the default model. ``video.path`` is ``null``: the server's
        temp path is meaningless to a client, and gradio_client would take any dict with a string ``path``
        for a file to download."""
        req = make_request(self.ctx, clip, num_frames, k, lam, checkpoint, by_name=True)
        return {"api_result": exports.public_dict(at(dense_result(self.ctx, req), req.k, req.lam), None)}
