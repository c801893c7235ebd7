"""Dataset mode, two-checkpoint comparison and the model banner, in process.

Pure parts (``app.views.dataset_table``, ``app.views.dataset_summary``, ``nsnet.evaluation.stats``,
``app.views.compare``, ``app.views.banner``) on hand-made rows and results; the ``DatasetStore``
(``app.state.dataset``) and the rooms' callbacks (``app.tabs``) on a generated synthetic
benchmark (``nsnet.data.synthetic``, a few tiny clips) with tiny random pipelines whose
classes are the benchmark's. The helpers here are shared with ``test_app_dataset_client.py``
and ``test_app_dataset_browser.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")

import gradio as gr  # noqa: E402

from test_app_views import fake_result  # noqa: E402

T, K = 8, 3
NUM_CLASSES = 5


# --------------------------------------------------------------------------- helpers (shared)
def synthetic_pipeline(seed: int = 0, trained: bool = True):
    """A tiny random pipeline that answers with the synthetic benchmark's first classes."""
    import torch

    from nsnet.config import PipelineConfig, RecognizerConfig, SamplerConfig
    from nsnet.data.synthetic import SynthConfig
    from nsnet.inference import Pipeline

    torch.manual_seed(seed)
    cfg = PipelineConfig(
        class_names=SynthConfig(num_classes=NUM_CLASSES).class_names, num_frames=T, k=K, lam=0.5, trained=trained,
        sampler=SamplerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=64),
        recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=96),
        meta={"train": {"data": "runs/tiny-benchmark", "subset": "training"}, "num_train_videos": 5})
    return Pipeline.build(cfg, device="cpu")


def make_benchmark(folder: Path, videos: int = 6, seed: int = 3) -> Path:
    """A generated synthetic benchmark (``make-synthetic`` layout) of tiny 3-5 s clips."""
    from nsnet.data.synthetic import SynthConfig
    from nsnet.data.synthetic.generate import generate  # (the package attribute becomes the module once imported)

    if not (folder / "annotations.json").is_file():
        cfg = SynthConfig(num_classes=NUM_CLASSES, width=96, height=64, fps=6, min_duration_s=3, max_duration_s=5)
        generate(folder, videos, seed=seed, cfg=cfg, workers=1, progress=False)
    return folder


# (NSNet right, dense right, uniform right) for row i, cycling: every outcome filter has rows
PATTERN = [(False, True, True), (True, False, False), (False, False, False), (True, True, True),
           (True, True, False), (False, False, True)]


def fake_results(records, out: Path, class_names) -> Path:
    """A ``nsnet analyze``-style JSONL for ``records`` with known outcomes (``PATTERN``), no network."""
    lines = []
    for i, r in enumerate(records):
        nsnet_ok, dense_ok, uniform_ok = PATTERN[i % len(PATTERN)]
        wrong = next(c for c in class_names if c != r.label)
        result = fake_result(t=T, k=K, c=len(class_names), seed=i, duration=r.duration or 4.0)

        def method(ok: bool) -> dict:
            return {"label": r.label if ok else wrong, "score": 0.5, "correct": ok}

        lines.append(json.dumps({
            "id": r.video_id, "path": str(r.path), "subset": r.subset, "gt": r.label,
            "segments": [list(s) for s in r.segments or ()], "duration_s": r.duration,
            "timestamps_s": [float(x) for x in result.timestamps_s], "frame_scores": result.frame_scores.tolist(),
            "attention": result.attention.tolist(), "fused": result.fused.tolist(),
            "selected": result.selected.tolist(), "teacher": [0.5] * T,
            "nsnet": method(nsnet_ok), "uniform": method(uniform_ok), "random": method(False),
            "dense": method(dense_ok), "saliency_ap": round(0.5 + 0.05 * i, 3), "gflops": {}, "timings_ms": {},
            "error": None}))
    lines.append("{not json")  # a torn line: skipped, counted
    out.write_text("\n".join(lines) + "\n")
    return out


