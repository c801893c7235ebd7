import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nsnet.config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig
from nsnet.inference import CheckpointError, Pipeline
from nsnet.inference.methods import compare, rerank, teacher_curve

CONTRACT_KEYS = {"video", "timestamps_s", "frame_scores", "attention", "fused", "selected", "labels",
                 "timings_ms", "gflops", "model"}


@pytest.fixture
def pipe(tiny_pipeline_config):
    torch.manual_seed(0)
    return Pipeline.build(tiny_pipeline_config, device="cpu")


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(8, 72, 96, 3), dtype=np.uint8)  # (T, H, W, 3)


def test_result_follows_the_predict_json_contract(pipe, frames):
    res = pipe(frames)
    d = json.loads(json.dumps(res.to_dict()))
    assert set(d) == CONTRACT_KEYS
    assert len(d["frame_scores"]) == len(d["attention"]) == len(d["fused"]) == len(d["timestamps_s"]) == 8
    assert len(d["selected"]) == 3 and d["selected"] == sorted(d["selected"])
    assert len(d["labels"]) == 5 and d["labels"][0]["score"] >= d["labels"][-1]["score"]
    import naive  # the fusion and the top-K, from the result's own curves by a second implementation

    assert d["fused"] == pytest.approx(naive.fuse(d["frame_scores"], d["attention"], 0.5), abs=1e-6)
    assert d["selected"] == naive.topk(d["fused"], 3)
    assert set(d["timings_ms"]) == {"decode", "sampler", "recognizer", "total"}
    assert set(d["gflops"]) == {"sampler", "recognizer", "total", "dense"}
    g = d["gflops"]
    assert g["recognizer"] > 0 and g["sampler"] > 0
    assert g["total"] == pytest.approx(g["sampler"] + g["recognizer"], rel=1e-3)
    assert g["dense"] == pytest.approx(g["recognizer"] * 8 / 3, rel=1e-3)  # T frames vs K frames
    assert sum(lab["score"] for lab in d["labels"]) <= 1.0 + 1e-5


def test_same_input_same_output_on_cpu(pipe, frames):
    a, b = pipe(frames).to_dict(), pipe(frames).to_dict()
    for key in ("frame_scores", "attention", "fused", "selected", "labels", "gflops"):
        assert a[key] == b[key], key


