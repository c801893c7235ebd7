"""Honest, portable checkpoints: backbones are stored unless a package ships them, their weights
are fingerprinted and checked on load, and a checkpoint moves between machines.

Nothing here downloads: torchvision "pretrained" weights are random tensors in a fake torch hub
cache under tmp_path, transformers backbones are tiny random configs saved to tmp_path.
"""
from __future__ import annotations

import json
import logging
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from nsnet.cli import evaluate, predict
from nsnet.cli import train as train_cli
from nsnet.cli.common import USER_ERRORS
from nsnet.config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig
from nsnet.inference import CheckpointError, Pipeline
from nsnet.inference.checkpoint import portable_backbone_name
from nsnet.models.backbones import BackboneError, MissingWeightsError, cached_torchvision_weights_path

transformers = pytest.importorskip("transformers")

TV = "torchvision:shufflenet_v2_x0_5"  # the smallest torchvision classifier with a linear head


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _config(sampler="efficientnet_lite0", recognizer="efficientnet_lite0", *, s_pre=False, r_pre=False,
            s_size=64, r_size=64) -> PipelineConfig:
    return PipelineConfig(class_names=["a", "b", "c"],
                          sampler=SamplerConfig(backbone=sampler, backbone_pretrained=s_pre, input_size=s_size,
                                                hidden_dim=16, attention_dim=8),
                          recognizer=RecognizerConfig(backbone=recognizer, backbone_pretrained=r_pre, input_size=r_size),
                          num_frames=4, k=2)


@pytest.fixture
def frames():
    return np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)


def _same(a, b) -> None:
    np.testing.assert_allclose(a.frame_scores, b.frame_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.attention, b.attention, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.frame_probs, b.frame_probs, rtol=1e-5, atol=1e-6)
    assert a.selected.tolist() == b.selected.tolist()


def _perturb_heads(pipe: Pipeline) -> Pipeline:
    """Stand-in for training: heads that differ from a fresh build."""
    torch.manual_seed(1)
    with torch.no_grad():
        for module in (pipe.sampler, pipe.recognizer):
            for name, p in module.named_parameters():
                if not name.startswith("backbone."):
                    p.add_(torch.randn_like(p) * 0.1)
    return pipe


def _fake_torch_cache(tmp_path: Path, monkeypatch, arch: str = "shufflenet_v2_x0_5") -> Path:
    """Random 'pretrained' weights in a private torch hub cache; returns the file."""
    import torchvision.models as tvm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = Path(cached_torchvision_weights_path(tvm.get_model_weights(arch).DEFAULT))
    path.parent.mkdir(parents=True)
    torch.manual_seed(7)
    torch.save(tvm.get_model(arch, weights=None).state_dict(), path)
    return path


def _tiny_vit(folder: Path) -> Path:
    labels = {i: f"vit-{i}" for i in range(5)}
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32, num_labels=5, id2label=labels,
                                    label2id={v: k for k, v in labels.items()})
    torch.manual_seed(3)
    transformers.AutoModelForImageClassification.from_config(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"do_center_crop": False, "size": {"height": 32, "width": 32}, "image_mean": [0.5, 0.5, 0.5],
         "image_std": [0.5, 0.5, 0.5]}))
    return folder


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


# --------------------------------------------------------------------------- 1: no silently random backbone


def test_missing_pretrained_weights_stop_the_build_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        Pipeline.build(_config(recognizer="torchvision:resnet18", r_pre=True), device="cpu")
    msg = str(err.value)
    assert msg.startswith("recognizer backbone: torchvision resnet18: pretrained weights ") and "\n" not in msg
    assert str(tmp_path / "hub" / "checkpoints") in msg
    assert any(issubclass(MissingWeightsError, e) for e in USER_ERRORS)  # the CLI's one-line exit 2