def serve_dataset(work: Path, **settings):
    """Launch an app in dataset mode: a generated benchmark, a ``--results`` file of known outcomes
    (``fake_results``), the synthetic model and a second checkpoint ``tiny-b`` in ``--models-dir``.
    Yields ``(url, records)``; for module fixtures of the browser and gradio_client tests."""
    from app.server.settings import AppSettings
    from app.shell import build_demo
    from app.state.models import CheckpointOption, ModelStore, scan_checkpoints
    from nsnet.data.formats import load_dataset
    from test_app_client import launch

    bench = make_benchmark(work / "bench")
    records, names = load_dataset(bench)
    results = fake_results(records, work / "rows.jsonl", names)
    synthetic_pipeline(seed=1).save_pretrained(work / "models" / "tiny-b")
    store = ModelStore(synthetic_pipeline(), CheckpointOption("tiny-synthetic", ""), scan_checkpoints(work / "models"))
    app_settings = AppSettings(examples_dir=work / "no-examples", data=bench, results=results, **settings)
    demo = build_demo(store, app_settings, export_root=work / "exports")
    url = launch(demo, app_settings)   # a port the server picks itself
    try:
        yield url, records
    finally:
        demo.close()


def context(pipe, tmp_path: Path, dataset=None, models_dir: Path | None = None, examples=()):
    from app.server.settings import AppSettings
    from app.state.context import AppContext
    from app.state.models import CheckpointOption, ModelStore, scan_checkpoints

    store = ModelStore(pipe, CheckpointOption("tiny-synthetic", ""), scan_checkpoints(models_dir))
    settings = AppSettings(examples_dir=tmp_path / "no-examples", max_frames=32)
    return AppContext(store=store, settings=settings, examples=tuple(examples), export_root=tmp_path / "exports",
                      dataset=dataset)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "tiny")


@pytest.fixture(scope="module")
def pipe():
    return synthetic_pipeline()


def no_progress(*args, **kwargs):
    return None


# --------------------------------------------------------------------------- rows, filters, sorting
def _rows(bench: Path, tmp_path: Path):
    from app.state.dataset import DatasetStore
    from nsnet.data.formats import load_dataset

    records, names = load_dataset(bench)
    results = fake_results(records, tmp_path / "rows.jsonl", names)
    return DatasetStore.open(bench, results=results), records


def test_filters_and_sorting_on_outcomes(bench, tmp_path):
    from app.views import dataset_table as ds

    store, records = _rows(bench, tmp_path)
    rows = store.rows()
    assert len(rows) == len(records) == 6 and not any(r.get("pending") for r in rows)
    assert ds.filter_rows(rows) == rows
    by = {name: [r["id"] for r in ds.filter_rows(rows, outcome=name)] for name in ds.OUTCOMES}
    ids = [r.video_id for r in records]
    assert by["NSNet wrong, dense right"] == [ids[0]]
    assert by["NSNet right, uniform wrong"] == [ids[1], ids[4]]
    assert by["all wrong"] == [ids[2]] and by["all right"] == [ids[3]]
    assert by["NSNet wrong"] == [ids[0], ids[2], ids[5]]
    assert by["not analysed (error or pending)"] == []
    cls = records[0].label
    assert all(r["gt"] == cls for r in ds.filter_rows(rows, class_name=cls))
    assert ds.filter_rows(rows, class_name=ds.ANY_CLASS) == rows
    assert [r["id"] for r in ds.filter_rows(rows, text=ids[3][-3:].upper())] == [ids[3]]  # case-insensitive words
    with pytest.raises(ValueError, match="unknown outcome"):
        ds.filter_rows(rows, outcome="sometimes")

    aps = [r["saliency_ap"] for r in ds.sort_rows(rows, "saliency_ap", descending=True)]
    assert aps == sorted(aps, reverse=True)
    failures_first = ds.sort_rows(rows, "nsnet_correct")
    assert [r["nsnet"]["correct"] for r in failures_first] == [False] * 3 + [True] * 3
    with pytest.raises(ValueError, match="unknown sort column"):
        ds.sort_rows(rows, "colour")

    api = ds.api_row(rows[0])
    assert list(api) == list(ds.API_KEYS) and api["nsnet_correct"] is False and api["dense_correct"] is True
    table = ds.table_row(rows[0])
    assert len(table) == len(ds.TABLE_HEADERS) and table[3] == "✗" and table[5] == "✓"


