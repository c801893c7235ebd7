import json

import pytest

from nsnet.config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig


def test_json_round_trip(tmp_path):
    cfg = PipelineConfig(class_names=["a", "b"], sampler=SamplerConfig(attention="softmax", hidden_dim=64),
                         recognizer=RecognizerConfig(input_size=160), num_frames=10, k=3, lam=0.3,
                         meta={"note": "x"})
    cfg.save(tmp_path / "config.json")
    back = PipelineConfig.load(tmp_path / "config.json")
    assert back == cfg and isinstance(back.sampler, SamplerConfig)


def test_unknown_keys_and_bad_values_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown SamplerConfig field"):
        PipelineConfig.from_dict({"class_names": ["a"], "sampler": {"hiden_dim": 3}})
    with pytest.raises(ConfigError, match="k must be between 1 and T=4"):
        PipelineConfig(class_names=["a"], num_frames=4, k=5)
    with pytest.raises(ConfigError, match="lam"):
        PipelineConfig(class_names=["a"], lam=-0.1)
    with pytest.raises(ConfigError, match="attention"):
        SamplerConfig(attention="max")
    with pytest.raises(ConfigError, match="odd"):
        SamplerConfig(temporal_kernel=2)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        PipelineConfig.load(tmp_path / "bad.json")
    assert json.loads(json.dumps(PipelineConfig().to_dict()))["k"] == 4
