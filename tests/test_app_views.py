"""app.views (result, exports), app.server (settings, runtime) and app.state (examples, models): pure
functions on hand-built results."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nsnet.inference import PipelineResult
from nsnet.inference.methods import rerank, teacher_curve
from nsnet.models.selection import fuse, select_topk


def fake_frames(t: int = 16, seed: int = 0) -> np.ndarray:
    """(T, 24, 32, 3) uint8 previews to go with ``fake_result`` (the app keeps them next to the result)."""
    return np.random.default_rng(seed).integers(0, 255, (t, 24, 32, 3), dtype=np.uint8)


def fake_result(t: int = 16, k: int = 4, c: int = 6, lam: float = 0.5, dense: bool = True, seed: int = 0,
                duration: float | None = 60.0) -> PipelineResult:
    """A PipelineResult built by hand (no network, no video), consistent with nsnet's fusion."""
    rng = np.random.default_rng(seed)
    p = rng.random(t).astype(np.float32)
    g = rng.random(t).astype(np.float32)
    fused = fuse(torch.from_numpy(p), torch.from_numpy(g), lam).numpy()
    sel = select_topk(torch.from_numpy(fused), k).numpy()
    frame_probs = rng.dirichlet(np.ones(c), size=t).astype(np.float32)
    ts = (np.arange(t) + 0.5) * (duration or t) / t
    return PipelineResult(
        video={"path": "/srv/tmp/clip.mp4", "duration_s": duration, "fps": 25.0, "width": 1280, "height": 720,
               "num_frames": 1500},
        timestamps_s=ts, frame_scores=p, attention=g, fused=fused, selected=sel,
        probs=frame_probs[sel].mean(0), class_names=[f"class_{i}" for i in range(c)],
        timings_ms={"decode": 100.0, "sampler": 20.0, "recognizer": 40.0, "total": 160.0},
        gflops={"sampler": 0.5, "recognizer": 0.25 * k, "total": 0.5 + 0.25 * k, "dense": 0.25 * t},
        lam=lam, device="cpu", trained=True,
        frame_probs=frame_probs if dense else None, dense_recognizer_ms=160.0 if dense else None)


# --------------------------------------------------------------------------- views
def test_selection_ranks_order_by_fused_score():
    from app.views.result import selection_ranks

    r = fake_result()
    ranks = selection_ranks(r)
    assert sorted(ranks) == sorted(int(i) for i in r.selected)
    assert sorted(ranks.values()) == list(range(1, r.k + 1))
    by_rank = sorted(ranks, key=ranks.get)
    assert [r.fused[i] for i in by_rank] == sorted((r.fused[i] for i in by_rank), reverse=True)


def test_fmt_time_and_ms():
    from app.views.result import fmt_ms, fmt_time

    assert fmt_time(12.34) == "12.3 s"
    assert fmt_time(83.25) == "1:23.2"
    assert fmt_time(float("nan")) == "?"
    assert fmt_ms(1234.4) == "1,234 ms" and fmt_ms(3.21) == "3.2 ms" and fmt_ms(None) == "-"


def test_gallery_items_are_selected_frames_in_time_order_with_captions():
    from app.views.result import gallery_items, selection_ranks

    r, frames = fake_result(k=5), fake_frames()
    items = gallery_items(r, frames)
    sel = sorted(int(i) for i in r.selected)
    assert len(items) == 5
    for (img, caption), i in zip(items, sel):
        assert np.array_equal(img, frames[i])
        assert caption.startswith(f"#{selection_ranks(r)[i]} ·")
        assert f"s={r.fused[i]:.2f}" in caption and " s " in caption  # rank, time, fused score
    paths = [f"/x/{i}.jpg" for i in range(r.num_frames)]
    assert [img for img, _ in gallery_items(r, paths)] == [paths[i] for i in sel]
    assert gallery_items(r, None) == []  # no previews: nothing to show