def test_results_file_merges_ground_truth_and_skips_torn_lines(bench, tmp_path):
    from app.state.rows import merge_record, read_results
    from nsnet.evaluation.stats import summarise

    store, records = _rows(bench, tmp_path)
    read = read_results(tmp_path / "rows.jsonl")
    assert read.skipped == 1 and len(read.rows) == 6 and not read.has_frame_probs
    # the annotation file is the truth: a row with another gt is re-marked against it
    row = dict(read.rows[records[3].video_id], gt="something else")
    merged = merge_record(row, records[3])
    assert merged["gt"] == records[3].label and merged["nsnet"]["correct"] is True
    s = summarise(store.rows(), store.class_names)
    assert (s.total, s.analysed, s.with_gt, s.pending, s.errors) == (6, 6, 6, 0, 0)
    assert s.correct["nsnet"] == 3 and s.accuracy["dense"] == pytest.approx(3 / 6)
    assert s.k_curve is None  # no frame_probs in this file: no accuracy-vs-K curve


def test_rows_computed_lazily_match_nsnet_analyze_and_give_the_k_curve(bench, pipe, tmp_path):
    """Without --results: the rows are computed in the background on first open, cached, and the
    accuracy-vs-K curve comes from their per-frame outputs (no second network pass)."""
    from app.state.dataset import DatasetStore
    from app.tabs.dataset import DatasetRoom
    from app.views import dataset_summary as dv
    from app.views import dataset_table as ds

    store = DatasetStore.open(bench, subset="validation")
    first = store.rows()
    assert first and all(r.get("pending") for r in first)
    cb = DatasetRoom(context(pipe, tmp_path, dataset=store))
    view = cb.everything(None, ds.ALL, "")
    assert "0 of" in view["ds_status"] and view["ds_timer"].active is False
    opened = cb.open_tab(None, ds.ALL, "", None, view["ds_version"])
    assert store.wait(timeout=300)  # the rows are computed
    assert opened["ds_timer"].active is True  # polling while rows are computed
    assert store.start(cb.compute_row) is False  # computed once per server
    rows = store.rows()
    assert not any(r.get("pending") or r.get("error") for r in rows)
    for row in rows:
        assert set(row) >= {"id", "gt", "segments", "nsnet", "uniform", "random", "dense", "frame_probs",
                            "class_scores", "saliency_ap", "selected"}
        assert row["nsnet"]["correct"] == (row["nsnet"]["label"] == row["gt"])
        assert len(row["selected"]) == K and np.shape(row["frame_probs"]) == (T, NUM_CLASSES)
    tick = cb.tick(None, ds.ALL, "", None, view["ds_version"])
    assert tick["ds_timer"].active is False and "ds_table" in tick  # new rows drawn, polling stops
    assert cb.tick(None, ds.ALL, "", None, tick["ds_version"])["ds_timer"].active is False
    s = cb.summary()
    assert s.k_curve is not None and s.k_curve["k"] == list(range(1, T + 1)) and s.k_curve["n"] == len(rows)
    assert 0.0 <= s.k_curve["nsnet"][K - 1] <= 1.0
    spec = dv.k_curve_spec(s.k_curve, K)
    assert [t["name"] for t in spec["data"]] == ["NSNet-K", "Uniform-K", "Random-K", f"Dense-{T}"]
    # the curve at the rows' own K is the table's accuracy
    assert s.k_curve["nsnet"][K - 1] == pytest.approx(s.accuracy["nsnet"])
    assert s.k_curve["uniform"][K - 1] == pytest.approx(s.accuracy["uniform"])
    assert s.k_curve["dense"] == pytest.approx(s.accuracy["dense"])
    # the same rows as `nsnet analyze` (the batched engine, its own code path) on the same videos
    from nsnet.evaluation import jsonl
    from nsnet.evaluation.analyze import AnalyzeOptions, analyze

    t, k, lam = cb.row_params()
    ref_out = tmp_path / "reference.jsonl"
    analyze(pipe, [store.record(r["id"]) for r in rows],
            AnalyzeOptions(out=str(ref_out), num_frames=t, k=k, lam=lam, progress=False, workers=0))
    reference = {r["id"]: r for r in jsonl.iter_rows(ref_out)}
    assert set(reference) == {r["id"] for r in rows}
    for row in rows:
        ref = reference[row["id"]]
        assert row["selected"] == ref["selected"] and row["timestamps_s"] == pytest.approx(ref["timestamps_s"])
        np.testing.assert_allclose(row["frame_probs"], ref["frame_probs"], atol=1e-4)
        for m in ("nsnet", "uniform", "dense"):
            assert row[m]["label"] == ref[m]["label"], (row["id"], m)


