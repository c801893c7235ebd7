"""The explorer end to end: gradio_client against the launched app, and the analysis room's callbacks
(``app.tabs.analyze``) in process.

A tiny random pipeline (64/96 px backbones, no pretrained weights) keeps every call
well under a second; clips are written by ``tests/clips.py``. Each launched app picks its own
free port (``server_port=None``: Gradio binds the first free one from 7860).
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

import naive  # noqa: E402
from clips import write_clip  # noqa: E402

T, K = 8, 3
KEYS = {"video", "timestamps_s", "frame_scores", "attention", "fused", "selected", "labels", "timings_ms", "gflops",
        "model"}   # the ``predict --json`` object


def tiny_pipeline():
    from nsnet.config import PipelineConfig, RecognizerConfig, SamplerConfig
    from nsnet.inference import Pipeline

    import torch

    torch.manual_seed(0)
    cfg = PipelineConfig(
        class_names=[f"class_{i}" for i in range(5)], num_frames=T, k=K, lam=0.5,
        sampler=SamplerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=64),
        recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=96))
    return Pipeline.build(cfg, device="cpu")


def launch(demo, settings, **overrides) -> str:
    """Launch ``demo`` in this process on a port the server picks itself; its URL."""
    from app.shell import launch_kwargs

    demo.launch(**launch_kwargs(settings, server_port=None, **overrides), prevent_thread_lock=True, quiet=True)
    return demo.local_url


def run_steps(cb, *args, **kwargs) -> list[dict]:
    """Every step a Run callback sent (``app.tabs.analyze.Analysis.run`` is a generator: NSNet's result,
    then the dense pass's)."""
    return list(cb.run(*args, **kwargs))


def run_all(cb, *args, **kwargs) -> dict:
    """What the page shows after a Run: its steps' outputs, each later one over the earlier."""
    out: dict = {}
    for step in run_steps(cb, *args, **kwargs):
        out.update(step)
    return out


def make_examples(folder: Path) -> Path:
    """One example clip (2 s) with an ActivityNet-style annotation of 0.5-1.0 s."""
    folder.mkdir(parents=True, exist_ok=True)
    write_clip(folder / "walk.mp4", num_frames=24, fps=12, size=(96, 64))
    (folder / "annotations.json").write_text(json.dumps({"database": {"walk": {
        "subset": "validation", "duration": 2.0, "annotations": [{"segment": [0.5, 1.0], "label": "walking"}]}}}))
    return folder


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app")


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def clip(workdir) -> Path:
    return write_clip(workdir / "clip.mp4", num_frames=30, fps=10, size=(96, 64))


@pytest.fixture(scope="module")
def settings(workdir):
    from app.server.settings import AppSettings

    return AppSettings(examples_dir=make_examples(workdir / "examples"), max_upload_mb=1.0,
                       time_budget_s=20.0, concurrency=1, max_queue=16, max_frames=32)


@pytest.fixture(scope="module")
def server(pipe, settings, workdir):
    from app.shell import build_demo

    demo = build_demo(pipe, settings, export_root=workdir / "exports")
    yield launch(demo, settings)
    demo.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server, verbose=False)


def check_result(data: dict, t: int = T, k: int = K, lam: float = 0.5) -> None:
    """Schema, and the decision re-derived by hand: fused = λ·norm(p) + (1-λ)·norm(g), its top K."""
    assert set(data) == KEYS
    assert data["video"]["path"] is None and data["video"]["width"] > 0
    for key in ("timestamps_s", "frame_scores", "attention", "fused"):
        assert len(data[key]) == t
    assert len(data["selected"]) == k and data["selected"] == sorted(data["selected"])
    assert data["fused"] == pytest.approx(naive.fuse(data["frame_scores"], data["attention"], lam), abs=1e-5)
    assert data["selected"] == naive.topk(data["fused"], k)
    assert len(data["labels"]) == 5 and data["labels"][0]["score"] >= data["labels"][-1]["score"]
    assert set(data["timings_ms"]) == {"decode", "sampler", "recognizer", "total"}
    assert set(data["gflops"]) == {"sampler", "recognizer", "total", "dense"}


