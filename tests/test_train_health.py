"""Degenerate pseudo labels (under 5% or over 95% of frames salient) are a WARNING with the likely
cause and the fix; the fraction is in the training summary and in the checkpoint's meta."""
from __future__ import annotations

import json
import logging

import pytest

from nsnet.data.synthetic import main as make_synthetic
from nsnet.training import TrainConfig, trainer

TINY = dict(sampler_backbone="efficientnet_lite0", recognizer_backbone="efficientnet_lite0",
            backbones_pretrained=False, sampler_size=64, recognizer_size=64, hidden_dim=32,
            num_frames=6, k=2, batch_size=4, recognizer_epochs=1, sampler_epochs=1, progress=False,
            val_subset="none", save_state=False, device="cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    data = tmp_path_factory.mktemp("synthetic") / "data"
    assert make_synthetic([str(data), "--videos", "8", "--seed", "5", "--classes", "3", "--size", "96x72"]) == 0
    return data, tmp_path_factory.mktemp("cache")


def _run(tiny, tmp_path, caplog, **changes):
    data, cache = tiny
    cfg = TrainConfig.from_dict(dict(TINY, data=str(data), cache_dir=str(cache), out=str(tmp_path / "ckpt"), **changes))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        result = trainer.run(cfg)
    meta = json.loads((result.checkpoint / "config.json").read_text())["meta"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "pseudo labels" in
                r.getMessage()]
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trained on ")]
    return result, meta, warnings, summary


@pytest.mark.parametrize("tau, fraction, side, fix", [
    (1.0, 0.0, "non-salient", "lower --tau"),   # a 3-class teacher is never fully sure: no frame is salient
    (0.0, 1.0, "salient", "raise --tau"),       # every confidence is >= 0: every frame is salient
])
def test_degenerate_pseudo_labels_warn_with_cause_and_fix(tiny, tmp_path, caplog, tau, fraction, side, fix):
    result, meta, warnings, summary = _run(tiny, tmp_path, caplog, pseudo_rule="threshold", tau=tau)
    assert len(warnings) == 1, warnings
    text = warnings[0]
    assert f"pseudo labels (threshold): {100 * fraction:.1f}% of frames salient" in text
    assert f"call every frame {side}" in text and "Likely cause:" in text and fix in text and "\n" not in text
    assert result.pseudo_labels == {"rule": "threshold", "salient_fraction": fraction, "healthy": False}
    assert meta["pseudo_labels"] == result.pseudo_labels                      # in the checkpoint's meta
    assert len(summary) == 1 and f"pseudo labels (threshold) {100 * fraction:.1f}% of frames salient" in summary[0]
    assert "degenerate" in summary[0]


def test_healthy_pseudo_labels_are_one_info_line_and_recorded(tiny, tmp_path, caplog):
    result, meta, warnings, summary = _run(tiny, tmp_path, caplog, pseudo_rule="topk", rho=0.5)
    assert warnings == []
    assert result.pseudo_labels == {"rule": "topk", "salient_fraction": 0.5, "healthy": True}  # 3 of 6 frames
    assert meta["pseudo_labels"]["salient_fraction"] == 0.5
    info = [r.getMessage() for r in caplog.records if r.getMessage() == "pseudo labels (topk): 50.0% of frames salient"]
    assert len(info) == 1 and "degenerate" not in summary[0]