def test_summary_views(bench, tmp_path):
    from app.views import dataset_summary as dv
    from nsnet.evaluation.stats import summarise

    store, _ = _rows(bench, tmp_path)
    s = summarise(store.rows(), store.class_names)
    text = dv.summary_markdown(s, K, T)
    assert f"NSNet-{K}" in text and "50.0%" in text and "most frequent confusions" in text
    heat = dv.confusion_spec(s, store.class_names)
    assert heat["data"][0]["type"] == "heatmap" and sum(map(sum, heat["data"][0]["z"])) == 6
    assert "no analysed video" in json.dumps(dv.k_curve_spec(None))
    assert "frame_probs" in json.dumps(dv.k_curve_spec(None, note="needs frame_probs"))
    status = dv.status_markdown("rows.jsonl", "", 6, 6, False, T, K, 0.5, from_file=True)
    assert "results file `rows.jsonl`" in status and "T=8, K=3" in status


def test_dataset_api_and_row_opening(bench, pipe, tmp_path):
    from app.tabs.analyze import Analysis
    from app.tabs.dataset import DatasetRoom
    from test_app_client import run_all

    store, records = _rows(bench, tmp_path)
    ctx = context(pipe, tmp_path, dataset=store)
    cb = DatasetRoom(ctx)
    every = cb.dataset_api("", "", "", "", False)["api_ds_result"]
    assert [r["id"] for r in every] == [r.video_id for r in records]
    wrong = cb.dataset_api("", "NSNet wrong, dense right", "", "", False)["api_ds_result"]
    assert len(wrong) == 1 and wrong[0]["nsnet_correct"] is False and wrong[0]["dense_correct"] is True
    asc = cb.dataset_api("", "", "", "saliency_ap", False)["api_ds_result"]
    assert [r["saliency_ap"] for r in asc] == sorted(r["saliency_ap"] for r in asc)
    with pytest.raises(gr.Error, match="unknown outcome"):
        cb.dataset_api("", "maybe", "", "", False)
    filtered = cb.filter(records[2].label, "all wrong", "")
    assert all(row[1] == records[2].label for row in filtered["ds_table"]["value"])
    failures = cb.filter(None, "", "", "NSNet wrong first")["ds_table"]["value"]
    assert [row[3] for row in failures] == ["✗"] * 3 + ["✓"] * 3
    with pytest.raises(gr.Error, match="unknown sort"):
        cb.filter(None, "", "", "by colour")

    evt = gr.SelectData(None, {"index": [2, 0], "value": records[2].video_id,
                               "row_value": [records[2].video_id, records[2].label]})
    opened = cb.open_row(evt)
    assert opened["tabs"].selected == "analysis"
    # the clip input gets a copy of the video in Gradio's own cache (no dataset folder is ever served)
    from gradio.utils import get_upload_folder

    clip = Path(opened["clip"])
    assert clip.read_bytes() == records[2].path.read_bytes() and clip.name == records[2].path.name
    assert clip.resolve().is_relative_to(Path(get_upload_folder()).resolve())
    with pytest.raises(gr.Error, match="not a video of the dataset"):
        cb.open_row(gr.SelectData(None, {"index": [0, 0], "value": "x", "row_value": ["nope"]}))

    # the run that follows: ground truth beside the prediction, segments on the chart
    out = run_all(Analysis(ctx), opened["clip"], T, K, 0.5, None, None, False, 1, None, progress=no_progress)
    assert f"Ground truth: **{records[2].label}**" in out["summary"]
    assert ("✓ right" in out["summary"]) or ("✗ wrong" in out["summary"])
    shapes = json.loads(out["plot"].plot)["layout"]["shapes"]
    rects = [(s["x0"], s["x1"]) for s in shapes if s["type"] == "rect"]
    assert rects == [tuple(seg) for seg in records[2].segments]
    assert out["session"].gt_label == records[2].label
    # a copy of a dataset video (an upload) is recognised by its content
    copy = tmp_path / "upload.mp4"
    copy.write_bytes(records[2].path.read_bytes())
    assert store.match(copy).label == records[2].label and ctx.known_clip(copy).label == records[2].label
    assert store.match(tmp_path / "rows.jsonl") is None and ctx.known_clip(tmp_path / "rows.jsonl") is None