def test_frame_view_caption_marks_selection_and_ground_truth():
    from app.views.result import Segment, frame_view, selection_ranks

    r, frames = fake_result(), fake_frames()
    ranks = selection_ranks(r)
    chosen = min(ranks, key=ranks.get)
    other = next(i for i in range(r.num_frames) if i not in ranks)
    img, caption = frame_view(r, chosen, images=frames)
    assert np.array_equal(img, frames[chosen]) and "selected, rank 1" in caption
    assert f"teacher {teacher_curve(r)[chosen]:.2f}" in caption
    assert frame_view(r, chosen)[0] is None and frame_view(r, chosen)[1] == caption  # caption without images
    assert f"Frame {chosen + 1} of {r.num_frames}" in caption and "teacher" in caption
    t = r.timestamps_s[other]
    _, caption = frame_view(r, other, [Segment(t - 0.1, t + 0.1, "x")])
    assert "not selected" in caption and "inside a ground-truth segment" in caption
    _, caption = frame_view(r, other, [Segment(t + 5, t + 6, "x")])
    assert "background" in caption
    assert frame_view(r, 999)[1].startswith(f"**Frame {r.num_frames} of")  # clamped


def test_label_scores_are_top5_best_first():
    from app.views.result import label_scores

    r = fake_result(c=8)
    scores = label_scores(r)
    assert len(scores) == 5
    values = list(scores.values())
    assert values == sorted(values, reverse=True)
    assert list(scores)[0] == r.class_names[int(np.argmax(r.probs))]


def test_comparison_rows_four_methods_same_k():
    from app.views.result import COMPARISON_HEADERS, comparison_rows

    r = fake_result(k=3)
    rows = comparison_rows(r)
    assert [row[0] for row in rows] == ["NSNet-3", "Uniform-3", "Random-3", "Dense-16"]
    assert all(len(row) == len(COMPARISON_HEADERS) for row in rows)
    nsnet = rows[0]
    assert nsnet[2] == r.labels[0]["label"] and nsnet[3] == pytest.approx(r.labels[0]["score"], abs=1e-3)
    assert nsnet[1] == ", ".join(str(i + 1) for i in r.selected)  # 1-based frame numbers
    assert rows[3][1] == "all 16" and rows[3][4] == pytest.approx(r.gflops["dense"], abs=0.01)
    assert rows[1][4] == pytest.approx(rows[2][4]) and rows[1][4] < rows[3][4]


def test_comparison_random_k_is_the_dataset_rows_own():
    """A dataset video's random-K in the one-clip table is the frames its ``analyze`` row drew (seeded by its
    id); an upload's depends on the clip, not on the session (two uploads of one clip: the same frames)."""
    import hashlib

    from app.state.rows import result_row
    from app.views.result import comparison_rows
    from nsnet.data.records import VideoRecord

    r = fake_result(t=16, k=4, lam=0.3)
    for vid in ("v_walk_001", "v_jump_002", "v_run_003"):
        row = result_row(VideoRecord(vid, Path(f"/data/{vid}.mp4"), "class_1", 1, "validation"), r)
        table = comparison_rows(r, video_id=vid)
        random_row = table[2]
        assert random_row[0] == "Random-4"
        assert random_row[2] == row["random"]["label"]
        assert random_row[3] == pytest.approx(row["random"]["score"], abs=1e-3)
        # Independently: the frames of a sha256-seeded generator, as docs/method.md states the rule.
        seed = int.from_bytes(hashlib.sha256(f"0/{vid}".encode()).digest()[:7], "little")
        expected = sorted(torch.randperm(16, generator=torch.Generator().manual_seed(seed))[:4].tolist())
        assert random_row[1] == ", ".join(str(i + 1) for i in expected)
    drawn = {comparison_rows(r, video_id=v)[2][1] for v in ("a", "b", "c", "d", "e")}
    assert len(drawn) > 1                                   # not the same frames for every video
    assert comparison_rows(r)[2][1] == comparison_rows(r)[2][1]   # an upload: stable for one clip


def test_cost_markdown_is_honest_about_dense_pass():
    from app.views.result import cost_markdown

    text = cost_markdown(fake_result())
    for needle in ("Decode", "Sampler", "Recognizer (4 frames)", "NSNet total", "Device: `cpu`", "multiply-adds", "dense: +120 ms"):
        assert needle in text
    assert "dense" not in cost_markdown(fake_result(dense=False))


