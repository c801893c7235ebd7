"""Dataset mode serves exactly the dataset's videos (issue: a hostile visitor, an unlucky operator).

A real launched app over a dataset folder that also holds a secret, a symlink pointing outside,
a symlink to a text file, an annotation id that climbs out (``../../outside/secret``) and an
absolute id; its ``--results`` file has malformed rows and its run file an absolute checkpoint
path. Expected: no file of the folder is served by path, the hostile records are error rows,
the page names files relative to the dataset, the malformed rows are skipped with one warning
and the server starts. Also: ``--results`` alone (a row's ``path`` outside or not a video), a
FIFO ``--results`` (one line, no hang) and a ``--models-dir`` symlink cycle.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

import gradio as gr  # noqa: E402
from gradio_client import Client  # noqa: E402

from test_app_dataset import PATTERN, context, fake_results, make_benchmark, synthetic_pipeline  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HOSTILE = ("link", "fake", "../../outside/secret")   # + the absolute id (its path depends on tmp)
SECRET = "password=hunter2"


def hostile_dataset(work: Path) -> tuple[Path, Path, str]:
    """(dataset folder, outside folder, the absolute id): a benchmark copied with planted files and ids."""
    ds, outside = work / "ds", work / "outside"
    shutil.copytree(make_benchmark(work / "src"), ds)
    outside.mkdir()
    videos = sorted((ds / "videos").glob("*.mp4"))
    (ds / "secret.txt").write_text(SECRET + "\n")
    (ds / "private").mkdir()
    (ds / "private" / ".env").write_text("TOKEN=abc\n")
    shutil.copy(videos[1], outside / "secret.mp4")      # a real video, but outside the dataset
    shutil.copy(videos[1], outside / "abs.mp4")
    (ds / "videos" / "link.mp4").symlink_to(outside / "secret.mp4")
    (ds / "videos" / "fake.mp4").symlink_to(ds / "secret.txt")
    ann = json.loads((ds / "annotations.json").read_text())
    template = next(iter(ann["database"].values()))
    absolute = str(outside / "abs")
    for vid in (*HOSTILE, absolute):
        ann["database"][vid] = dict(template)
    (ds / "annotations.json").write_text(json.dumps(ann))
    return ds, outside, absolute


MALFORMED = [  # one wrong field each: skipped, counted, never a crash
    {"frame_probs": "not a list"}, {"frame_probs": [[0.5, 0.5], [0.5]]}, {"timestamps_s": "0,1,2"},
    {"frame_scores": "0.1 0.2"}, {"attention": [0.5]}, {"gt": 3}, {"gt": ["a", "b"]},
    {"nsnet": {"label": {"a": 1}, "score": 0.5, "correct": True}},
]
NESTED = "[" * 100_000 + "]" * 100_000   # deeper than any JSON parser's recursion


def results_with_bad_rows(records, names, out: Path) -> tuple[Path, list[int]]:
    """``fake_results`` (its last line torn) with ``MALFORMED`` variants of its first row appended (the same id,
    after it: were one accepted, it would replace the good row) and a deeply nested line; the bad lines' numbers."""
    fake_results(records, out, names)
    lines = out.read_text().splitlines()
    first = json.loads(lines[0])
    bad = [len(lines)]   # the torn "{not json" line
    for i, change in enumerate(MALFORMED):
        lines.append(json.dumps(dict(first, **change)))
        bad.append(len(lines))
    lines.append(NESTED)
    bad.append(len(lines))
    out.write_text("\n".join(lines) + "\n")
    return out, bad


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A launched app in dataset mode over the hostile folder, with a --results file holding bad rows."""
    from app.server.settings import AppSettings
    from app.shell import build_demo
    from app.state.models import CheckpointOption, ModelStore
    from nsnet.data.formats import load_dataset
    from test_app_client import launch

    work = tmp_path_factory.mktemp("security")
    ds, outside, absolute = hostile_dataset(work)
    records, names = load_dataset(ds)
    results, bad = results_with_bad_rows(records, names, work / "rows.jsonl")
    (work / "rows.run.json").write_text(json.dumps({"checkpoint": str(work / "models" / "tiny-ckpt"), "t": 8,
                                                    "k": 3, "lam": 0.7, "seed": 0, "precision": "fp32"}))
    store = ModelStore(synthetic_pipeline(), CheckpointOption("tiny-synthetic", ""))
    settings = AppSettings(examples_dir=work / "no-examples", data=ds / "annotations.json", results=results)
    demo = build_demo(store, settings, export_root=work / "exports")
    url = launch(demo, settings)
    try:
        yield dict(url=url, work=work, ds=ds, outside=outside, absolute=absolute, records=records, bad=bad,
                   demo=demo)
    finally:
        demo.close()


def test_no_file_of_the_dataset_folder_is_served_by_path(served):
    ds, url = served["ds"], served["url"]
    for path in (ds / "secret.txt", ds / "private" / ".env", ds / "annotations.json",
                 ds / "videos" / "syn_00000.mp4", ds / "videos" / "link.mp4", served["outside"] / "secret.mp4",
                 served["work"] / "rows.jsonl"):
        assert path.is_file()
        status, body = get(f"{url}gradio_api/file={path}")
        assert status != 200 and SECRET.encode() not in body, (path, status)


def test_hostile_records_are_error_rows_and_nothing_names_a_server_path(served):
    records, absolute = served["records"], served["absolute"]
    client = Client(served["url"], verbose=False)
    rows = {r["id"]: r for r in client.predict(api_name="/dataset")}
    assert set(rows) == {r.video_id for r in records}          # the server started; bad result rows skipped
    assert rows[records[0].video_id]["nsnet_correct"] is PATTERN[0][0]   # the good row, not a malformed one
    for vid in (*HOSTILE, absolute):
        assert rows[vid]["nsnet_label"] is None, vid           # an error row: no analysis shown for it
    good = [r for r in records if r.video_id not in (*HOSTILE, absolute)]
    assert good and all(rows[r.video_id]["nsnet_label"] is not None for r in good)

    status, body = get(f"{served['url']}config")
    assert status == 200
    page = body.decode()
    for server_path in (str(served["ds"]), str(served["work"] / "rows.jsonl"), str(served["work"] / "models")):
        assert server_path not in page, server_path
    assert "⚠ videos/link.mp4: outside the dataset" in page      # named relative to the dataset
    assert "⚠ videos/fake.mp4: not a video file" in page
    assert "results file `rows.jsonl` (checkpoint `tiny-ckpt`" in page and "λ=0.70" in page


def test_opening_a_row_hands_out_only_checked_videos(served, tmp_path):
    from gradio.utils import get_upload_folder

    from app.tabs.dataset import DatasetRoom

    ctx = context(synthetic_pipeline(), tmp_path, dataset=_store(served))
    room = DatasetRoom(ctx)
    for vid in (*HOSTILE, served["absolute"]):
        with pytest.raises(gr.Error) as err:
            room.open_row(gr.SelectData(None, {"index": [0, 0], "value": vid, "row_value": [vid]}))
        assert "not served" in str(err.value) and str(served["work"]) not in str(err.value), str(err.value)
    good = served["records"][0]
    clip = Path(room.open_row(gr.SelectData(None, {"index": [0, 0], "value": good.video_id,
                                                   "row_value": [good.video_id]}))["clip"])
    assert clip.resolve().is_relative_to(Path(get_upload_folder()).resolve())
    assert clip.read_bytes() == good.path.read_bytes()
    status, body = get(f"{served['url']}gradio_api/file={clip}")   # what Gradio created is what it serves
    assert status == 200 and body == good.path.read_bytes()


def _store(served):
    from app.state.dataset import DatasetStore

    return DatasetStore.open(served["ds"], results=served["work"] / "rows.jsonl")


def test_malformed_result_rows_are_skipped_with_one_warning(served, caplog):
    from app.state.dataset import DatasetStore

    with caplog.at_level(logging.WARNING):
        store = DatasetStore.open(served["ds"], results=served["work"] / "rows.jsonl")
    warnings = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 1
    assert f"skipped {len(served['bad'])} malformed line(s) (line {', '.join(map(str, served['bad']))};" \
        in warnings[0]
    assert str(served["work"]) not in warnings[0]
    errors = {row["id"]: row["error"] for row in store.rows() if row.get("error")}
    assert set(errors) == {*HOSTILE, served["absolute"]}
    assert errors["link"] == "videos/link.mp4: outside the dataset's video folder: not served"
    assert errors["fake"] == "videos/fake.mp4: not a video file: not served"
    assert errors["../../outside/secret"].endswith("outside the dataset's video folder: not served")
    assert str(served["ds"]) not in json.dumps(errors)


def test_results_alone_serve_only_videos_beside_the_results_file(tmp_path):
    """``--results`` without ``--data``: a row's ``path`` must be a video inside the results file's folder
    (or ``--video-root``); a text file or a video elsewhere is an error row, never served."""
    from app.state.dataset import DatasetStore, VideoRefused
    from nsnet.data.formats import load_dataset

    records, names = load_dataset(make_benchmark(tmp_path / "bench"))
    res = tmp_path / "res"
    res.mkdir()
    (res / "notes.txt").write_text(SECRET)
    shutil.copy(records[2].path, res / "inside.mp4")
    out = fake_results(records[:3], res / "rows.jsonl", names)
    lines = [json.loads(x) for x in out.read_text().splitlines()[:3]]
    lines[0]["path"], lines[1]["path"], lines[2]["path"] = str(res / "notes.txt"), str(records[1].path), \
        str(res / "inside.mp4")
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))

    store = DatasetStore.open(None, results=out)
    rows = {r["id"]: r for r in store.rows()}
    assert rows[records[0].video_id]["error"] == "notes.txt: not a video file: not served"
    assert rows[records[1].video_id]["error"].endswith("outside the dataset's video folder: not served")
    assert rows[records[2].video_id]["error"] is None and rows[records[2].video_id]["nsnet"]
    assert store.served(records[2].video_id) == (res / "inside.mp4").resolve()
    for vid in (records[0].video_id, records[1].video_id):
        with pytest.raises(VideoRefused):
            store.served(vid)
    # --video-root names where the videos are: then the benchmark's video is served, the text file still not
    again = DatasetStore.open(None, video_root=records[1].path.parent, results=out)
    assert again.served(records[1].video_id) == records[1].path.resolve()
    assert again.row(records[0].video_id)["error"].endswith("not served")


def test_launch_adds_no_dataset_folder_to_the_allowed_paths(tmp_path):
    from app.server.settings import AppSettings
    from app.shell import launch_kwargs

    (tmp_path / "val.csv").write_text("label,youtube_id,time_start,time_end\n")
    for settings in (AppSettings(examples_dir=tmp_path / "none", data=tmp_path / "val.csv"),
                     AppSettings(examples_dir=tmp_path / "none", data=tmp_path, video_root=tmp_path / "v",
                                 results=tmp_path / "rows.jsonl")):
        assert not launch_kwargs(settings)["allowed_paths"]


def test_fifo_results_is_refused_in_one_line(tmp_path):
    from app.server.settings import parse_settings
    from app.state.dataset import DatasetStore
    from nsnet.evaluation.jsonl import ResultFileError

    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(SystemExit) as err:
        parse_settings(["--results", str(fifo)], environ={})
    assert str(err.value).startswith("app.py: --results") and "FIFO" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ResultFileError):
        DatasetStore.open(None, results=fifo)     # refused before it is opened (no hang)
    proc = subprocess.run([sys.executable, "app.py", "--results", str(fifo), "--port", "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, NSNET_DEVICE="cpu"))
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "FIFO" in proc.stderr and "Traceback" not in proc.stderr


def test_models_dir_symlink_cycle_lists_each_checkpoint_once(tmp_path):
    from app.state.models import scan_checkpoints
    from nsnet.inference.checkpoint import CONFIG_NAME, WEIGHTS_NAME

    models = tmp_path / "models"
    for name in ("a", "group/b"):
        (models / name).mkdir(parents=True)
        (models / name / CONFIG_NAME).write_text("{}")
        (models / name / WEIGHTS_NAME).write_bytes(b"")
    (models / "loop").symlink_to(models)          # back to its parent
    (models / "group" / "up").symlink_to(models)
    (models / "again").symlink_to(models / "a")   # a second link to one checkpoint
    labels = [o.label for o in scan_checkpoints(models)]
    assert sorted(labels) == ["models/a", "models/group/b"]


def test_a_second_open_reuses_the_copy(served, tmp_path):
    from app.tabs.dataset import DatasetRoom

    room = DatasetRoom(context(synthetic_pipeline(), tmp_path, dataset=_store(served)))
    good = served["records"][1]
    evt = gr.SelectData(None, {"index": [1, 0], "value": good.video_id, "row_value": [good.video_id]})
    first = room.open_row(evt)["clip"]
    assert room.open_row(evt)["clip"] == first and Path(first).read_bytes() == good.path.read_bytes()
    Path(first).unlink()                          # the cache aged it out: a new copy is made
    again = room.open_row(evt)["clip"]
    assert Path(again).read_bytes() == good.path.read_bytes()
