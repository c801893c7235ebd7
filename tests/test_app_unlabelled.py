"""``--data FOLDER`` of plain videos (no class folders, no annotations): an unlabelled dataset in the explorer.

The folder holds copies of a generated benchmark's tiny clips, a symlink to a clip outside it, a hidden file and
a text file; a folder with class sub-folders stays labelled."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from test_app_dataset import context, make_benchmark, synthetic_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> tuple[Path, list[str]]:
    """(a folder of 3 plain videos + a symlink to a video outside it + other files, the ids to expect)."""
    from nsnet.data.formats import load_dataset

    work = tmp_path_factory.mktemp("unlabelled")
    bench = make_benchmark(work / "bench", videos=4)
    records, _ = load_dataset(bench)
    folder = work / "clips"
    folder.mkdir()
    for i, r in enumerate(records[:3]):
        shutil.copy(r.path, folder / f"clip{i}{r.path.suffix}")
    (folder / "outside.mp4").symlink_to(records[3].path)     # resolves outside the folder: never served
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(records[0].path.read_bytes())
    return folder, ["clip0", "clip1", "clip2", "outside"]


def test_a_plain_folder_reads_as_unlabelled_only_when_asked(plain, tmp_path):
    from nsnet.data.formats import load_dataset
    from nsnet.data.records import DatasetError

    folder, ids = plain
    records, names = load_dataset(folder, unlabelled_ok=True)
    assert [r.video_id for r in records] == ids and names == []
    assert all(r.label is None and r.label_index == -1 and r.segments is None for r in records)
    with pytest.raises(DatasetError, match="no videos found in class folders"):   # training still needs labels
        load_dataset(folder)
    labelled = tmp_path / "labelled"
    (labelled / "jump").mkdir(parents=True)
    shutil.copy(folder / "clip0.mp4", labelled / "jump" / "a.mp4")
    shutil.copy(folder / "clip1.mp4", labelled / "loose.mp4")   # a loose file beside class folders: still labelled
    records, names = load_dataset(labelled, unlabelled_ok=True)
    assert names == ["jump"] and [(r.video_id, r.label) for r in records] == [("jump/a", "jump")]


def test_a_symlink_out_of_the_folder_is_not_served(plain):
    from app.state.dataset import DatasetStore, VideoRefused

    folder, _ = plain
    store = DatasetStore.open(folder)
    assert store.served("clip0") == (folder / "clip0.mp4").resolve()
    with pytest.raises(VideoRefused):
        store.served("outside")
    row = store.row("outside")
    assert row["error"] == "outside.mp4: outside the dataset's video folder: not served"
    assert str(folder.parent) not in str(row)          # never a server path
    assert [r.video_id for r in store.missing()] == ["clip0", "clip1", "clip2"]


def test_unlabelled_rows_show_predictions_without_marks(plain, tmp_path):
    from app.state.dataset import DatasetStore
    from app.tabs.dataset import DatasetRoom
    from app.views import dataset_table as ds

    folder, _ = plain
    store = DatasetStore.open(folder)
    room = DatasetRoom(context(synthetic_pipeline(), tmp_path, dataset=store))
    room.ensure_started()
    assert store.wait(timeout=300)
    view = room.everything(None, ds.ALL, "")
    rows = view["ds_table"]["value"]
    assert [r[0] for r in rows] == ["clip0", "clip1", "clip2", "outside"]
    for r in rows[:3]:
        assert r[1] == "" and r[2] and not r[2].startswith("⚠")      # no ground truth, a prediction
        assert r[3] == "" and r[5] == "" and r[6] == ""                # no ✓/✗ mark
    assert rows[3][2].startswith("⚠")
    assert "accuracy needs labels" in view["ds_summary"] and "NSNet's most frequent predictions" in view["ds_summary"]
    assert "full-clip prediction" in view["ds_faith"].plot   # the curves: agreement with all T previews
    assert view["ds_classes"]["value"] == []                  # no class to tabulate


def test_unlabelled_folder_through_the_dataset_endpoint(plain, tmp_path):
    pytest.importorskip("gradio_client")
    from gradio_client import Client

    from app.server.settings import AppSettings
    from app.shell import build_demo
    from app.state.models import CheckpointOption, ModelStore
    from test_app_client import launch

    folder, ids = plain
    settings = AppSettings(examples_dir=tmp_path / "no-examples", data=folder)
    demo = build_demo(ModelStore(synthetic_pipeline(), CheckpointOption("tiny-synthetic", "")), settings,
                      export_root=tmp_path / "exports")
    url = launch(demo, settings)
    try:
        rows = Client(url, verbose=False).predict(wait=True, timeout_s=300, api_name="/dataset")
    finally:
        demo.close()
    assert [r["id"] for r in rows] == ids
    for r in rows[:3]:
        assert r["gt"] is None and isinstance(r["nsnet_label"], str) and isinstance(r["dense_label"], str)
        assert r["nsnet_correct"] is None and r["dense_correct"] is None and r["uniform_correct"] is None
    assert rows[3]["nsnet_label"] is None    # the symlink out of the folder: an error row, never analysed