def test_banner_and_summary():
    from app.views.banner import model_banner
    from app.views.result import Segment, summary_markdown

    assert "untrained" in model_banner(False, "x", 10).lower() and "not meaningful" in model_banner(False, "x", 10)
    assert "trained" in model_banner(True, "demo", 5) and "⚠" not in model_banner(True, "demo", 5)
    r = fake_result()
    text = summary_markdown(r, "clip.mp4", "demo", cached=True, segments=[Segment(1, 2)])
    assert r.labels[0]["label"] in text and "T=16, K=4, λ=0.50" in text and "1280×720" in text
    assert "example cache" in text and "ground-truth segment" in text


def test_per_frame_rows_and_csv():
    from app.views.exports import per_frame_csv
    from app.views.result import PER_FRAME_HEADERS, Segment, per_frame_rows

    r = fake_result()
    rows = per_frame_rows(r, [Segment(0, 10)])
    assert len(rows) == r.num_frames and all(len(row) == len(PER_FRAME_HEADERS) for row in rows)
    assert sum(row[5] for row in rows) == r.k
    assert [row[8] for row in rows[:3]] == [1, 1, 1]  # first previews at 1.9, 5.6, 9.4 s
    parsed = list(csv.DictReader(io.StringIO(per_frame_csv(fake_result(dense=False)))))
    assert len(parsed) == r.num_frames and parsed[0]["teacher_confidence"] == "" and parsed[0]["in_gt_segment"] == ""
    assert float(parsed[3]["fused"]) == pytest.approx(float(r.fused[3]), abs=1e-6)


def test_write_exports_atomic_and_schema(tmp_path):
    from app.views.exports import export_stem, write_exports

    r = fake_result()
    csv_path, json_path = write_exports(r, tmp_path / "out", "my clip (1).mp4")
    assert csv_path.name == "my_clip_1_T16_K4_lam0.50.csv" and json_path.suffix == ".json"
    data = json.loads(json_path.read_text())
    expected = r.to_dict()
    expected["video"]["path"] = "my clip (1).mp4"  # the clip's name, never the server's temp path
    assert data == json.loads(json.dumps(expected))
    assert set(data) == {"video", "timestamps_s", "frame_scores", "attention", "fused", "selected", "labels",
                         "timings_ms", "gflops", "model"}
    write_exports(rerank(r, 6, 0.2), tmp_path / "out", "my clip (1).mp4")  # overwrite-safe, no leftovers
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert export_stem("../../etc/passwd", r).startswith("passwd_")


def test_write_frame_images(tmp_path):
    from PIL import Image

    from app.views.exports import write_frame_images

    paths = write_frame_images(fake_frames(t=4), tmp_path)
    assert len(paths) == 4 and all(Path(p).is_file() for p in paths)
    assert Image.open(paths[0]).size == (32, 24)


def test_rerank_changes_views_without_frames_or_network():
    from app.views.result import comparison_rows, gallery_items

    r = fake_result()
    r2 = rerank(r, 7, 1.0)
    assert len(gallery_items(r2, fake_frames())) == 7 and comparison_rows(r2)[0][0] == "NSNet-7"
    assert np.allclose(r2.fused, (r.frame_scores - r.frame_scores.min()) / np.ptp(r.frame_scores), atol=1e-6)


