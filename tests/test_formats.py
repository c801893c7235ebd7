"""Annotation readers on small hand-made files, malformed entries included."""
from __future__ import annotations

import json
import logging

import pytest

from nsnet.data.formats import load_dataset, read_activitynet
from nsnet.data.records import DatasetError, normalise_subset, segments_mask


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def warnings_from(caplog, name="nsnet.data.formats"):
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno >= logging.WARNING]


# ---------------------------------------------------------------------------- ActivityNet
@pytest.fixture
def anet(tmp_path):
    db = {
        "aaa": {"subset": "training", "duration": 20.0, "url": "", "resolution": "320x240",
                "annotations": [{"segment": [2.0, 5.0], "label": "Long jump"},
                                {"segment": [10.0, 25.0], "label": "Long jump"}]},       # end clipped to 20
        "bbb": {"subset": "validation", "duration": 10.0,
                "annotations": [{"segment": [1.0, 2.0], "label": "Archery"},
                                {"segment": [3.0, 8.0], "label": "Long jump"}]},          # two labels
        "ccc": {"subset": "testing", "duration": 12.0, "annotations": []},               # unlabelled
        "bad1": {"subset": "training", "duration": 10.0,
                 "annotations": [{"segment": [5.0, 4.0], "label": "Archery"}]},           # reversed
        "bad2": {"subset": "training", "duration": 10.0, "annotations": "oops"},         # not a list
        "bad3": {"subset": "training", "duration": 10.0,
                 "annotations": [{"segment": [1.0], "label": "Archery"}]},                 # bad segment
        "bad4": {"subset": "training", "duration": 10.0,
                 "annotations": [{"segment": [1.0, 2.0], "label": "Unicycling"}]},         # unknown label
        "bad5": "not an object",
        "ddd": {"subset": "train", "duration": 9.0,
                "annotations": [{"segment": [0.5, 1.5], "label": "Archery"}]},             # alias, missing file
    }
    root = tmp_path / "anet"
    root.mkdir()
    (root / "activity_net.v1-3.min.json").write_text(json.dumps({"version": "VERSION 1.3", "database": db}))
    (root / "classes.txt").write_text("Archery\nLong jump\n")
    vids = tmp_path / "videos"
    touch(vids / "v_aaa.mp4")
    touch(vids / "sub" / "bbb.mkv")
    touch(vids / "v_ccc.webm")
    touch(vids / ".hidden" / "v_ddd.mp4")       # hidden folders are not searched
    return root / "activity_net.v1-3.min.json", vids


def test_activitynet_reader(anet, caplog):
    ann, vids = anet
    caplog.set_level(logging.INFO)
    records, classes = load_dataset(ann, video_root=vids)
    assert classes == ["Archery", "Long jump"]
    by_id = {r.video_id: r for r in records}
    assert set(by_id) == {"aaa", "bbb", "ccc", "ddd"}
    a = by_id["aaa"]
    assert a.path == vids / "v_aaa.mp4" and a.label == "Long jump" and a.label_index == 1
    assert a.subset == "training" and a.duration == 20.0
    assert a.segments == ((2.0, 5.0), (10.0, 20.0))
    b = by_id["bbb"]
    assert b.path == vids / "sub" / "bbb.mkv" and b.label == "Long jump"  # covers more time
    assert b.segments == ((1.0, 2.0), (3.0, 8.0))
    c = by_id["ccc"]
    assert c.label is None and c.label_index == -1 and c.segments is None and c.subset == "testing"
    d = by_id["ddd"]
    assert d.subset == "training" and not d.path.exists()
    warnings = warnings_from(caplog)
    skipped = [w for w in warnings if "skipped 5 of 9 entries" in w]
    assert len(skipped) == 1
    for reason in ("empty or reversed segment", "annotations is not a list", "bad segment",
                   "label not in the class list", "entry is not an object"):
        assert reason in skipped[0]
    assert any("1 of 4 videos not found" in w for w in warnings)


def test_activitynet_subset_and_class_fallback(anet):
    ann, vids = anet
    (ann.parent / "classes.txt").unlink()
    records, classes = load_dataset(ann, video_root=vids, subset="val")
    assert classes == ["Archery", "Long jump", "Unicycling"]  # sorted labels of parsed entries
    assert [r.video_id for r in records] == ["bbb"]
    assert records[0].label_index == 1


def test_activitynet_folder_auto_detect(tmp_path):
    (tmp_path / "videos").mkdir()
    touch(tmp_path / "videos" / "x1.mp4")
    (tmp_path / "annotations.json").write_text(json.dumps({"database": {"x1": {
        "subset": "validation", "duration": 3.0, "annotations": [{"segment": [0, 1], "label": "a"}]}}}))
    records, classes = load_dataset(tmp_path)
    assert classes == ["a"] and records[0].path == tmp_path / "videos" / "x1.mp4"
    # an interrupted make-synthetic run (annotations.json comes last) is not misread as a class tree
    (tmp_path / "annotations.json").unlink()
    (tmp_path / "generator.json").write_text("{}")
    with pytest.raises(DatasetError, match="incomplete synthetic benchmark"):
        load_dataset(tmp_path)


