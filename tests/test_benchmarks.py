"""The benchmark helpers work on a fresh machine (no work folder yet)."""
from __future__ import annotations

from nsnet.benchmarks.decode import make_clip
from nsnet.video import probe


def test_make_clip_creates_its_work_folder(tmp_path):
    work = tmp_path / "not" / "yet"
    path = make_clip(work, "t", 64, 48, minutes=0.05, fps=10, gop_s=1.0)
    info = probe(path)
    assert path.parent == work and (info.width, info.height) == (64, 48) and info.duration_s > 2.5
    assert make_clip(work, "t", 64, 48, minutes=0.05, fps=10, gop_s=1.0) == path  # cached