# --------------------------------------------------------------------------- settings
def test_settings_flags_beat_env_beat_defaults(tmp_path):
    from app.server.settings import AppSettings, parse_settings

    s, _ = parse_settings([], {})
    assert (s.host, s.port, s.device, s.allow_hub) == ("127.0.0.1", 7860, "auto", False)
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "9000", "NSNET_MAX_UPLOAD_MB": "5",
           "NSNET_TIME_BUDGET_S": "3", "NSNET_MODELS_DIR": str(tmp_path), "SPACE_ID": "me/space"}
    s, _ = parse_settings([], env)
    assert (s.host, s.port, s.max_upload_mb, s.time_budget_s, s.models_dir, s.allow_hub) == \
        ("0.0.0.0", 9000, 5.0, 3.0, tmp_path, True)
    s, _ = parse_settings(["--port", "7999", "--host", "127.0.0.2", "--max-upload-mb", "1.5", "--device", "cpu"], env)
    assert (s.host, s.port, s.max_upload_mb, s.device) == ("127.0.0.2", 7999, 1.5, "cpu")
    assert s.max_upload_bytes == int(1.5 * 2**20)
    with pytest.raises(SystemExit):
        parse_settings(["--time-budget-s", "0"], {})
    with pytest.raises(SystemExit):
        parse_settings([], {"GRADIO_SERVER_PORT": "http"})
    with pytest.raises(ValueError):
        AppSettings(max_upload_mb=-1)
    assert not s.zero_gpu and parse_settings([], {"SPACES_ZERO_GPU": "true"})[0].zero_gpu


def test_default_checkpoint_is_the_bundled_demo_model():
    from app.server.settings import REPO_ROOT
    from nsnet.cli.common import BUNDLED_CHECKPOINT as CLI_DEFAULT
    from nsnet.inference.checkpoint import BUNDLED_CHECKPOINT

    assert BUNDLED_CHECKPOINT == REPO_ROOT / "assets" / "demo-model"
    assert CLI_DEFAULT is BUNDLED_CHECKPOINT  # defined once, in the library


def test_environment_defaults_are_explicit_and_respect_the_host():
    import subprocess
    import sys

    from app.server.runtime import OFFLINE_DEFAULTS, configure_environment

    env = {"HF_HUB_DISABLE_TELEMETRY": "0"}
    assert configure_environment(env) == {"GRADIO_ANALYTICS_ENABLED": "False"}
    assert env == {"HF_HUB_DISABLE_TELEMETRY": "0", "GRADIO_ANALYTICS_ENABLED": "False"}
    assert configure_environment(env) == {}
    # importing the app sets nothing (and loads neither Gradio nor torch for app.py's first imports)
    code = ("import os, sys; import app, app.server.runtime, app.server.settings; "
            f"print([n for n in {sorted(OFFLINE_DEFAULTS)!r} if n in os.environ], "
            "[m for m in ('gradio', 'torch', 'huggingface_hub') if m in sys.modules])")
    clean = {k: v for k, v in __import__("os").environ.items() if k not in OFFLINE_DEFAULTS}
    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[] []"


def test_runner_is_chosen_when_the_demo_is_built(monkeypatch):
    import types

    import app.server.runtime as runtime

    assert runtime.choose_runner(False, "cuda") is runtime.IN_PROCESS
    assert runtime.choose_runner(True, "cpu") is runtime.IN_PROCESS  # a CPU pipeline needs no GPU slot
    monkeypatch.setattr(runtime, "import_spaces", lambda: None)
    assert runtime.choose_runner(True, torch.device("cuda")) is runtime.IN_PROCESS  # no spaces package
    wrapped = []
    fake = types.SimpleNamespace(GPU=lambda fn, duration=None: wrapped.append((fn, duration)) or fn)
    monkeypatch.setattr(runtime, "import_spaces", lambda: fake)
    with pytest.raises(ValueError, match="model store"):
        runtime.choose_runner(True, torch.device("cuda"))
    store = types.SimpleNamespace(default=object(), options=[], loaded_sources=lambda: [],
                                  source_of=lambda pipe: None)
    monkeypatch.setattr(runtime, "_STORE", None)
    monkeypatch.setattr(runtime, "_STARTUP_NAMES", runtime._STARTUP_NAMES)
    runner = runtime.choose_runner(True, torch.device("cuda"), store)
    # One GPU function, taking plain data (the pipelines are found by name in the installed store).
    assert [fn for fn, _ in wrapped] == [runtime.gpu_run] and callable(wrapped[0][1])
    assert runtime._STORE is store
    assert runner.mode == "spaces.GPU" and not runner.reports_progress
    assert runtime.name_of(store, store.default) == ""
    from nsnet.inference import CheckpointError

    with pytest.raises(CheckpointError, match="unloaded meanwhile"):
        runtime.name_of(store, object())