def test_train_exits_2_instead_of_training_a_random_backbone(tmp_path, monkeypatch, caplog):
    from clips import write_clip

    for cls in ("jump", "run"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        write_clip(tmp_path / "data" / cls / "v.mp4", 12, size=(64, 48))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "ckpt"
    with caplog.at_level(logging.ERROR):
        code = train_cli.main(["--data", str(tmp_path / "data"), "--out", str(out), "--cache-dir",
                               str(tmp_path / "cache"), "--subset", "all", "--val-subset", "none",
                               "--recognizer-backbone", "torchvision:resnet18", "--no-sampler-backbone-pretrained",
                               "--no-progress"])
    assert code == 2 and not out.exists()
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in caplog.text and "resnet18" in caplog.text


def test_pretrained_torchvision_backbone_is_stored_and_reloads_without_the_cache(tmp_path, monkeypatch, frames):
    cached = _fake_torch_cache(tmp_path, monkeypatch)
    pipe = _perturb_heads(Pipeline.build(_config(sampler=TV, s_pre=True), device="cpu"))  # frozen, pretrained
    assert pipe.sampler.backbone.head_labels is not None  # the cached weights were loaded
    before = pipe(frames, dense=True)
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    keys = set(load_file(str(folder / "model.safetensors")))
    assert any(k.startswith("sampler.backbone.") for k in keys)  # not reproducible from a package: stored
    meta = json.loads((folder / "config.json").read_text())["meta"]["backbones"]
    assert meta["sampler"]["name"] == TV and meta["sampler"]["stored"] is True
    assert meta["recognizer"] == {"name": "efficientnet_lite0", "fingerprint": meta["recognizer"]["fingerprint"],
                                  "stored": True}  # random: stored too
    cached.unlink()  # another machine, without the torch cache
    a, b = (Pipeline.from_pretrained(folder, device="cpu") for _ in range(2))
    _same(before, a(frames, dense=True))
    _same(a(frames, dense=True), b(frames, dense=True))
    assert a.sampler.backbone.head_labels == pipe.sampler.backbone.head_labels


def test_random_backbone_is_stored_and_two_loads_agree(tmp_path, frames):
    pipe = _perturb_heads(Pipeline.build(_config(sampler=TV), device="cpu"))
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    a, b = (Pipeline.from_pretrained(folder, device="cpu")(frames, dense=True) for _ in range(2))
    _same(pipe(frames, dense=True), a)
    _same(a, b)


def test_a_tampered_fingerprint_or_weight_is_a_checkpoint_error(tmp_path):
    folder = Pipeline.build(_config(sampler=TV), device="cpu").save_pretrained(tmp_path / "ckpt")
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    original = config_path.read_text()
    cfg = json.loads(original)
    cfg["meta"]["backbones"]["sampler"]["fingerprint"] = "0123456789abcdef"
    config_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as err:
        Pipeline.from_pretrained(folder, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and f"sampler backbone {TV}" in msg and "0123456789abcdef" in msg
    assert "model.safetensors is not the file" in msg

    config_path.write_text(original)
    state = load_file(str(weights_path))
    key = next(k for k in sorted(state) if k.startswith("recognizer.backbone.") and k.endswith("weight"))
    state[key] = state[key] + 1e-3
    save_file(state, str(weights_path))
    with pytest.raises(CheckpointError, match="recognizer backbone efficientnet_lite0: weights fingerprint"):
        Pipeline.from_pretrained(folder, device="cpu")


def test_packaged_backbone_is_not_stored_but_checked(tmp_path):
    cfg = _config(r_pre=True)  # recognizer: frozen ImageNet EfficientNet-Lite0 from its pip package
    folder = Pipeline.build(cfg, device="cpu").save_pretrained(tmp_path / "ckpt")
    assert not any(k.startswith("recognizer.backbone.") for k in load_file(str(folder / "model.safetensors")))
    data = json.loads((folder / "config.json").read_text())
    assert data["meta"]["backbones"]["recognizer"]["stored"] is False
    Pipeline.from_pretrained(folder, device="cpu")  # the package gives the recorded weights
    data["meta"]["backbones"]["recognizer"]["fingerprint"] = "ffffffffffffffff"
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="installed here differ"):
        Pipeline.from_pretrained(folder, device="cpu")


def test_checkpoints_without_fingerprints_load_as_before(tmp_path, frames):
    pipe = _perturb_heads(Pipeline.build(_config(r_pre=True), device="cpu"))
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    data = json.loads((folder / "config.json").read_text())
    del data["meta"]["backbones"]  # as written before fingerprints existed (like assets/demo-model)
    (folder / "config.json").write_text(json.dumps(data))
    _same(pipe(frames, dense=True), Pipeline.from_pretrained(folder, device="cpu")(frames, dense=True))


# --------------------------------------------------------------------------- 2: checkpoints move


def test_local_hf_backbone_travels_with_the_checkpoint(tmp_path, frames):
    source = _tiny_vit(tmp_path / "models" / "vit")
    cfg = _config(sampler=f"hf:{source}", recognizer=f"hf:{source}", s_pre=True, r_pre=True, s_size=32, r_size=32)
    pipe = _perturb_heads(Pipeline.build(cfg, device="cpu"))
    before = pipe(frames, dense=True)
    folder = pipe.save_pretrained(tmp_path / "a" / "ckpt")
    text = (folder / "config.json").read_text()
    data = json.loads(text)
    assert str(tmp_path) not in text and not any(s.startswith("/") for s in _strings(data))
    assert data["sampler"]["backbone"] == "hf:./backbones/sampler"
    assert data["recognizer"]["backbone"] == "hf:./backbones/recognizer"
    assert data["meta"]["backbones"]["sampler"]["files"] == "backbones/sampler"
    assert not any(str(tmp_path) in p.read_text() for p in folder.rglob("*.json"))
    for role in ("sampler", "recognizer"):
        assert (folder / "backbones" / role / "config.json").is_file()
        assert (folder / "backbones" / role / "preprocessor_config.json").is_file()
        assert not list((folder / "backbones" / role).glob("*.safetensors"))  # weights: model.safetensors

    shutil.rmtree(tmp_path / "models")  # the backbone's folder is gone ...
    moved = tmp_path / "elsewhere" / "ckpt"
    shutil.move(str(folder), str(moved))  # ... and the checkpoint moved
    loaded = Pipeline.from_pretrained(moved, device="cpu")
    _same(before, loaded(frames, dense=True))
    assert loaded.sampler.backbone.input_size == 32 and loaded.sampler.backbone.mean == (0.5, 0.5, 0.5)
    again = Pipeline.from_pretrained(loaded.save_pretrained(tmp_path / "resaved"), device="cpu")
    _same(before, again(frames, dense=True))


def _tiny_clip(folder: Path) -> Path:
    from tokenizers.pre_tokenizers import ByteLevel

    vocab: dict[str, int] = {}  # byte-level BPE vocabulary without merges: one token per byte
    for ch in sorted(ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    bos, eos = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = bos, eos
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=40, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=8)
    torch.manual_seed(5)
    transformers.CLIPModel(config).save_pretrained(folder)
    transformers.CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32},
                                    crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_local_clip_recognizer_travels_with_the_checkpoint(tmp_path, frames):
    """CLIP's class embeddings come from its weights: rebuilt from the checkpoint, they are redone."""
    source = _tiny_clip(tmp_path / "clip")
    cfg = _config(recognizer=f"clip:{source}", r_pre=True, r_size=32)
    cfg.recognizer.head = "backbone"  # zero-shot over the class names
    pipe = _perturb_heads(Pipeline.build(cfg, device="cpu"))
    before = pipe(frames, dense=True)
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    assert (folder / "backbones" / "recognizer" / "tokenizer_config.json").is_file()
    shutil.rmtree(source)
    loaded = Pipeline.from_pretrained(folder, device="cpu")
    assert loaded.config.recognizer.backbone == "clip:./backbones/recognizer"
    _same(before, loaded(frames, dense=True))


