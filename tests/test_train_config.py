"""TrainConfig nests the PipelineConfig: every architecture field is settable, older names still work."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nsnet.cli.train import build_parser, config_from_args
from nsnet.config import ConfigError
from nsnet.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_the_pipeline_defaults_and_round_trip():
    cfg = TrainConfig(data="d")
    assert cfg.pipeline.num_frames == 16 and cfg.pipeline.k == 4 and cfg.pipeline.sampler.input_size == 96
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert "class_names" not in cfg.to_dict()["pipeline"]  # set by the data, not by the user


def test_older_flat_names_map_into_the_pipeline():
    cfg = TrainConfig.from_dict({"sampler_size": 64, "recognizer_size": 112, "hidden_dim": 32, "attention": "softmax",
                                 "temporal_kernel": 5, "backbones_pretrained": False, "num_frames": 8, "k": 2,
                                 "lam": 0.3, "sampler_backbone": "efficientnet_lite2", "recognizer_head": "linear"})
    s, r = cfg.pipeline.sampler, cfg.pipeline.recognizer
    assert (s.input_size, s.hidden_dim, s.attention, s.temporal_kernel, s.backbone) == \
           (64, 32, "softmax", 5, "efficientnet_lite2")
    assert r.input_size == 112 and not s.backbone_pretrained and not r.backbone_pretrained
    assert (cfg.pipeline.num_frames, cfg.pipeline.k, cfg.pipeline.lam) == (8, 2, 0.3)


def test_the_bundled_ablation_base_config_still_loads():
    values = json.loads((ROOT / "assets" / "ablation_base.json").read_text())
    cfg = TrainConfig.from_dict(values)
    assert cfg.pseudo_rule == values["pseudo_rule"] == "relative"


def test_every_sampler_and_recognizer_field_is_a_flag():
    cfg = config_from_args(["--data", "d", "--sampler-dropout", "0.3", "--sampler-attention-dim", "7",
                            "--recognizer-dropout", "0.4", "--recognizer-input-size", "112",
                            "--no-sampler-backbone-pretrained", "--k", "3"])
    assert cfg.pipeline.sampler.dropout == 0.3 and cfg.pipeline.sampler.attention_dim == 7
    assert cfg.pipeline.recognizer.dropout == 0.4 and cfg.pipeline.recognizer.input_size == 112
    assert not cfg.pipeline.sampler.backbone_pretrained and cfg.pipeline.recognizer.backbone_pretrained
    assert cfg.pipeline.k == 3


def test_older_flags_and_config_files_with_overrides(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"data": "d", "pipeline": {"sampler": {"hidden_dim": 24}}, "sampler_size": 80}))
    cfg = config_from_args(["--config", str(path), "--recognizer-size", "128", "--no-backbones-pretrained"])
    assert cfg.pipeline.sampler.hidden_dim == 24 and cfg.pipeline.sampler.input_size == 80
    assert cfg.pipeline.recognizer.input_size == 128
    assert not cfg.pipeline.sampler.backbone_pretrained and not cfg.pipeline.recognizer.backbone_pretrained
    cfg = config_from_args(["--config", str(path), "--sampler-input-size", "64"])  # the flag wins
    assert cfg.pipeline.sampler.input_size == 64


def test_pipeline_config_derives_freezing_from_finetune():
    cfg = TrainConfig.from_dict({"data": "d"})
    frozen = cfg.pipeline_config(["a", "b"])
    assert frozen.class_names == ["a", "b"] and frozen.sampler.freeze_backbone and frozen.recognizer.freeze_backbone
    tuned = cfg.replace(finetune=True).pipeline_config(["a", "b"])
    assert not tuned.sampler.freeze_backbone and not tuned.recognizer.freeze_backbone
    assert cfg.pipeline.class_names == []  # the run's own config is left alone


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"smapler_size": 3})
    with pytest.raises(ConfigError, match="unknown SamplerConfig field"):
        TrainConfig.from_dict({"sampler.dropuot": 0.1})
    with pytest.raises(ConfigError, match="k must be between"):
        TrainConfig.from_dict({"num_frames": 4, "k": 5})
    with pytest.raises(ConfigError, match="--data is required"):
        config_from_args([])


def test_every_flag_says_what_it_does_and_its_default():
    """Every flag of every TrainConfig and pipeline field has a sentence of its own and shows its
    default (older aliases say what they stand for)."""
    import dataclasses

    from nsnet.cli.train import HELP

    seen = set()
    for action in build_parser()._actions:
        if action.dest in ("help", "config") or not action.option_strings:
            continue
        text = action.help or ""
        if text.startswith(("same as", "set ")):
            continue
        seen.add(action.dest)
        what, _, default = text.rpartition(" (default: ")
        assert len(what.split()) >= 2 and default.endswith(")") and default != "None)", (action.option_strings, text)
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"pipeline", "extra"}
    assert fields <= seen and seen <= set(HELP), (fields - seen, seen - set(HELP))
