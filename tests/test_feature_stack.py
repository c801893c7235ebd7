"""``build_feature_set``'s stacked features: memory-mapped stack files in the cache, written once, named by
what they hold, equal to the features computed directly, shared by every process that maps them."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nsnet.data.features import build_feature_set
from nsnet.data.formats import load_dataset
from nsnet.data.records import VideoRecord
from nsnet.data.synthetic import SynthConfig
from nsnet.data.synthetic.generate import generate
from nsnet.video import read_clip

TINY = SynthConfig(num_classes=3, width=64, height=48, fps=6, min_duration_s=4.0, max_duration_s=6.0)
T = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("stack")
    generate(out, 4, 0, TINY, workers=1, progress=False)
    return load_dataset(out)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from nsnet.config import PipelineConfig, RecognizerConfig, SamplerConfig
    from nsnet.inference import Pipeline

    torch.manual_seed(0)
    cfg = PipelineConfig(class_names=["a", "b", "c"], num_frames=T, k=2,
                         sampler=SamplerConfig(backbone="efficientnet_lite0", backbone_pretrained=False,
                                               input_size=64, hidden_dim=16, attention_dim=8),
                         recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=False,
                                                     input_size=64))
    return Pipeline.build(cfg, device="cpu")


def _stacks(cache: Path) -> list[Path]:
    return sorted((cache / "stacks").glob("*.sampler"))


def test_stacked_features_are_mapped_files_equal_to_a_direct_computation(data, pipe, tmp_path, monkeypatch):
    records, classes = data
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    records = records[:2] + [VideoRecord("bad", bad, classes[0], 0, "training")] + records[2:]
    cache = tmp_path / "cache"
    fs = build_feature_set(records, classes, pipe, T, cache, progress=False)
    assert fs.video_ids == [r.video_id for r in records if r.video_id != "bad"] and set(fs.skipped) == {"bad"}
    assert len(_stacks(cache)) == 1
    # the features are the stack files' pages (memory-mapped: shared with every process that maps them,
    # e.g. the other ranks on this machine), not a copy in this process
    stack = _stacks(cache)[0]
    assert stack.stat().st_size == fs.sampler.numel() * 4
    maps = Path("/proc/self/maps").read_text()
    assert str(stack.resolve()) in maps and str(stack.with_suffix(".recognizer").resolve()) in maps
    # each row equals what the pipeline computes from the decoded previews directly
    for i, record in enumerate(r for r in records if r.video_id != "bad"):
        clip = read_clip(record.path, num_frames=T, size=pipe.config.recognizer.input_size)
        s, r = pipe.extract_features(clip.frames)
        torch.testing.assert_close(fs.sampler[i], s.float(), rtol=0, atol=0)
        torch.testing.assert_close(fs.recognizer[i], r.float(), rtol=0, atol=0)
        np.testing.assert_array_equal(fs.timestamps_s[i].numpy(), clip.timestamps_s)
    assert fs.labels.tolist() == [r.label_index for r in records if r.video_id != "bad"]

    # a second build decodes nothing and reuses the stack as it is
    before = {p: p.stat().st_mtime_ns for p in (cache / "stacks").iterdir()}
    monkeypatch.setattr("nsnet.data.features.read_clip", lambda *a, **k: pytest.fail("decoded again"))
    again = build_feature_set(records[:2] + records[3:], classes, pipe, T, cache, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (cache / "stacks").iterdir()} == before
    torch.testing.assert_close(again.sampler, fs.sampler, rtol=0, atol=0)

    # another selection of videos is another stack; the first stays as it was
    fewer = build_feature_set(records[:2], classes, pipe, T, cache, progress=False)
    assert len(_stacks(cache)) == 2 and fewer.sampler.shape[0] == 2
    torch.testing.assert_close(fewer.recognizer, fs.recognizer[:2], rtol=0, atol=0)


def test_a_video_changed_on_disk_gets_a_new_stack(data, pipe, tmp_path):
    records, classes = data
    cache = tmp_path / "cache"
    build_feature_set(records, classes, pipe, T, cache, progress=False)
    first = _stacks(cache)
    st = records[0].path.stat()
    os.utime(records[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        build_feature_set(records, classes, pipe, T, cache, progress=False)
    finally:
        os.utime(records[0].path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert len(_stacks(cache)) == 2 and first[0] in _stacks(cache)