def test_hub_id_backbone_stays_an_id_and_loads_offline_from_its_bundled_files(tmp_path, frames):
    assert portable_backbone_name("hf:google/vit-base-patch16-224", "sampler") == "hf:google/vit-base-patch16-224"
    assert portable_backbone_name(f"clip:{tmp_path}", "recognizer") == "clip:./backbones/recognizer"
    assert portable_backbone_name("torchvision:resnet18", "sampler") == "torchvision:resnet18"
    source = _tiny_vit(tmp_path / "vit")
    pipe = _perturb_heads(Pipeline.build(_config(sampler=f"hf:{source}", s_pre=True, s_size=32), device="cpu"))
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    data = json.loads((folder / "config.json").read_text())
    data["sampler"]["backbone"] = "hf:nobody/tiny-vit"  # as if trained from the hub (HF_HUB_OFFLINE=1 here)
    (folder / "config.json").write_text(json.dumps(data))
    loaded = Pipeline.from_pretrained(folder, device="cpu")
    _same(pipe(frames, dense=True), loaded(frames, dense=True))
    resaved = json.loads((loaded.save_pretrained(tmp_path / "resaved") / "config.json").read_text())
    assert resaved["sampler"]["backbone"] == "hf:nobody/tiny-vit"


def _old_style_checkpoint(tmp_path: Path) -> tuple[Pipeline, Path, Path]:
    """A checkpoint as written before backbones were portable: ``hf:/abs/folder`` in config.json,
    the frozen pretrained backbone not stored, no fingerprints, no bundled files."""
    source = _tiny_vit(tmp_path / "home" / "vit")
    pipe = _perturb_heads(Pipeline.build(_config(sampler=f"hf:{source}", s_pre=True, s_size=32), device="cpu"))
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    data = json.loads((folder / "config.json").read_text())
    data["sampler"]["backbone"] = f"hf:{source}"
    del data["meta"]["backbones"]
    (folder / "config.json").write_text(json.dumps(data))
    state = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("sampler.backbone.")},
              str(folder / "model.safetensors"))
    shutil.rmtree(folder / "backbones")
    return pipe, folder, source