# --------------------------------------------------------------------------- examples, checkpoints
def _write_tiny_clip(path: Path, n: int = 12) -> Path:
    from clips import write_clip

    return write_clip(path, num_frames=n, fps=6, size=(64, 48))


def test_load_examples_annotations_and_matching(tmp_path):
    from app.state.examples import load_examples, match_example

    ex = tmp_path / "examples"
    ex.mkdir()
    _write_tiny_clip(ex / "v_walk.mp4")
    _write_tiny_clip(ex / "jump.mkv", n=14)
    _write_tiny_clip(ex / "run.mov", n=10)
    (ex / "notes.txt").write_text("not a clip")
    (ex / "annotations.json").write_text(json.dumps({"database": {  # no classes.txt: the labels are the classes
        "walk": {"subset": "validation", "duration": 2.0,
                 "annotations": [{"segment": [1.2, 1.9], "label": "walking"},
                                 {"segment": [0.5, 1.0], "label": "walking"}]},
        "jump": {"subset": "validation", "annotations": [{"segment": "bad", "label": "jumping"}]},
        "v_run": {"subset": "validation", "annotations": [{"segment": [0.1, 0.4], "label": "running"}]}}}))
    clips = load_examples(ex)
    assert [c.name for c in clips] == ["jump", "run", "v_walk"]
    jump, run, walk = clips
    assert walk.label == "walking"  # v_walk.mp4 <- id "walk"; segments sorted by start, labelled
    assert [(s.start, s.end, s.label) for s in walk.segments] == [(0.5, 1.0, "walking"), (1.2, 1.9, "walking")]
    assert run.label == "running" and [(s.start, s.end) for s in run.segments] == [(0.1, 0.4)]  # run <- "v_run"
    assert jump.segments == () and jump.label is None  # a malformed entry is skipped (nsnet logs it), not fatal
    copy = tmp_path / "upload.mp4"
    copy.write_bytes((ex / "v_walk.mp4").read_bytes())
    assert match_example(copy, clips) == walk
    assert match_example(ex / "notes.txt", clips) is None and match_example(tmp_path / "missing", clips) is None
    assert load_examples(tmp_path / "nope") == [] and load_examples(None) == []

    (ex / "annotations.json").write_text("{not json")  # unreadable annotations: the clips, without ground truth
    assert [(c.name, c.segments, c.label) for c in load_examples(ex)] == [(c.name, (), None) for c in clips]


def test_result_cache_is_bounded_lru():
    from app.state.examples import ResultCache

    cache = ResultCache(max_items=2)
    a, b, c = fake_result(seed=1), fake_result(seed=2), fake_result(seed=3)
    cache.put(("m", "a", 16), a)
    cache.put(("m", "b", 16), b)
    assert cache.get(("m", "a", 16)) is a  # a is now most recent
    cache.put(("m", "c", 16), c)
    assert cache.get(("m", "b", 16)) is None and len(cache) == 2


def test_model_store_labels_and_errors(tmp_path):
    from app.state.models import CheckpointOption, ModelStore, scan_checkpoints
    from nsnet.inference import CheckpointError

    (tmp_path / "runs" / "exp1").mkdir(parents=True)
    (tmp_path / "runs" / "exp1" / "config.json").write_text("{}")
    (tmp_path / "runs" / "exp1" / "model.safetensors").write_bytes(b"")
    (tmp_path / "runs" / "half").mkdir()
    (tmp_path / "runs" / "half" / "config.json").write_text("{}")
    options = scan_checkpoints(tmp_path / "runs")
    assert [o.label for o in options] == ["runs/exp1"]
    sentinel = object()
    store = ModelStore(sentinel, CheckpointOption("Demo", ""), options)
    assert store.labels == ["Demo", "runs/exp1"]
    assert store.get(None)[0] is sentinel and store.get("Demo")[0] is sentinel
    with pytest.raises(CheckpointError, match="unknown checkpoint"):
        store.get("nope")
    with pytest.raises(CheckpointError, match="disabled"):
        store.get(None, hub_id="user/model")
    with pytest.raises(ValueError):  # a broken folder: nsnet's one-line CheckpointError / ConfigError
        store.get("runs/exp1")