def test_save_and_load_round_trip_with_perturbed_weights(pipe, frames, tmp_path):
    with torch.no_grad():
        for p in list(pipe.sampler.parameters()) + list(pipe.recognizer.parameters()):
            p.add_(torch.randn_like(p) * 0.05)
    before = pipe(frames, dense=True)
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    assert sorted(x.name for x in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = Pipeline.from_pretrained(folder, device="cpu")
    after = loaded(frames, dense=True)
    np.testing.assert_allclose(before.frame_scores, after.frame_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(before.attention, after.attention, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(before.frame_probs, after.frame_probs, rtol=1e-5, atol=1e-6)
    assert before.selected.tolist() == after.selected.tolist()
    assert loaded.config.class_names == pipe.config.class_names


def test_frozen_pretrained_backbones_are_not_stored(tmp_path):
    cfg = PipelineConfig(class_names=["a", "b"],
                         sampler=SamplerConfig(input_size=64, hidden_dim=16, attention_dim=8),
                         recognizer=RecognizerConfig(backbone="efficientnet_lite0", input_size=64),
                         num_frames=4, k=2)
    pipe = Pipeline.build(cfg, device="cpu")  # packaged ImageNet weights, frozen
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    keys = set(load_file(str(folder / "model.safetensors")))
    assert keys and not any(".backbone." in k for k in keys)
    assert (folder / "model.safetensors").stat().st_size < 2_000_000  # heads only
    frames = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    a = pipe(frames, dense=True)
    b = Pipeline.from_pretrained(folder, device="cpu")(frames, dense=True)
    np.testing.assert_allclose(a.frame_probs, b.frame_probs, rtol=1e-4, atol=1e-6)


def test_rerank_matches_a_fresh_run(pipe, frames):
    res = pipe(frames, k=3, lam=0.5, dense=True)
    for k, lam in [(1, 0.0), (5, 1.0), (8, 0.3)]:
        fresh = pipe(frames, k=k, lam=lam)
        re = rerank(res, k, lam)
        assert re.selected.tolist() == fresh.selected.tolist()
        np.testing.assert_allclose(re.probs, fresh.probs, rtol=1e-4, atol=1e-6)
        assert re.gflops["recognizer"] == pytest.approx(fresh.gflops["recognizer"], rel=1e-6)
        assert [x["label"] for x in re.labels] == [x["label"] for x in fresh.labels]
    with pytest.raises(ConfigError, match="k must be between"):
        rerank(res, 9, 0.5)
    with pytest.raises(ValueError, match="dense=True"):
        rerank(pipe(frames), 2, 0.5)


def test_compare_rows_and_teacher_curve(pipe, frames):
    res = pipe(frames, dense=True)
    rows = {r["method"]: r for r in compare(res, seed=0)}
    assert set(rows) == {"NSNet", "uniform", "random", "dense"}
    assert rows["dense"]["frames"] == list(range(8)) and rows["uniform"]["frames"] == [1, 4, 6]
    assert rows["NSNet"]["frames"] == res.selected.tolist()
    assert rows["dense"]["gflops"] > rows["NSNet"]["gflops"] - res.gflops["sampler"]
    curve = teacher_curve(res)
    top = int(np.argmax(res.probs))
    np.testing.assert_allclose(curve, res.frame_probs[:, top])


def test_bad_inputs_are_clear_errors(pipe, frames, tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        pipe(frames.astype(np.float32))
    with pytest.raises(ConfigError, match="k must be between 1 and T=8"):
        pipe(frames, k=9)
    with pytest.raises(ConfigError, match="lam"):
        pipe(frames, lam=2.0)
    with pytest.raises(CheckpointError, match="not found"):
        Pipeline.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        Pipeline.from_pretrained(tmp_path / "empty")


def test_checkpoint_with_wrong_weights_is_rejected(pipe, tmp_path):
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["sampler"]["hidden_dim"] = 48  # weights no longer fit the config
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        Pipeline.from_pretrained(folder, device="cpu")
    (folder / "model.safetensors").write_bytes(b"garbage")
    cfg["sampler"]["hidden_dim"] = 32
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unreadable"):
        Pipeline.from_pretrained(folder, device="cpu")


def test_build_leaves_the_callers_config_alone(tiny_pipeline_config):
    before = tiny_pipeline_config.to_dict()
    pipe = Pipeline.build(tiny_pipeline_config, device="cpu")
    assert tiny_pipeline_config.to_dict() == before            # not mutated
    assert pipe.config is not tiny_pipeline_config
    assert pipe.config.sampler.num_classes == len(tiny_pipeline_config.class_names)


def test_to_moves_in_place_and_reports_the_device(pipe):
    assert pipe.to("cpu") is pipe and pipe.device == torch.device("cpu")
    assert all(p.device == pipe.device for p in pipe.sampler.parameters())


def test_analyze_is_read_then_analyze_clip(pipe, tmp_path):
    """``analyze(path)`` = ``read`` (decode at the recognizer size) + ``analyze_clip``."""
    from clips import write_clip

    path = write_clip(tmp_path / "c.mp4", 24, size=(96, 72))
    clip, decode_ms = pipe.read(path, 8)
    assert clip.frames.shape[0] == 8 and decode_ms > 0
    a = pipe.analyze(path, 8, dense=True)
    b = pipe.analyze_clip(clip, dense=True)
    assert a.selected.tolist() == b.selected.tolist() and a.video == b.video
    np.testing.assert_allclose(a.frame_probs, b.frame_probs, rtol=1e-5, atol=1e-7)
    assert not hasattr(a, "frames")  # the result is a record of outputs, not of pixels


def test_to_dict_is_strict_json_even_when_the_container_lied(pipe, frames):
    res = pipe(frames, video={"path": "x.mkv", "duration_s": float("inf"), "fps": float("nan"),
                              "width": 96, "height": 72, "num_frames": 8})
    text = json.dumps(res.to_dict(), allow_nan=False)  # raises on NaN / Infinity
    d = json.loads(text)
    assert d["video"]["duration_s"] is None and d["video"]["fps"] is None and d["video"]["width"] == 96


def _tiny_swin(folder):
    """A tiny random transformers Swin (patch 4, window 4, two stages of two layers): it runs
    at 25 px and up (see tests/test_backbones.py)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[2, 2], num_heads=[1, 2],
                                     window_size=4, num_labels=3)
    torch.manual_seed(0)
    transformers.AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    return folder


def _swin_config(folder, size: int) -> PipelineConfig:
    return PipelineConfig(class_names=["a", "b", "c"],
                          sampler=SamplerConfig(backbone=f"hf:{folder}", input_size=size, hidden_dim=16,
                                                attention_dim=8),
                          recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=False,
                                                      input_size=64),
                          num_frames=4, k=2)


def test_a_swin_sampler_at_a_size_it_cannot_run_is_a_config_error(tmp_path):
    folder = _tiny_swin(tmp_path / "swin")
    with pytest.raises(ConfigError) as err:
        Pipeline.build(_swin_config(folder, 16), device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("sampler.input_size=16 does not work with backbone 'hf:")
    assert "at least 25 px" in msg
    frames = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    assert Pipeline.build(_swin_config(folder, 25), device="cpu")(frames).selected.shape == (2,)


def test_a_failed_forward_does_not_break_the_pipeline(tmp_path):
    """Swin resized its windows in place when a call failed, and every later call failed too."""
    pipe = Pipeline.build(_swin_config(_tiny_swin(tmp_path / "swin"), 40), device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    before = pipe(frames, dense=True)
    pipe.config.sampler.input_size = 16  # past the build-time check: the forward itself fails
    with pytest.raises(RuntimeError, match="must match"):
        pipe(frames)
    pipe.config.sampler.input_size = 40
    after = pipe(frames, dense=True)
    np.testing.assert_allclose(before.fused, after.fused, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(before.frame_probs, after.frame_probs, rtol=1e-6, atol=1e-7)


def test_precision_choices_on_cpu(pipe, frames, tiny_pipeline_config):
    from nsnet.inference.pipeline import amp_dtype

    cpu = torch.device("cpu")
    assert amp_dtype(cpu, "auto") is None and amp_dtype(cpu, "fp32") is None  # float32 is the CPU default
    assert amp_dtype(cpu, "bf16") is torch.bfloat16
    for bad, words in (("fp16", "needs a CUDA GPU"), ("int8", "must be one of")):
        with pytest.raises(ConfigError, match=words):
            amp_dtype(cpu, bad)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):  # refused when the pipeline is built
        Pipeline.build(tiny_pipeline_config, device="cpu", precision="fp16")
    with pytest.raises(ConfigError):
        pipe.with_precision("fp16")
    assert pipe.amp_dtype is None and pipe.precision == "auto"  # a refused precision changes nothing
    # features with a signal (random Lite0 weights give ~1e-9 everywhere): the packaged ImageNet weights
    cfg = dataclasses.replace(tiny_pipeline_config, sampler=dataclasses.replace(tiny_pipeline_config.sampler,
                                                                               backbone_pretrained=True))
    torch.manual_seed(0)
    pipe = Pipeline.build(cfg, device="cpu")
    ref = pipe(frames)
    bf16 = pipe.with_precision("bf16")  # the same networks, another precision; pipe itself unchanged
    assert bf16.amp_dtype is torch.bfloat16 and bf16.sampler is pipe.sampler and pipe.amp_dtype is None
    got = bf16(frames)
    assert not np.array_equal(got.frame_scores, ref.frame_scores)  # bf16 really ran
    np.testing.assert_allclose(got.frame_scores, ref.frame_scores, atol=0.1)
    bf16.to("cpu")  # moving keeps the precision
    assert bf16.amp_dtype is torch.bfloat16 and bf16.precision == "bf16"
    assert np.array_equal(pipe(frames).frame_scores, ref.frame_scores)