def test_an_old_checkpoint_whose_backbone_folder_moved_can_be_remapped(tmp_path, frames):
    pipe, folder, source = _old_style_checkpoint(tmp_path)
    expected = pipe(frames, dense=True)
    _same(expected, Pipeline.from_pretrained(folder, device="cpu")(frames, dense=True))  # loads unchanged
    new = tmp_path / "data" / "vit"
    shutil.move(str(source), str(new))  # another machine
    with pytest.raises(BackboneError, match="sampler backbone: hf:.*cannot load") as err:
        Pipeline.from_pretrained(folder, device="cpu")
    assert "\n" not in str(err.value)
    for key in (str(source), f"hf:{source}", "sampler"):
        loaded = Pipeline.from_pretrained(folder, device="cpu", backbone_paths={key: str(new)})
        _same(expected, loaded(frames, dense=True))
    resaved = loaded.save_pretrained(tmp_path / "resaved")  # saving again writes today's kind of checkpoint
    shutil.rmtree(new)
    _same(expected, Pipeline.from_pretrained(resaved, device="cpu")(frames, dense=True))
    with pytest.raises(ConfigError, match="matches no backbone"):
        Pipeline.from_pretrained(folder, device="cpu", backbone_paths={"/not/there": str(new)})
    with pytest.raises(ConfigError, match="no location to remap"):
        Pipeline.from_pretrained(folder, device="cpu", backbone_paths={"recognizer": str(new)})


def test_cli_backbone_path_flag(tmp_path, capsys):
    from clips import write_clip

    pipe, folder, source = _old_style_checkpoint(tmp_path)
    new = tmp_path / "data" / "vit"
    shutil.move(str(source), str(new))
    clip = write_clip(tmp_path / "c.mp4", 12, size=(64, 48))
    capsys.readouterr()  # transformers' progress bars while the checkpoint was made
    assert predict.main([str(clip), "--checkpoint", str(folder), "--json", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: sampler backbone: hf:") and "\n" not in err
    assert predict.main([str(clip), "--checkpoint", str(folder), "--json", "--device", "cpu",
                         "--backbone-path", f"{source}={new}"]) == 0
    assert len(json.loads(capsys.readouterr().out)["selected"]) == 2
    with pytest.raises(SystemExit) as exit_:
        predict.build_parser().parse_args([str(clip), "--backbone-path", "no-equals-sign"])
    assert exit_.value.code == 2
    args = evaluate.build_parser().parse_args(["--data", "d", "--backbone-path", "sampler=/x",
                                               "--backbone-path", "/a/b=c/d"])
    assert dict(args.backbone_paths) == {"sampler": "/x", "/a/b": "c/d"}


def test_checkpoint_files_are_written_atomically(tmp_path, monkeypatch):
    """A failure while the backbone files are written leaves the previous checkpoint in place."""
    source = _tiny_vit(tmp_path / "vit")
    pipe = Pipeline.build(_config(sampler=f"hf:{source}", s_pre=True, s_size=32), device="cpu")
    folder = pipe.save_pretrained(tmp_path / "ckpt")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))

    def fail(self, folder):
        raise OSError("disk full")

    monkeypatch.setattr(type(pipe.sampler.backbone), "save_files", fail)
    with pytest.raises(OSError, match="disk full"):
        pipe.save_pretrained(folder)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []
