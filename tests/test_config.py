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


@pytest.mark.parametrize("section, field, value, message", [
    ("sampler", "attention_dim", 10_000_000, r"sampler.attention_dim must be between 1 and 8192"),
    ("sampler", "hidden_dim", 1e9, r"sampler.hidden_dim must be an integer"),
    ("sampler", "temporal_kernel", 10_001, r"sampler.temporal_kernel must be between 1 and 31"),
    ("sampler", "input_size", "96", r"sampler.input_size must be an integer"),
    ("sampler", "dropout", "lots", r"sampler.dropout must be a number"),
    ("sampler", "backbone", 5, r"sampler.backbone must be a non-empty string"),
    ("sampler", "freeze_backbone", "yes", r"sampler.freeze_backbone must be true or false"),
    ("recognizer", "input_size", 1_000_000, r"recognizer.input_size must be between 16 and 1024"),
    ("recognizer", "dropout", float("nan"), r"recognizer.dropout must be between 0 and 0.99"),
    ("recognizer", "head", ["x"], r"recognizer.head must be 'linear' or 'backbone'"),
    (None, "num_frames", 100_000, r"num_frames \(T\) must be between 1 and 256"),
    (None, "num_frames", 2.5, r"num_frames \(T\) must be an integer"),
    (None, "k", True, r"k must be an integer"),
    (None, "lam", "half", r"lam must be a number"),
    (None, "class_names", "abc", r"class_names must be a list"),
    (None, "sampler", 3, r"sampler must be an object"),
    (None, "meta", [], r"meta must be an object"),
])
def test_hostile_config_values_are_one_config_error(tmp_path, section, field, value, message):
    """A checkpoint's config.json is validated before anything is built or allocated."""
    data = PipelineConfig(class_names=["a", "b"]).to_dict()
    (data[section] if section else data)[field] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as err:
        PipelineConfig.load(path)
    assert "\n" not in str(err.value) and str(err.value).startswith("config.json: ")


def test_config_file_that_is_not_an_object_or_not_readable(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        PipelineConfig.load(path)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="config.json"):
        PipelineConfig.load(path)


def test_a_deep_huge_or_special_config_file_is_one_config_error(tmp_path):
    """``PipelineConfig.load`` reads like a checkpoint does: nesting, size and file type bounded, one line."""
    import os

    from nsnet.inference.checkpoint import MAX_CONFIG_BYTES  # the bound a checkpoint load uses

    deep = tmp_path / "deep.json"
    deep.write_text('{"meta": ' + "[" * 100_000 + "]" * 100_000 + "}")  # json.loads alone: RecursionError
    with pytest.raises(ConfigError, match="nested deeper than") as err:
        PipelineConfig.load(deep)
    assert "\n" not in str(err.value)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:  # sparse: nothing is written, the size alone is refused
        f.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigError, match="larger than"):
        PipelineConfig.load(huge)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="fifo.json"):  # refused, not a read that blocks forever
        PipelineConfig.load(fifo)
