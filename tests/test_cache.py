"""FeatureCache: round trip, resume, corrupt-file recovery."""
from __future__ import annotations

import logging
import os

import pytest
import torch

from nsnet.data.cache import FeatureCache, video_key

KEY = {"video": "/data/a.mp4", "bytes": 10, "mtime_ns": 1, "t": 8, "size": 224, "backbone": "x"}


def tensors():
    return {"features": torch.arange(24, dtype=torch.float32).reshape(8, 3),
            "timestamps_s": torch.linspace(0, 7, 8, dtype=torch.float64),
            "frames": torch.randint(0, 255, (2, 4, 4, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
            "mask": torch.tensor([True, False])}


def test_round_trip_and_no_temp_files(tmp_path):
    cache = FeatureCache(tmp_path)
    assert cache.get(KEY) is None and KEY not in cache
    path = cache.put(KEY, tensors())
    assert KEY in cache and path.is_file()
    got = cache.get(KEY)
    for k, v in tensors().items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]
    assert cache.get({**KEY, "t": 16}) is None  # another key


def test_get_or_compute_computes_once_across_instances(tmp_path):
    calls = []

    def fn():
        calls.append(1)
        return tensors()

    FeatureCache(tmp_path).get_or_compute(KEY, fn)
    again = FeatureCache(tmp_path).get_or_compute(KEY, fn)  # a later run / epoch
    assert len(calls) == 1 and torch.equal(again["features"], tensors()["features"])


def test_failed_compute_stores_nothing(tmp_path):
    cache = FeatureCache(tmp_path)
    with pytest.raises(OSError):
        cache.get_or_compute(KEY, lambda: (_ for _ in ()).throw(OSError("unreadable")))
    assert KEY not in cache


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bitflip", "empty"])
def test_corrupt_files_are_detected_logged_and_recomputed(tmp_path, caplog, damage):
    cache = FeatureCache(tmp_path)
    path = cache.put(KEY, tensors())
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 20)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # flip one byte of tensor data: the header still parses, the checksum catches it
        b = bytearray(data)
        b[-5] ^= 0xFF
        path.write_bytes(bytes(b))
    with caplog.at_level(logging.WARNING, logger="nsnet.data.cache"):
        assert cache.get(KEY) is None
    assert cache.corrupt == 1 and not path.exists()
    assert any("unusable" in r.getMessage() for r in caplog.records)
    calls = []
    out = cache.get_or_compute(KEY, lambda: calls.append(1) or tensors())
    assert calls == [1] and torch.equal(out["features"], tensors()["features"])
    assert torch.equal(cache.get(KEY)["features"], tensors()["features"])  # stored again, readable


def test_file_of_another_key_is_rejected(tmp_path):
    cache = FeatureCache(tmp_path)
    other = {**KEY, "backbone": "y"}
    src = cache.put(other, tensors())
    dst = cache.path_for(KEY)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())  # e.g. a copied / renamed file
    assert cache.get(KEY) is None and cache.corrupt == 1


def test_video_key_tracks_file_changes(tmp_path):
    f = tmp_path / "v.mp4"
    f.write_bytes(b"1234")
    k1 = video_key(f, t=8)
    assert k1["t"] == 8 and k1["bytes"] == 4 and k1["video"] == str(f.resolve())
    f.write_bytes(b"123456")
    os.utime(f, ns=(k1["mtime_ns"] + 10**9, k1["mtime_ns"] + 10**9))
    assert video_key(f, t=8) != k1
    with pytest.raises(FileNotFoundError):
        video_key(tmp_path / "missing.mp4")
