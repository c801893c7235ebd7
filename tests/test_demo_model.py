"""The bundled demo model on the bundled examples: output pinned, CLI usable from anywhere.

``tests/data/demo_predict.json`` holds ``predict --json`` of the demo checkpoint on each
example clip (without ``video.path`` and ``timings_ms``, which depend on where and how fast
it ran). A refactor must not move a single score; a deliberate change of the model or of a
reported quantity regenerates the file in the same commit.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from nsnet.cli import predict

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
GOLDEN = json.loads((Path(__file__).parent / "data" / "demo_predict.json").read_text())


def _close(a, b, where: str = "") -> None:
    """Exact structure, floats to 1e-5 (relative) so BLAS threading cannot fail the test."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7), (where, a, b)
    else:
        assert a == b, (where, a, b)


def _comparable(obj: dict) -> dict:
    obj = dict(obj, video={k: v for k, v in obj["video"].items() if k != "path"})
    obj.pop("timings_ms")
    return obj


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_predict_json_of_the_demo_model_is_unchanged(name, capsys):
    assert predict.main([str(EXAMPLES / name), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"]["path"] == str(EXAMPLES / name)
    assert set(out["timings_ms"]) == {"decode", "sampler", "recognizer", "total"}
    _close(GOLDEN[name], _comparable(out), name)


def test_console_script_works_from_another_folder(tmp_path):
    """``pip install -e .`` (part of the set-up) gives an ``nsnet`` command usable anywhere."""
    script = Path(sys.executable).parent / "nsnet"
    assert script.is_file(), "run `make venv` (it installs the package with `pip install -e .`)"
    name = sorted(GOLDEN)[0]
    done = subprocess.run([str(script), "predict", str(EXAMPLES / name), "--json", "--device", "cpu"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _close(GOLDEN[name], _comparable(json.loads(done.stdout)), name)


def test_the_pinned_file_follows_the_method_and_agrees_with_the_ground_truth():
    """Why ``demo_predict.json`` is right, not only unchanged (tests/data/README.md).

    Everything in it that is not a raw network output follows from the raw outputs by the
    method's formulas, recomputed here by a naive second implementation (tests/naive.py):
    the previews shown at the TSN centres, the fusion at the checkpoint's lam, the top-K and
    the cost relations. The network's decisions are checked against the synthetic
    generator's ground truth (``assets/examples/annotations.json``): every kept preview lies
    inside an action segment, and the true class is the top label on at least 3 of the 4
    clips and among the top 2 on every one.
    """
    import naive

    config = json.loads((ROOT / "assets" / "demo-model" / "config.json").read_text())
    t, k, lam, names = config["num_frames"], config["k"], config["lam"], config["class_names"]
    truth = json.loads((EXAMPLES / "annotations.json").read_text())["database"]
    assert sorted(GOLDEN) == sorted(f"{vid}.mp4" for vid in truth)
    right = 0
    for name, g in GOLDEN.items():
        video = g["video"]
        assert video["num_frames"] == round(video["duration_s"] * video["fps"])
        # the preview at each TSN centre is the frame (shown at i / fps) nearest it, a tie to the earlier one
        centres = naive.tsn_centres(video["duration_s"], t)
        nearest = [min(video["num_frames"] - 1, math.ceil(c * video["fps"] - 0.5 - 1e-9)) for c in centres]
        shown = [round(i / video["fps"], 4) for i in nearest]
        assert g["timestamps_s"] == pytest.approx(shown, abs=1e-4), name
        assert len(g["frame_scores"]) == len(g["attention"]) == t
        assert g["fused"] == pytest.approx(naive.fuse(g["frame_scores"], g["attention"], lam), abs=1e-6), name
        assert g["selected"] == naive.topk(g["fused"], k), name
        gf = g["gflops"]
        assert gf["total"] == pytest.approx(gf["sampler"] + gf["recognizer"], abs=2e-4)
        assert gf["dense"] == pytest.approx(gf["recognizer"] * t / k, rel=1e-3)  # T recognizer frames, not K
        scores = [lab["score"] for lab in g["labels"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
        assert len({lab["label"] for lab in g["labels"]}) == 5 and all(lab["label"] in names for lab in g["labels"])
        # against the generator's ground truth
        annotations = truth[name[:-len(".mp4")]]["annotations"]
        segments = [a["segment"] for a in annotations]
        kept_inside = naive.inside([g["timestamps_s"][i] for i in g["selected"]], segments)
        assert all(kept_inside), (name, g["selected"])
        label = annotations[0]["label"]
        assert label in [lab["label"] for lab in g["labels"][:2]], name
        right += g["labels"][0]["label"] == label
    assert right >= 3