def test_unreadable_annotation_files_raise_one_line_errors(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not a readable JSON"):
        read_activitynet(bad)
    bad.write_text(json.dumps({"no": "database"}))
    with pytest.raises(DatasetError, match="database"):
        load_dataset(bad)
    with pytest.raises(DatasetError, match="no such"):
        load_dataset(tmp_path / "missing.json")
    (tmp_path / "x.yaml").write_text("")
    with pytest.raises(DatasetError, match="unknown annotation format"):
        load_dataset(tmp_path / "x.yaml")


# ------------------------------------------------------------------------------ Kinetics
def test_kinetics_csv_reader(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    csv = tmp_path / "train.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "abseiling,AAA,10,20,train\n"              # trimmed clip on disk
        "\"playing, cards\",BBB,5,15,val\n"          # full video on disk -> segment
        "abseiling,CCC,0,10,train\n"               # missing file, kept
        "abseiling,DDD,oops,10,train\n"            # bad time
        "abseiling,,1,2,train\n"                   # missing id
        "abseiling,EEE,9,3,train\n"                # reversed
        "abseiling,FFF,1,2,train,extra\n"          # too many columns
        "abseiling,GGG\n"                          # too few columns
        ",HHH,0,10,test\n")                        # unlabelled test row
    vids = tmp_path / "k400"
    touch(vids / "train" / "abseiling" / "AAA_000010_000020.mp4")
    touch(vids / "BBB.mp4")
    records, classes = load_dataset(csv, video_root=vids)
    assert classes == ["abseiling", "playing, cards"]
    by_id = {r.video_id: r for r in records}
    assert set(by_id) == {"AAA_000010_000020", "BBB_000005_000015", "CCC_000000_000010", "HHH_000000_000010"}
    a = by_id["AAA_000010_000020"]
    assert a.path.name == "AAA_000010_000020.mp4" and a.segments is None and a.subset == "training"
    b = by_id["BBB_000005_000015"]
    assert b.path == vids / "BBB.mp4" and b.segments == ((5.0, 15.0),) and b.label_index == 1
    assert b.subset == "validation"
    h = by_id["HHH_000000_000010"]
    assert h.label is None and h.label_index == -1 and h.subset == "testing"
    skipped = [w for w in warnings_from(caplog) if "skipped 5 of 9 rows" in w]
    assert len(skipped) == 1 and "bad time_start / time_end" in skipped[0]
    assert "wrong number of columns" in skipped[0] and "missing youtube_id" in skipped[0]
    assert [r.video_id for r in load_dataset(csv, video_root=vids, subset="train")[0]] == [
        "AAA_000010_000020", "CCC_000000_000010"]


def test_kinetics_split_from_file_name_and_bad_header(tmp_path):
    csv = tmp_path / "validate.csv"
    csv.write_text("label,youtube_id,time_start,time_end\nx,ID1,0,10\n")
    records, _ = load_dataset(csv)
    assert records[0].subset == "validation"
    (tmp_path / "bad.csv").write_text("name,start\nx,1\n")
    with pytest.raises(DatasetError, match="youtube_id"):
        load_dataset(tmp_path / "bad.csv")


# --------------------------------------------------------------------------- folder tree
def test_folder_tree_reader(tmp_path, caplog):
    root = tmp_path / "tree"
    touch(root / "dog" / "a.mp4")
    touch(root / "dog" / "deeper" / "b.MOV")
    touch(root / "cat" / "c.webm")
    touch(root / "cat" / "notes.txt")
    touch(root / ".nsnet-cache" / "z.mp4")
    touch(root / "empty" / "readme.md")
    (root / "splits.txt").write_text("# split\ndog/a.mp4 train\ncat/c.webm test\n\nbroken-line\nbird/x.mp4 val\n")
    records, classes = load_dataset(root)
    assert classes == ["cat", "dog"]
    by_id = {r.video_id: r for r in records}
    assert set(by_id) == {"dog/a", "dog/deeper/b", "cat/c"}
    assert by_id["dog/a"].subset == "training" and by_id["cat/c"].subset == "testing"
    assert by_id["dog/deeper/b"].subset is None and by_id["dog/deeper/b"].label_index == 1
    assert all(r.segments is None for r in records)
    warnings = warnings_from(caplog)
    assert len(warnings) == 1 and "split line without a subset" in warnings[0]
    assert "split entry without a video" in warnings[0]
    assert [r.video_id for r in load_dataset(root, subset="test")[0]] == ["cat/c"]
    with pytest.raises(DatasetError, match="no videos"):
        load_dataset(tmp_path / "tree" / "empty", fmt="folder")


# ------------------------------------------------------------------------------- helpers
def test_subset_aliases_and_mask():
    assert [normalise_subset(s) for s in ("train", "VAL", "test", "validation", None)] == [
        "training", "validation", "testing", "validation", None]
    assert segments_mask([0.0, 1.0, 2.0, 3.0], [(0.5, 1.0), (2.5, 4)]).tolist() == [False, True, False, True]
    assert segments_mask([0.0, 1.0], None).tolist() == [False, False]


def test_files_saved_with_a_utf8_bom_read_like_plain_ones(tmp_path):
    """Spreadsheet exports start with a BOM: the header must still be recognised."""
    csv = tmp_path / "val.csv"
    csv.write_bytes("label,youtube_id,time_start,time_end,split\nabseiling,AAA,0,10,val\n".encode("utf-8-sig"))
    records, classes = load_dataset(csv, video_root=tmp_path)
    assert classes == ["abseiling"] and records[0].label == "abseiling" and records[0].label_index == 0
    ann = tmp_path / "ann.json"
    doc = {"database": {"v1": {"subset": "validation", "duration": 5.0,
                               "annotations": [{"segment": [1, 2], "label": "jump"}]}}}
    ann.write_bytes(json.dumps(doc).encode("utf-8-sig"))
    records, classes = read_activitynet(ann)
    assert classes == ["jump"] and records[0].label == "jump"