# --------------------------------------------------------------------------- two checkpoints
@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    synthetic_pipeline(seed=1).save_pretrained(folder / "tiny-b")
    return folder


def test_compare_two_checkpoints_decodes_once_and_reranks_both(bench, pipe, models_dir, tmp_path, monkeypatch):
    from app.tabs.compare import COMPARE_OUTPUTS, Comparison
    from app.views import compare as cmp
    from nsnet.inference import Pipeline

    clip = next((bench / "videos").glob("*.mp4"))
    ctx = context(pipe, tmp_path, models_dir=models_dir)
    b_label = ctx.store.labels[1]
    reads = []
    real_read = Pipeline.read
    monkeypatch.setattr(Pipeline, "read", lambda self, *a, **kw: reads.append(1) or real_read(self, *a, **kw))
    cb = Comparison(ctx)
    out = cb.compare(str(clip), T, K, 0.5, None, "", b_label, "", False, progress=no_progress)
    assert set(out) == set(COMPARE_OUTPUTS) and len(reads) == 1  # decoded once for both checkpoints
    state = out["cmp_state"]
    assert state.name_a == "tiny-synthetic" and state.name_b == b_label
    assert np.array_equal(state.base_a.timestamps_s, state.base_b.timestamps_s)  # the same previews
    assert not np.allclose(state.base_a.frame_scores, state.base_b.frame_scores)  # two different models
    data = json.loads(out["cmp_plot"].plot)["data"]
    names = [t["name"] for t in data]
    assert any(n.startswith("A: fused") for n in names) and any(n.startswith("B: fused") for n in names)
    assert f"A: selected (K={K})" in names and f"B: selected (K={K})" in names
    assert not any("frame-level" in n for n in names)
    assert "A: tiny-synthetic" in out["cmp_side_a"] and f"B: {b_label}" in out["cmp_side_b"]
    assert len(out["cmp_labels_a"]) == NUM_CLASSES and "Sampler" in out["cmp_cost_b"]

    def boom(*a, **kw):
        raise AssertionError("re-ranking a comparison must not decode or run a network")

    monkeypatch.setattr(Pipeline, "read", boom)
    monkeypatch.setattr(pipe.sampler, "forward", boom)
    moved = cb.rerank_pair(state, 5, 0.2, True)
    assert moved["cmp_state"].result_a.k == 5 and moved["cmp_state"].result_b.k == 5
    assert moved["cmp_state"].result_b.lam == pytest.approx(0.2)
    detail = [t["name"] for t in json.loads(moved["cmp_plot"].plot)["data"]]
    assert "A: frame-level p" in detail and "B: attention g" in detail
    assert cb.rerank_pair(None, 5, 0.2, False) == {}
    assert "frames both kept" in cmp.overlap_markdown(moved["cmp_state"])

    api = Comparison(ctx).compare_api  # the same checks as the page
    with pytest.raises(gr.Error, match="same checkpoint"):
        api(str(clip), "", "tiny-synthetic", T, K, 0.5)


