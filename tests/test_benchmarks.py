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


def test_bench_pipeline_runs_on_a_tiny_clip_and_its_numbers_add_up(tmp_path, capsys):
    """``nsnet bench pipeline`` end to end (the bundled demo model, a generated 3-s 128x72 clip, T=4)."""
    import json

    from nsnet.cli import main

    out = tmp_path / "bench.json"
    argv = ["bench", "pipeline", "--workdir", str(tmp_path / "work"), "--clip-minutes", "0.05", "--clip-height", "72",
            "--frames", "4", "--k", "2", "--repeats", "1", "--batch", "2", "--device", "cpu", "--json", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert (report["t"], report["k"], report["device"]) == (4, 2, "cpu")
    ms, gf = report["median_ms"], report["gflops"]
    assert all(v > 0 for v in ms.values()) and report["throughput_videos_per_s"] > 0
    # one repeat: the medians are that run's numbers, so the totals are exact sums
    assert ms["nsnet_total"] == ms["decode"] + ms["sampler"] + ms["recognizer"]
    assert ms["dense_total"] == ms["decode"] + ms["dense_recognizer"]
    assert abs(gf["total"] - gf["sampler"] - gf["recognizer"]) < 1e-9
    assert abs(gf["dense"] - gf["recognizer"] * 4 / 2) < 1e-6   # T recognizer frames against K
    table = capsys.readouterr().out
    assert "| NSNet (T=4 previews, K=2) |" in table and "| dense (all T=4 through the recognizer) |" in table
    assert probe(next((tmp_path / "work").glob("bench-128x72-*.mp4"))).height == 72


def test_bench_pipeline_refuses_bad_rounds(tmp_path, capsys):
    import pytest

    from nsnet.cli import main

    for flag, value in [("--repeats", "0"), ("--batch", "0"), ("--clip-minutes", "0"), ("--clip-height", "8")]:
        with pytest.raises(SystemExit) as excinfo:
            main(["bench", "pipeline", flag, value, "--workdir", str(tmp_path)])
        assert excinfo.value.code == 2 and flag in capsys.readouterr().err
    assert not any(tmp_path.iterdir())   # refused before anything was generated
