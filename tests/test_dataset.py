"""VideoDataset end to end on a tiny generated benchmark: items, ground truth, bad videos, caches."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import nsnet.data.dataset
from nsnet.data.dataset import VideoDataset
from nsnet.data.formats import load_dataset
from nsnet.data.records import VideoRecord
from nsnet.data.synthetic import SynthConfig, sample_spec
from nsnet.data.synthetic.generate import generate

TINY = SynthConfig(num_classes=4, width=64, height=48, fps=6, min_duration_s=4.0, max_duration_s=6.0)
T, S = 6, 32


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    generate(out, 4, 0, TINY, workers=1, progress=False)
    return out


@pytest.fixture
def broken(bench, tmp_path):
    """The benchmark's records plus one missing and one corrupt (truncated) video."""
    records, classes = load_dataset(bench)
    bad = tmp_path / "truncated.mp4"
    data = records[0].path.read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    extra = [VideoRecord("missing", tmp_path / "missing.mp4", classes[0], 0, "training"),
             VideoRecord("truncated", bad, classes[1], 1, "training")]
    return records[:2] + extra + records[2:], classes


def test_items_and_ground_truth_mask(bench):
    records, classes = load_dataset(bench)
    ds = VideoDataset(records, classes, num_frames=T, size=S)
    assert len(ds) == 4
    values = set()
    for i, rec in enumerate(records):
        item = ds[i]
        assert item["frames"].shape == (T, S, S, 3) and item["frames"].dtype == torch.uint8
        assert item["label"] == classes.index(rec.label) and item["video_id"] == rec.video_id
        ts = item["timestamps_s"].numpy()
        assert ts.shape == (T,) and np.all(np.diff(ts) > 0)
        # the mask from the annotation agrees with what was rendered at those instants
        spec = sample_spec(0, int(rec.video_id.split("_")[1]), TINY)
        assert np.allclose(ts * spec.fps, np.rint(ts * spec.fps), atol=1e-6)  # frame times
        rendered = spec.salient_frames()[np.rint(ts * spec.fps).astype(int)]
        assert item["gt_mask"].dtype == torch.bool and item["gt_mask"].numpy().tolist() == rendered.tolist()
        values |= set(rendered.tolist())
    assert values == {True, False}


def test_records_without_segments_have_no_gt_mask(bench):
    records, classes = load_dataset(bench)
    rec = records[0]
    plain = VideoRecord(rec.video_id, rec.path, rec.label, rec.label_index, rec.subset)
    item = VideoDataset([plain], classes, num_frames=T, size=S)[0]
    assert "gt_mask" not in item and item["frames"].shape == (T, S, S, 3)


def test_missing_and_corrupt_videos_are_skipped(broken, caplog):
    records, classes = broken
    ds = VideoDataset(records, classes, num_frames=T, size=S)
    with caplog.at_level(logging.WARNING, logger="nsnet.data.dataset"):
        loader = DataLoader(ds, batch_size=None)  # items one by one; None for a bad video
        seen = [item["video_id"] for item in loader if item is not None]
        ds[2], ds[3]  # failing again is not logged again
    assert seen == [r.video_id for r in records if r.video_id not in ("missing", "truncated")]
    assert set(ds.failures) == {"missing", "truncated"}
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2 and "missing" in msgs[0] and "truncated" in msgs[1]


def test_preview_cache_decodes_once(bench, tmp_path, monkeypatch):
    records, classes = load_dataset(bench)
    ds = VideoDataset(records, classes, num_frames=T, size=S, cache_dir=tmp_path / "c")
    first = [ds[i] for i in range(len(ds))]

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(nsnet.data.dataset, "read_clip", no_decoding)
    again = VideoDataset(records, classes, num_frames=T, size=S, cache_dir=tmp_path / "c")
    for a, b in zip(first, (again[i] for i in range(len(again)))):
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["gt_mask"], b["gt_mask"])
    # a different T is a different key: it must decode (and here fails -> skipped, not crashed)
    other = VideoDataset(records, classes, num_frames=T + 1, size=S, cache_dir=tmp_path / "c")
    with pytest.raises(AssertionError):
        other[0]