def test_without_a_dataset_the_dataset_endpoint_says_how_to_start_one(pipe, tmp_path):
    from app.tabs.dataset import DatasetRoom

    with pytest.raises(gr.Error, match="start it with --data"):
        DatasetRoom(context(pipe, tmp_path)).dataset_api("", "", "", "", False)


def test_compare_needs_a_second_checkpoint(pipe, tmp_path, bench):
    from app.tabs.compare import Comparison

    cb = Comparison(context(pipe, tmp_path))
    clip = next((bench / "videos").glob("*.mp4"))
    with pytest.raises(gr.Error, match="second checkpoint"):
        cb.compare(str(clip), T, K, 0.5, None, "", None, "", False, progress=no_progress)


# --------------------------------------------------------------------------- what the model knows
def test_banner_of_the_bundled_synthetic_model_says_what_it_knows():
    from app.views.banner import banner_classes, banner_markdown, describe
    from nsnet.config import PipelineConfig
    from nsnet.inference.checkpoint import BUNDLED_CHECKPOINT

    if not (BUNDLED_CHECKPOINT / "config.json").is_file():
        pytest.skip("no bundled demo model")
    config = PipelineConfig.load(BUNDLED_CHECKPOINT / "config.json")
    info = describe(config, "Bundled demo model", BUNDLED_CHECKPOINT)
    text = banner_markdown(info)
    assert info.synthetic and banner_classes(info) == ["trained", "synthetic"]
    assert "trained on `runs/demo/train-data`" in text and "242 videos" in text
    assert "validation (80 videos, K=4 of T=16)" in text and "NSNet top-1 93.8%" in text
    assert "forced into one of its 12 synthetic classes" in text
    assert "--checkpoint" in text and "--models-dir" in text and "Hub id" in text
    assert "<details><summary>Its 12 classes" in text and "spinning&#95;star" in text


def test_banner_of_other_models(tmp_path):
    from app.views.banner import banner_classes, banner_markdown, describe
    from nsnet.config import PipelineConfig

    real = PipelineConfig(class_names=["<b>jump</b>", "run"], trained=True, meta={"num_train_videos": 900})
    (tmp_path / "eval_validation.json").write_text(json.dumps(
        {"t": 16, "k": 4, "num_videos": 10, "methods": {"nsnet": {"map": 0.5, "top1": 0.4}}}))
    info = describe(real, "my_model", tmp_path)
    text = banner_markdown(info)
    assert banner_classes(info) == ["trained"] and "synthetic" not in text
    assert "trained on 900 videos" in text and "NSNet top-1 40.0%" in text
    assert "&lt;b&gt;jump&lt;/b&gt;" in text and "<b>jump" not in text  # names from a checkpoint are escaped
    untrained = describe(PipelineConfig(class_names=["a", "b"], trained=False), "Untrained", None)
    assert banner_classes(untrained) == ["untrained"] and "untrained" in banner_markdown(untrained)