# --------------------------------------------------------------------------- gradio_client
def test_analyze_endpoint_returns_predict_json(client, clip):
    data = client.predict(handle_file(str(clip)), T, K, 0.5, api_name="/analyze")
    check_result(data)
    other = client.predict(clip=handle_file(str(clip)), num_frames=10, k=2, lam=0.8, api_name="/analyze")
    check_result(other, t=10, k=2, lam=0.8)
    info = client.view_api(return_format="dict", print_info=False)
    assert "/analyze" in info["named_endpoints"]


def test_bad_inputs_give_clear_errors_and_app_keeps_serving(client, clip, workdir):
    junk = workdir / "junk.mp4"
    junk.write_bytes(b"this is not a video " * 50)
    text = workdir / "notes.txt"
    text.write_text("hello")
    cases = [(junk, T, K, "junk.mp4: not a video"),
             (text, T, K, "not a supported video file"),
             (clip, T, T + 1, f"k must be between 1 and T={T}"),
             (clip, 33, K, "above this server's limit of 32"),
             (clip, T, K, "lam must be between 0 and 1")]
    for path, t, k, message in cases:
        lam = 1.5 if "lam" in message else 0.5
        with pytest.raises(Exception) as err:
            client.predict(handle_file(str(path)), t, k, lam, api_name="/analyze")
        assert message in str(err.value), str(err.value)
        assert "/tmp" not in str(err.value)  # no server paths in messages
    check_result(client.predict(handle_file(str(clip)), T, K, 0.5, api_name="/analyze"))


def test_upload_over_size_limit_is_refused(server, client, clip, workdir):
    big = workdir / "big.mp4"
    big.write_bytes(clip.read_bytes() + b"\0" * (1_200_000))  # > max_upload_mb = 1
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client checks first
        client.predict(handle_file(str(big)), T, K, 0.5, api_name="/analyze")
    import httpx

    with big.open("rb") as fh:  # and the server refuses it too
        resp = httpx.post(f"{server}gradio_api/upload", files={"files": ("big.mp4", fh, "video/mp4")})
    assert resp.status_code == 413, resp.text
    check_result(client.predict(handle_file(str(clip)), T, K, 0.5, api_name="/analyze"))


def test_eight_concurrent_calls_all_answered_through_queue(server, clip):
    def call(i: int) -> dict:
        c = Client(server, verbose=False)
        return c.predict(handle_file(str(clip)), T, 1 + i % T, 0.5, api_name="/analyze")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(8)))
    for i, data in enumerate(results):
        check_result(data, k=1 + i % T)
    # the same clip and T: per-frame outputs agree whatever the K
    assert all(np.allclose(r["frame_scores"], results[0]["frame_scores"], atol=1e-5) for r in results)


# --------------------------------------------------------------------------- callbacks in process
@pytest.fixture
def callbacks(pipe, settings, tmp_path):
    from app.state.context import AppContext
    from app.state.examples import load_examples
    from app.state.models import CheckpointOption, ModelStore
    from app.tabs.analyze import Analysis

    store = ModelStore(pipe, CheckpointOption("tiny", ""))
    ctx = AppContext(store=store, settings=settings, examples=tuple(load_examples(settings.examples_dir)),
                     export_root=tmp_path / "exports")
    return Analysis(ctx)


def no_progress(*args, **kwargs):
    return None


def export_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".csv", ".json"))


