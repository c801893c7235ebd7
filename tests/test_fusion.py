"""Inference copies of backbones (BatchNorm folded, channels-last) and the batched feature function."""
import torch
from torch import nn

from nsnet.inference import Pipeline
from nsnet.inference.features import backbone_features
from nsnet.models.fusion import TOLERANCE, agreement, fold_batchnorm, folded


class Net(nn.Module):
    """A backbone-shaped module: foldable pairs inside Sequentials, plus traps that must stay as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.input_size = 24
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8))
        # registered conv then bn, but the bn runs *before* the conv: never fold by registration order alone
        self.pre_conv = nn.Conv2d(8, 8, 1)
        self.pre_bn = nn.BatchNorm2d(8)
        for bn in (self.stem[1], self.block[1], self.pre_bn):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)

    def forward_features(self, x):
        x = self.block(self.stem(x))
        return self.pre_conv(torch.relu(self.pre_bn(x))).mean((2, 3))


def test_folding_keeps_the_outputs_and_skips_what_is_not_a_sequential_pair():
    torch.manual_seed(0)
    net = Net().eval()
    copy = fold_batchnorm(net)
    assert isinstance(copy.stem[1], nn.Identity) and isinstance(copy.block[1], nn.Identity)
    assert isinstance(copy.pre_bn, nn.BatchNorm2d)  # not in a Sequential: left alone
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(copy.forward_features(x.contiguous(memory_format=torch.channels_last)),
                                   net.forward_features(x), rtol=1e-4, atol=1e-5)
    assert isinstance(net.stem[1], nn.BatchNorm2d)  # the original is untouched


def test_folded_copies_are_cached_per_weights_and_never_used_in_training():
    torch.manual_seed(0)
    net = Net().eval()
    first = folded(net)
    assert first is not net and folded(net) is first
    with torch.no_grad():
        net.stem[0].weight.mul_(2)  # an in-place change (an optimiser step) makes a new copy
    second = folded(net)
    assert second is not first
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(second.forward_features(x), net.forward_features(x), rtol=1e-4, atol=1e-5)
    net.train()
    assert folded(net) is net
    plain = nn.Sequential(nn.Conv2d(3, 4, 1)).eval()
    plain.forward_features = plain.forward
    assert folded(plain) is plain  # nothing to fold: the module itself, no copy


def test_batched_features_equal_one_video_at_a_time(tiny_pipeline_config):
    torch.manual_seed(0)
    pipe = Pipeline.build(tiny_pipeline_config, device="cpu")
    videos = [torch.randint(0, 256, (8, 40, 52, 3), dtype=torch.uint8),
              torch.randint(0, 256, (8, 52, 40, 3), dtype=torch.uint8)]  # different aspect ratios
    feats, ms = backbone_features(pipe, videos)
    assert set(ms) == {"sampler", "recognizer"} and all(v >= 0 for v in ms.values())
    for video, (s, r) in zip(videos, feats):
        s1, r1 = pipe.extract_features(video)
        assert torch.equal(s, s1) and torch.equal(r, r1)  # what eval caches, bit for bit
        assert s.shape[0] == r.shape[0] == 8
    # and the folded backbones compute what the plain ones do
    with torch.no_grad():
        x = pipe.prepare(videos[0], pipe.recognizer.backbone, tiny_pipeline_config.recognizer.input_size)
        torch.testing.assert_close(feats[0][1], pipe.recognizer.backbone.forward_features(x), rtol=1e-3, atol=1e-4)


def test_the_folding_check_runs_exact_float32_whatever_the_caller_set():
    """cuDNN's TF32 convolutions (on by default), oneDNN's reduced float32 modes or an open autocast
    region made the 1e-3 check fail and the slower unfolded copy run: the probe ignores them all."""
    torch.manual_seed(0)
    net = Net().eval()
    seen = []
    net.stem[0].register_forward_hook(lambda m, i, o: seen.append(
        (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision,
         torch.backends.mkldnn.conv.fp32_precision, torch.is_autocast_enabled("cpu"), o.dtype)))
    before = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 moves this net's outputs by ~7e-3 > 1e-3
            fast = folded(net)
        assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == ("tf32",
                                                                                                          "tf32")
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = before
    assert fast is not net  # folded, not rejected
    # the probe (the original, and the copy, which kept the hook) ran in exact float32
    assert seen and set(seen) == {("ieee", "ieee", "ieee", False, torch.float32)}


def test_the_folding_tolerance_follows_the_weights_dtype():
    torch.manual_seed(0)
    net = Net().eval().to(torch.bfloat16)  # bf16 weights: folding rounds differently, ~3e-3 of the scale
    diff, tolerance = agreement(net, fold_batchnorm(net))
    assert 1e-3 < diff < tolerance == TOLERANCE[torch.bfloat16]
    assert folded(net) is not net
    net32 = Net().eval()
    diff32, tolerance32 = agreement(net32, fold_batchnorm(net32))
    assert diff32 < 1e-5 and tolerance32 == 1e-3