def test_header_and_result_name_the_same_model(pipe, models_dir, tmp_path, bench):
    from functools import partial

    from app.shell import pick_banner
    from app.tabs.analyze import Analysis
    from test_app_client import run_all

    ctx = context(pipe, tmp_path, models_dir=models_dir)
    b_label = ctx.store.labels[1]
    clip = str(next((bench / "videos").glob("*.mp4")))
    out = run_all(Analysis(ctx), clip, T, K, 0.5, b_label, "", False, 1, None, progress=no_progress)
    assert f"model **{b_label}**" in out["summary"] and f"Model: **{b_label}**" in out["banner"]["value"]
    pick = partial(pick_banner, ctx)
    moved = pick(out["session"], "tiny-synthetic")["banner"]["value"]  # picker moved, result unchanged
    assert moved.startswith(f"Model: **{b_label}**") and "press **Run**" in moved
    assert pick(None, b_label)["banner"]["value"].startswith(f"Model: **{b_label}**")  # before any result


def test_example_lists_say_how_many_there_are(tmp_path):
    from app.state.examples import count_videos, examples_label, load_examples

    assert examples_label(4, 4) == "Examples (4 clips); results cached after first use"
    assert "8 a page" in examples_label(20, 20)
    cut = examples_label(24, 130)
    assert "first 24 of 130 clips" in cut and "--data DIR" in cut
    folder = tmp_path / "many"
    folder.mkdir()
    from clips import write_clip

    for i in range(3):
        write_clip(folder / f"c{i}.mp4", num_frames=4, fps=4, size=(64, 48))
    assert count_videos(folder) == 3 and len(load_examples(folder, limit=2)) == 2


def test_the_page_holds_one_tab_per_room_and_nothing_else(bench, tmp_path):
    """The analysis tab (with the comparison room below) and the dataset tab; no stray component in the tabs."""
    import gradio as gr

    from app.server.settings import AppSettings
    from app.shell import build_demo
    from app.state.dataset import DatasetStore
    from app.state.models import CheckpointOption, ModelStore

    store, records = _rows(bench, tmp_path)
    settings = AppSettings(examples_dir=tmp_path / "none", data=bench, results=tmp_path / "rows.jsonl")
    demo = build_demo(ModelStore(synthetic_pipeline(), CheckpointOption("tiny", "")), settings,
                      export_root=tmp_path / "exports", dataset=store)
    (tabs,) = [b for b in demo.blocks.values() if isinstance(b, gr.Tabs)]
    assert [(type(c).__name__, c.elem_id) for c in tabs.children] == [("Tab", "tab-analysis"), ("Tab", "tab-dataset")]
    assert isinstance(store, DatasetStore) and len(store.rows()) == len(records)


def test_large_tables_are_sent_a_page_at_a_time(bench, pipe, tmp_path, monkeypatch):
    """The page never holds every row of a large results file: the table is one page (PAGE_ROWS rows), the
    count note says which, and another page comes on request (clamped); /dataset still returns every row."""
    from app.tabs.dataset import DatasetRoom
    from app.views import dataset_table as ds

    assert ds.page_of(list(range(7)), 2, 3) == ([3, 4, 5], 2)
    assert ds.page_of(list(range(7)), 9, 3) == ([6], 3) and ds.page_of(list(range(7)), "x", 3) == ([0, 1, 2], 1)
    assert ds.page_of([], 1, 3) == ([], 1)
    monkeypatch.setattr(ds, "PAGE_ROWS", 4)
    store, records = _rows(bench, tmp_path)
    cb = DatasetRoom(context(pipe, tmp_path, dataset=store))
    view = cb.everything(None, ds.ALL, "")
    assert [row[0] for row in view["ds_table"]["value"]] == [r.video_id for r in records[:4]]
    assert "Rows 1–4 (page 1 of 2)" in view["ds_count"] and view["ds_page"] == 1
    second = cb.page(None, ds.ALL, "", None, 2)
    assert [row[0] for row in second["ds_table"]["value"]] == [r.video_id for r in records[4:6]]
    assert "Rows 5–6 (page 2 of 2)" in second["ds_count"]
    assert cb.page(None, ds.ALL, "", None, 99)["ds_page"] == 2
    assert cb.filter(None, ds.ALL, "")["ds_page"] == 1            # a new filter starts at page 1
    assert len(cb.dataset_api("", "", "", "", False)["api_ds_result"]) == len(records) == 6