def test_run_then_rerank_without_decoding_or_networks(callbacks, pipe, clip, monkeypatch):
    from app.state.session import Session
    from app.tabs.analyze import RESULT_OUTPUTS

    named = run_all(callbacks, str(clip), T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    assert set(named) == set(RESULT_OUTPUTS)  # a run sends every result output
    session = named["session"]
    assert isinstance(session, Session) and session.clip_name == "clip.mp4"
    assert session.frames.shape[0] == T and session.frames.dtype == np.uint8  # the previews, kept with the result
    assert "T=8, K=3" in named["summary"] and len(json.loads(named["plot"].plot)["data"]) >= 4
    assert len(named["gallery"]["value"]) == K and len(named["labels"]) == 5
    assert [row[0] for row in named["compare"]["value"]] == ["NSNet-3", "Uniform-3", "Random-3", "Dense-8"]
    assert named["csv_button"]["interactive"] and named["json_button"]["interactive"]  # downloads enabled
    assert len(session.frame_files) == T and all(Path(p).is_file() for p in session.frame_files)
    assert export_files(Path(session.export_dir)) == []  # no export is written until it is downloaded

    def boom(*args, **kwargs):
        raise AssertionError("re-ranking must not decode or run a network")

    monkeypatch.setattr("nsnet.video.read_clip", boom)
    monkeypatch.setattr("nsnet.inference.pipeline.read_clip", boom)
    monkeypatch.setattr(pipe, "read", boom)
    monkeypatch.setattr(pipe.sampler, "forward", boom)
    monkeypatch.setattr(pipe.recognizer, "forward", boom)
    out2 = callbacks.rerank(session, 5, 0.0, True, 2)
    assert "K=5, λ=0.00" in out2["summary"] and len(out2["gallery"]["value"]) == 5
    assert any(t["name"].startswith("teacher") for t in json.loads(out2["plot"].plot)["data"])
    assert out2["compare"]["value"][0][0] == "NSNet-5"
    assert not {"frame_image", "frame_slider", "csv_button", "json_button"} & set(out2)  # unchanged: not re-sent
    assert "selected, rank" in callbacks.show_caption(out2["session"], int(session.result.selected[0]) + 1)[
        "frame_caption"]
    with pytest.raises(gr.Error, match="larger than the T=8"):
        callbacks.rerank(session, 9, 0.5, False, 1)
    assert callbacks.rerank(None, 2, 0.5, False, 1) == {}  # no session yet: nothing sent, no error
    shown = callbacks.show_frame(out2["session"], 4)
    assert shown["frame_image"] == session.frame_files[3] and "Frame 4 of 8" in shown["frame_caption"]


def test_downloads_written_on_click_only(callbacks, clip):
    """A K/λ move writes no file; each download button writes its file, for the K and λ on the page."""
    from app.views.exports import public_dict

    session = run_all(callbacks, str(clip), T, K, 0.5, None, None, False, 1, None, progress=no_progress)["session"]
    folder = Path(session.export_dir)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    for k, lam in ((5, 0.0), (2, 0.35), (4, 1.0)):
        session = callbacks.rerank(session, k, lam, False, 1)["session"]
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # nothing written, nothing removed

    csv_path = Path(callbacks.download_csv(session)["csv_file"])
    assert csv_path.parent == folder and csv_path.name == "clip_T8_K4_lam1.00.csv"
    rows = csv_path.read_text().splitlines()
    assert len(rows) == T + 1 and sum(int(r.split(",")[5]) for r in rows[1:]) == 4  # K=4 selected
    assert export_files(folder) == [csv_path]
    json_path = Path(callbacks.download_json(session)["json_file"])
    data = json.loads(json_path.read_text())
    assert json_path.name == "clip_T8_K4_lam1.00.json" and data["video"]["path"] == "clip.mp4"
    assert len(data["selected"]) == 4 and data == json.loads(json.dumps(public_dict(session.result, "clip.mp4")))

    session = callbacks.rerank(session, 2, 0.5, False, 1)["session"]
    assert export_files(folder) == [csv_path, json_path]  # the move wrote nothing
    newer = Path(callbacks.download_csv(session)["csv_file"])
    assert newer.name == "clip_T8_K2_lam0.50.csv" and export_files(folder) == [newer, json_path]  # old CSV gone
    with pytest.raises(gr.Error, match="Run a clip first"):
        callbacks.download_csv(None)


def test_outputs_are_wired_by_name(pipe, settings, tmp_path):
    """Every output a callback names is a layout field; events write the components of those names."""
    import dataclasses

    from app.shell import build_demo
    from app.state.context import AppContext
    from app.state.models import CheckpointOption, ModelStore
    from app.tabs import analyze, compare, dataset
    from app.tabs.analyze import RESULT_OUTPUTS, AnalyzeTab

    fields = {f.name for f in dataclasses.fields(AnalyzeTab)}
    assert set(RESULT_OUTPUTS) <= fields
    assert set(compare.COMPARE_OUTPUTS) <= {f.name for f in dataclasses.fields(compare.CompareTab)}
    assert set(dataset.DATASET_OUTPUTS) <= {f.name for f in dataclasses.fields(dataset.DatasetTab)}
    store = ModelStore(pipe, CheckpointOption("tiny", ""))
    ctx = AppContext(store=store, settings=settings, export_root=tmp_path)
    with gr.Blocks():
        banner = gr.Markdown()
        layout = analyze.build(ctx, banner)
        room = compare.build(ctx, layout)
    assert layout.by_name({"plot": 1, "summary": "x"}) == {layout.plot: 1, layout.summary: "x"}
    assert layout.by_name({"banner": "b"}) == {banner: "b"}  # the shell's banner: written by a run
    assert layout.by_name({}) == gr.skip()
    with pytest.raises(ValueError, match="no output component named 'sumary'"):
        layout.by_name({"sumary": "typo"})
    with pytest.raises(ValueError, match="no output component named 'examples'"):
        layout.by_name({"examples": None})   # not an output
    with pytest.raises(ValueError, match="no output component named 'plot'"):
        room.by_name({"plot": 1})           # each room writes its own components only
    assert room.by_name({"cmp_plot": 1}) == {room.cmp_plot: 1}

    demo = build_demo(pipe, settings, examples=[], export_root=tmp_path)
    by_id = {block._id: block for block in demo.blocks.values()}

    def events(elem_id: str) -> list:
        ids = {i for i, b in by_id.items() if getattr(b, "elem_id", None) == elem_id}
        return [fn for fn in demo.fns.values() if any(target in ids for target, _ in fn.targets)]

    for slider in ("k-slider", "lam-slider"):  # a K/λ move: the re-rank, never a download
        (rerank,) = [fn for fn in events(slider) if fn.name == "rerank"]
        assert not {getattr(o, "elem_id", None) for o in rerank.outputs} & {"csv-file", "json-file"}
        assert not rerank.queue
    for button, holder in (("download-csv", "csv-file"), ("download-json", "json-file")):
        (click,) = events(button)
        assert [o.elem_id for o in click.outputs] == [holder]
    (run,) = events("run-button")
    assert [o.elem_id for o in run.show_progress_on] == ["saliency-plot"]  # the progress overlay: the chart only


def test_rerank_sends_only_what_changed(callbacks, tmp_path):
    """A K/λ move re-sends the chart and headline always, the rest only when it would look different."""
    from app.server.storage import FramePool
    from app.state.session import Session
    from app.views.result import gallery_items
    from nsnet.inference.methods import rerank
    from test_app_views import fake_frames, fake_result

    base = fake_result(t=16, k=4, lam=0.5)
    files = tuple(str(tmp_path / f"frame_{i:03d}.jpg") for i in range(16))
    pool = FramePool(1 << 30)
    session = Session(base=base, result=base, clip_name="clip.mp4", model_name="m",
                      frames_key=pool.put(fake_frames()), pool=pool, export_dir=str(tmp_path), frame_files=files)
    same = callbacks.rerank(session, 4, 0.5, False, 1)  # nothing moved
    for name in ("gallery", "labels", "compare", "cost"):
        assert name not in same, name
    assert "K=4, λ=0.50" in same["summary"] and json.loads(same["plot"].plot)["data"]
    assert same["session"].result.k == 4

    # λ moves but the same frames stay selected: new scores in the gallery captions, same prediction
    lams = [lam / 20 for lam in range(21) if lam != 10
            and sorted(rerank(base, 4, lam / 20).selected) == sorted(base.selected)
            and gallery_items(rerank(base, 4, lam / 20), files) != gallery_items(base, files)]
    assert lams, "no λ keeps the selection but changes the scores of this result"
    moved = callbacks.rerank(session, 4, lams[0], False, 1)
    assert "gallery" in moved and not {"labels", "compare", "cost"} & set(moved)
    assert f"λ={lams[0]:.2f}" in moved["summary"]

    # K moves: everything that depends on the selection is re-sent, and matches a fresh render
    grown = callbacks.rerank(moved["session"], 5, lams[0], False, 1)
    fresh = callbacks.render(grown["session"], False, 1, reset_frame=False)
    for name in ("gallery", "labels", "compare", "cost", "summary"):
        assert name in grown and grown[name] == fresh[name], name
    assert json.loads(grown["plot"].plot) == json.loads(fresh["plot"].plot)


def test_example_results_cached_lazily_with_ground_truth(pipe, settings, tmp_path):
    from app.server.runtime import Runner, analyze_file, first_pass
    from app.state.context import AppContext
    from app.state.examples import load_examples
    from app.state.models import CheckpointOption, ModelStore
    from app.tabs.analyze import Analysis

    calls = []
    counting = Runner(lambda *a, **kw: calls.append(1) or analyze_file(*a, **kw),
                      first=lambda *a, **kw: calls.append(1) or first_pass(*a, **kw))
    callbacks = Analysis(AppContext(store=ModelStore(pipe, CheckpointOption("tiny", "")), settings=settings,
                                     examples=tuple(load_examples(settings.examples_dir)),
                                     export_root=tmp_path / "exports", runner=counting))
    upload = tmp_path / "upload" / "walk.mp4"  # Gradio hands the callback a copy of the example
    upload.parent.mkdir()
    shutil.copy(settings.examples_dir / "walk.mp4", upload)
    first = run_all(callbacks, str(upload), T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    first_frames = first["session"].frames
    steps = run_steps(callbacks, str(upload), T, 2, 0.8, None, None, False, 1, first["session"], progress=no_progress)
    assert len(steps) == 1  # a cached run is complete at once: one step
    second = steps[0]
    assert first["session"].frames is None  # the visitor's new run let go of the old run's frames
    assert len(calls) == 1  # second run served from the cache, re-ranked to K=2, λ=0.8
    assert "example cache" in second["summary"] and "K=2, λ=0.80" in second["summary"]
    assert "ground-truth" in first["summary"]
    assert np.array_equal(second["session"].frames, first_frames)  # the cached previews
    assert len(second["gallery"]["value"]) == 2
    shapes = json.loads(second["plot"].plot)["layout"]["shapes"]
    assert [(s["x0"], s["x1"]) for s in shapes if s["type"] == "rect"] == [(0.5, 1.0)]  # ground truth shaded
    run_all(callbacks, str(upload), T + 2, K, 0.5, None, None, False, 1, None, progress=no_progress)
    assert len(calls) == 2  # another T is another entry


def test_progress_decode_then_pipeline_stages(callbacks, clip):
    """The bar: decoding first (0-30 %), then the pipeline's stages over the rest, ending at 100 %."""
    seen = []
    run_all(callbacks, str(clip), T, K, 0.5, None, None, False, 1, None,
            progress=lambda frac, desc=None: seen.append((desc, round(frac, 3))))
    assert seen[0] == ("decode", 0.0) and seen[-1] == ("done", 1.0)
    assert all(frac >= 0.3 for _, frac in seen[1:]) and [f for _, f in seen] == sorted(f for _, f in seen)


def test_check_inputs(callbacks, clip, tmp_path):
    with pytest.raises(gr.Error, match="Upload a clip"):
        run_all(callbacks, None, T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    from app.tabs.request import check_clip, check_params

    settings = callbacks.ctx.settings
    with pytest.raises(gr.Error, match="empty"):
        check_clip(settings, str(empty))
    with pytest.raises(gr.Error, match="whole number"):
        check_params(settings, "abc", K, 0.5)
    with pytest.raises(gr.Error, match="whole number"):
        check_params(settings, 8.5, K, 0.5)
    assert check_params(settings, 8.0, 3, "0.25") == (8, 3, 0.25)


def test_user_errors_turn_exceptions_into_one_line_gr_error(caplog):
    from app.tabs.errors import user_errors
    from nsnet.video import NotAVideoError

    def unexpected():
        raise RuntimeError("boom\nsecond line")

    def bad_video():
        raise NotAVideoError("/tmp/gradio/abc/clip.mov", "not a video file")

    with caplog.at_level(logging.ERROR, logger="app.tabs.errors"):
        with pytest.raises(gr.Error) as err:
            user_errors(unexpected)()
    assert "Unexpected error (RuntimeError: boom second line)" in err.value.message
    assert any(r.exc_info for r in caplog.records)  # traceback logged for the operator
    with pytest.raises(gr.Error) as err:
        user_errors(bad_video)()
    assert err.value.message == "clip.mov: not a video file"


def test_cleanup_session_removes_its_files(callbacks, clip):
    from app.state.session import cleanup_session

    session = run_all(callbacks, str(clip), T, K, 0.5, None, None, False, 1, None, progress=no_progress)["session"]
    callbacks.download_csv(session)
    folder = Path(session.export_dir)
    assert folder.is_dir()
    cleanup_session(session)
    assert not folder.exists()
    cleanup_session(None)


def test_checkpoint_from_models_dir_loaded_once_and_used(pipe, settings, clip, tmp_path):
    from app.state.context import AppContext
    from app.state.models import CheckpointOption, ModelStore, scan_checkpoints
    from app.tabs.analyze import Analysis

    pipe.save_pretrained(tmp_path / "models" / "tiny-exp")
    store = ModelStore(pipe, CheckpointOption("default", ""), scan_checkpoints(tmp_path / "models"))
    assert store.labels == ["default", "models/tiny-exp"]
    cb = Analysis(AppContext(store=store, settings=settings, export_root=tmp_path / "exports"))
    out = run_all(cb, str(clip), T, K, 0.5, "models/tiny-exp", "", False, 1, None, progress=no_progress)
    assert "models/tiny-exp" in out["summary"]
    loaded, _ = store.get("models/tiny-exp")
    assert loaded is store.get("models/tiny-exp")[0] and loaded is not pipe  # loaded once, then shared
    with pytest.raises(gr.Error, match="unknown checkpoint"):
        user_errors_run(cb, clip, "models/missing")


def user_errors_run(cb, clip, checkpoint):
    from app.tabs.errors import user_errors

    return list(user_errors(cb.run)(str(clip), T, K, 0.5, checkpoint, "", False, 1, None, progress=no_progress))


# --------------------------------------------------------------------------- the first result sooner
def test_a_run_shows_nsnets_result_first_then_the_dense_pass(callbacks, pipe, clip):
    """Step 1: NSNet's own result (curves, chosen frames, labels, cost), no baselines yet. Step 2: the dense
    pass fills the comparison table and the teacher curve; it equals the library's own dense run."""
    first, last = run_steps(callbacks, str(clip), T, K, 0.5, None, None, True, 1, None, progress=no_progress)
    session = first["session"]
    assert not session.complete and session.base.frame_probs is None
    assert [row[0] for row in first["compare"]["value"]] == ["NSNet-3"]     # only NSNet's row is known
    assert "dense:" not in first["cost"] and "Sampler" in first["cost"] and len(first["labels"]) == 5
    assert len(first["gallery"]["value"]) == K and first["csv_button"]["interactive"]
    assert not any(t["name"].startswith("teacher") for t in json.loads(first["plot"].plot)["data"])
    done = last["session"]
    assert done.complete and [row[0] for row in last["compare"]["value"]] == ["NSNet-3", "Uniform-3", "Random-3",
                                                                              "Dense-8"]
    assert "dense: +" in last["cost"]
    assert "labels" not in last and "gallery" not in last          # unchanged by the dense pass: not re-sent
    assert any(t["name"].startswith("teacher") for t in json.loads(last["plot"].plot)["data"])  # the box was ticked
    assert "teacher" in last["frame_caption"]
    # the same numbers as the pipeline's dense run on these previews (its own code path)
    reference = pipe(done.frames, K, 0.5, dense=True)
    assert done.base.selected.tolist() == reference.selected.tolist()
    np.testing.assert_allclose(done.base.frame_probs, reference.frame_probs, atol=1e-5)
    np.testing.assert_allclose(done.base.probs, reference.probs, atol=1e-5)


def test_the_dense_pass_runs_the_recognizer_only_on_the_previews_not_kept(pipe, clip, monkeypatch):
    """Step 2 reuses the K kept previews' probabilities from step 1: the recognizer sees T - K frames,
    and the result equals the pipeline's own dense run (its code path, not this one)."""
    from app.server.runtime import dense_pass, first_pass

    _, first = first_pass(pipe, str(clip), T, K, 0.3, 20.0)
    seen, real = [], pipe.recognizer_probs
    monkeypatch.setattr(pipe, "recognizer_probs", lambda frames: seen.append(int(frames.shape[0])) or real(frames))
    frames = pipe.read(str(clip), T)[0].frames
    done = dense_pass(pipe, frames, first)
    assert seen == [T - K]
    reference = pipe(frames, K, 0.3, dense=True)
    np.testing.assert_allclose(done.frame_probs, reference.frame_probs, atol=1e-5)
    assert done.dense_recognizer_ms >= first.timings_ms["recognizer"]


def test_a_k_move_before_the_dense_pass_lands_waits_for_it(callbacks, pipe, clip):
    """The page moves K and λ between the two steps: the re-rank waits for the dense pass, and the run's last
    step follows the page's K and λ, so whichever arrives last the page shows the same, right result."""
    from nsnet.inference.methods import rerank

    steps = callbacks.run(str(clip), T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    first = next(steps)
    moved: dict = {}
    waiter = threading.Thread(target=lambda: moved.update(callbacks.rerank(first["session"], 5, 0.2, False, 2)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # the dense pass has not run (the generator is suspended): the move waits
    last = next(steps)        # the dense pass lands
    waiter.join(60)
    assert not waiter.is_alive() and moved
    with pytest.raises(StopIteration):
        next(steps)
    expected = rerank(pipe(first["session"].frames, K, 0.5, dense=True), 5, 0.2)  # the library's path
    for out in (moved, last):
        result = out["session"].result
        assert (result.k, round(result.lam, 2)) == (5, 0.2)
        assert result.selected.tolist() == expected.selected.tolist()
        assert "K=5, λ=0.20" in out["summary"] and out["compare"]["value"][0][0] == "NSNet-5"
    assert moved["compare"]["value"] == last["compare"]["value"] and moved["labels"] == last["labels"]


def test_a_failed_dense_pass_releases_a_waiting_move(pipe, settings, clip, tmp_path):
    from app.server.runtime import Runner, analyze_file
    from app.state.context import AppContext
    from app.state.models import CheckpointOption, ModelStore
    from app.tabs.analyze import Analysis

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU went away")

    cb = Analysis(AppContext(store=ModelStore(pipe, CheckpointOption("tiny", "")), settings=settings,
                             export_root=tmp_path / "exports", runner=Runner(analyze_file, dense=broken)))
    steps = cb.run(str(clip), T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    first = next(steps)
    errors: list = []

    def move():
        try:
            cb.rerank(first["session"], 2, 0.5, False, 1)
        except gr.Error as exc:
            errors.append(exc.message)

    waiter = threading.Thread(target=move)
    waiter.start()
    with pytest.raises(RuntimeError, match="GPU went away"):
        next(steps)
    waiter.join(60)
    assert errors == ["The dense pass of this run did not finish; press Run again."]


# --------------------------------------------------------------------------- figure, highlights, removal curve
def test_removal_curve_and_media_downloads_on_a_press_only(callbacks, clip):
    """The analysis view's removal curve (what the recognizer says as the most salient previews are removed
    one by one) follows λ, not K; the figure (PNG) and highlight clip (MP4) are made on their buttons only,
    for the K and λ on the page, in the session's folder of the export area."""
    import av
    from PIL import Image

    out = run_all(callbacks, str(clip), T, K, 0.3, None, None, False, 1, None, progress=no_progress)
    session = out["session"]
    r = session.base
    curves = json.loads(out["removal"].plot)["data"]
    assert [c["name"] for c in curves] == ["most salient removed first", "least salient removed first"]
    # By hand: the full clip's label, then its mean probability over the previews left after removing the r
    # previews of highest fused score (recomputed from λ=0.3 here, ties to the earlier frame).
    probs = np.asarray(r.frame_probs, dtype=np.float64)
    fused = 0.3 * np.asarray(r.frame_scores, np.float64) + 0.7 * np.asarray(r.attention, np.float64)
    full = int(np.argmax(probs.mean(0)))
    order = sorted(range(T), key=lambda i: (-fused[i], i))
    expected = [probs[order[n:], full].mean() for n in range(T)]
    assert curves[0]["x"] == list(range(T))
    assert curves[0]["y"] == pytest.approx(expected, abs=1e-5)
    assert curves[1]["y"][0] == pytest.approx(expected[0]) and curves[1]["y"][-1] == pytest.approx(
        probs[order[-1], full], abs=1e-5)
    assert out["png_button"]["interactive"] and out["mp4_button"]["interactive"]

    moved_k = callbacks.rerank(session, K - 1, 0.3, False, 1)
    assert "removal" not in moved_k                               # K alone does not change the order
    moved_lam = callbacks.rerank(session, K - 1, 0.9, False, 1)
    assert "removal" in moved_lam   # the removal order is the fused score's: it names the frames removed
    order_09 = sorted(range(T), key=lambda i: (-(0.9 * float(r.frame_scores[i]) + 0.1 * float(r.attention[i])), i))
    hover = json.loads(moved_lam["removal"].plot)["data"][0]["customdata"]
    assert [h.split("<br>")[0] for h in hover[1:]] == [f"removed frame {i + 1}" for i in order_09[:-1]]
    assert [h.split("<br>")[0] for h in curves[0]["customdata"][1:]] == [f"removed frame {i + 1}" for i in order[:-1]]
    folder = Path(session.export_dir)
    assert not list(folder.glob("*.png")) and not list(folder.glob("*.mp4"))   # nothing rendered on a move

    now = moved_lam["session"]
    mp4 = Path(callbacks.download_mp4(now)["mp4_file"])
    assert mp4.parent == folder and mp4.name.endswith(f"_T{T}_K{K - 1}_lam0.90.highlights.mp4")
    with av.open(str(mp4)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        assert container.streams.video[0].codec_context.name == "h264"
    assert frames > 0
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]          # no temporary file left
    try:
        png = Path(callbacks.download_png(now)["png_file"])
    except gr.Error as exc:
        pytest.skip(f"no browser for the figure here: {exc}")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (3000, 1320)
    assert png.parent == folder


def test_media_downloads_say_what_is_missing(callbacks, clip, tmp_path):
    with pytest.raises(gr.Error, match="Run a clip first"):
        callbacks.download_mp4(None)
    copy = tmp_path / "gone.mp4"
    shutil.copy(clip, copy)
    out = run_all(callbacks, str(copy), T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    copy.unlink()   # Gradio's copy of the upload expired
    with pytest.raises(gr.Error, match="no longer on the server"):
        callbacks.download_mp4(out["session"])


def test_random_k_of_a_known_clip_is_its_rows(callbacks, settings, clip):
    """The comparison table's random-K for an example / dataset video is seeded by its id (its ``analyze`` row's
    frames); an upload's by its content, so the same file gives the same frames in every session."""
    import hashlib

    import torch

    def random_frames(out):
        rows = out["compare"]["value"]
        rows = rows["data"] if isinstance(rows, dict) else rows
        return next(row[1] for row in rows if str(row[0]).startswith("Random"))

    known = run_all(callbacks, str(settings.examples_dir / "walk.mp4"), T, K, 0.5, None, None, False, 1, None,
                    progress=no_progress)
    seed = int.from_bytes(hashlib.sha256(b"0/walk").digest()[:7], "little")
    expected = sorted(torch.randperm(T, generator=torch.Generator().manual_seed(seed))[:K].tolist())
    assert known["session"].video_id == "walk"
    assert random_frames(known) == ", ".join(str(i + 1) for i in expected)
    first = run_all(callbacks, str(clip), T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    again = run_all(callbacks, str(clip), T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    assert first["session"].video_id is None and random_frames(first) == random_frames(again)
