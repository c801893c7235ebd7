"""The CUDA-only branches, run on the CPU under a fake GPU (``tests/fake_cuda.py``): the pipeline,
``analyze``, ``eval``'s feature cache, training and fine-tuning, ``nsnet bench gpu --dry-run``;
plus what makes them GPU- and cluster-ready (precision policy, float32 heads, pipelines by name
for ZeroGPU, the collectives' timeout, features moved a batch at a time, chunked pseudo labels,
prefetched previews).

Expectations come from another path: CPU float32 runs of the same model, hand-made numbers, or a
naive recomputation in the test.
"""
from __future__ import annotations

import json
import math
import pickle
from datetime import timedelta
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fake_cuda import fake_cuda
from nsnet.config import ConfigError
from nsnet.inference import Pipeline
from nsnet.inference.pipeline import amp_dtype
from nsnet.video import read_clip

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "demo-model"
EXAMPLES_DIR = ROOT / "assets" / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.mp4"))
CLASSES = (EXAMPLES_DIR / "classes.txt").read_text().split()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """EfficientNet-Lite0 (packaged weights) at 48 / 64 px, seeded random heads, the examples' classes."""
    from nsnet.benchmarks.gpu import tiny_config

    torch.manual_seed(0)
    pipe = Pipeline.build(tiny_config(CLASSES, 8, 3), device="cpu")
    return pipe.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    from nsnet.data.synthetic import main as make_synthetic

    out = tmp_path_factory.mktemp("synthetic") / "data"
    assert make_synthetic([str(out), "--videos", "6", "--seed", "5", "--classes", "3", "--size", "96x72"]) == 0
    return out


# --------------------------------------------------------------------------- the pipeline
def test_auto_on_a_gpu_is_fp16_and_selects_what_cpu_fp32_selects_on_the_bundled_examples():
    cpu = Pipeline.from_pretrained(DEMO, device="cpu", precision="fp32")
    clips = [read_clip(p, num_frames=cpu.config.num_frames, size=cpu.config.recognizer.input_size) for p in EXAMPLES]
    ref = [cpu(c.frames) for c in clips]
    with fake_cuda() as gpu:
        pipe = Pipeline.from_pretrained(DEMO, device="cuda")
        assert pipe.device.type == "cuda" and pipe.precision == "auto" and pipe.amp_dtype is torch.float16
        got = [pipe(c.frames) for c in clips]
    assert len(clips) == 4 and gpu.autocast["float16"] >= 2 * len(clips) and gpu.syncs >= 2 * len(clips)
    conv = next(p for p in pipe.recognizer.backbone.parameters() if p.dim() == 4 and p.shape[-1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last)  # the CUDA branch's memory format
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(b.selected, a.selected)
        assert b.labels[0]["label"] == a.labels[0]["label"] and b.device == "cuda"
        np.testing.assert_allclose(b.fused, a.fused, atol=0.05)
    assert any(not np.array_equal(a.fused, b.fused) for a, b in zip(ref, got))  # fp16 really ran


def test_precision_is_fixed_when_built_and_bf16_must_be_native(tiny_pipeline_config):
    cuda = torch.device("cuda")
    with fake_cuda():
        assert amp_dtype(cuda, "auto") is torch.float16 and amp_dtype(cuda, "bf16") is torch.bfloat16
        pipe = Pipeline.build(tiny_pipeline_config, device="cuda", precision="fp16")
        with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
            pipe.to("cpu")  # a CPU cannot run fp16: refused, and nothing moves
        assert pipe.device.type == "cuda" and pipe.amp_dtype is torch.float16
        assert pipe.with_precision("bf16").amp_dtype is torch.bfloat16 and pipe.amp_dtype is torch.float16
        auto = pipe.with_precision("auto")
        assert auto.amp_dtype is torch.float16 and auto.to("cpu").amp_dtype is None  # auto: per device
        auto.to("cuda")
    with fake_cuda(bf16=False):  # a T4 / V100: bf16 only emulated, which torch's default question counts
        assert torch.cuda.is_bf16_supported() and not torch.cuda.is_bf16_supported(including_emulation=False)
        with pytest.raises(ConfigError, match="no native bf16"):
            Pipeline.build(tiny_pipeline_config, device="cuda", precision="bf16")
        assert amp_dtype(cuda, "auto") is torch.float16


def test_heads_and_softmaxes_run_in_float32_while_backbones_run_in_fp16(tiny_pipeline_config):
    seen: dict[str, torch.dtype] = {}

    def record(name):
        def hook(module, inputs, output) -> None:
            seen.setdefault(name, output.dtype)
        return hook

    with fake_cuda():
        torch.manual_seed(0)
        pipe = Pipeline.build(tiny_pipeline_config, device="cuda")
        conv = next(m for m in pipe.sampler.backbone.modules() if isinstance(m, nn.Conv2d))
        conv.register_forward_hook(record("backbone conv"))
        pipe.sampler.frame_head.register_forward_hook(record("frame head"))
        pipe.sampler.attn_score.register_forward_hook(record("attention"))
        pipe.recognizer.head.register_forward_hook(record("recognizer head"))
        frames = np.random.default_rng(0).integers(0, 256, (8, 40, 52, 3), dtype=np.uint8)
        result = pipe(frames)
    assert seen == {"backbone conv": torch.float16, "frame head": torch.float32, "attention": torch.float32,
                    "recognizer head": torch.float32}
    assert result.probs.dtype == np.float32 and abs(float(result.probs.sum()) - 1) < 1e-5


def test_the_clip_zero_shot_head_is_float32_under_autocast():
    from nsnet.models.backbones.hf import CLIPZeroShot

    head = CLIPZeroShot.__new__(CLIPZeroShot)  # only what forward_head reads: the scale and the class embeddings
    nn.Module.__init__(head)
    head.model = nn.Module()
    head.model.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))
    gen = torch.Generator().manual_seed(0)
    text = nn.functional.normalize(torch.randn(5, 16, generator=gen), dim=-1)
    feats = nn.functional.normalize(torch.randn(3, 16, generator=gen), dim=-1)
    head.register_buffer("text_embeds", text)
    expected = 100.0 * feats.double() @ text.double().t()  # (3, 5), by hand in float64
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head.forward_head(feats)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits.double(), expected, rtol=0, atol=1e-4)  # bf16 was off by up to 0.25


# --------------------------------------------------------------------------- analyze and eval
def test_analyze_and_evals_feature_cache_run_their_cuda_branch(tiny_checkpoint, tmp_path):
    from nsnet.cli import analyze as analyze_cli, evaluate as evaluate_cli
    from nsnet.evaluation.jsonl import iter_rows

    common = ["--checkpoint", str(tiny_checkpoint), "--device", "cuda", "--lam", "0.3", "--no-progress"]
    with fake_cuda() as gpu:
        assert analyze_cli.main([str(EXAMPLES_DIR), "--out", str(tmp_path / "a.jsonl"), "--workers", "1",
                                 "--batch-size", "3", *common]) == 0
        after_analyze = gpu.autocast["float16"]
        assert evaluate_cli.main(["--data", str(EXAMPLES_DIR), "--subset", "all", "--cache-dir", str(tmp_path / "c"),
                                  "--per-video", str(tmp_path / "e.jsonl"), "--json", str(tmp_path / "e.json"),
                                  *common]) == 0
    assert after_analyze > 0 and gpu.autocast["float16"] > after_analyze  # both ran their backbones in fp16
    assert json.loads((tmp_path / "e.json").read_text())["precision"] == "fp16"
    rows_a = {r["id"]: r for r in iter_rows(tmp_path / "a.jsonl")}
    rows_e = {r["id"]: r for r in iter_rows(tmp_path / "e.jsonl")}
    assert sorted(rows_a) == sorted(rows_e) == sorted(p.stem for p in EXAMPLES)
    cpu = Pipeline.from_pretrained(tiny_checkpoint, device="cpu", precision="fp32")  # another path: no cache, fp32
    for vid, row in rows_a.items():
        assert row["error"] is None and rows_e[vid]["selected"] == row["selected"]
        # two fp16 paths (eval reads its features back from an fp16 cache; batches differ): a few fp16 steps
        # (2**-11 relative) apart, and the thread count moves them; the fp32 check below bounds both
        np.testing.assert_allclose(rows_e[vid]["fused"], row["fused"], atol=4e-3)
        clip = read_clip(EXAMPLES_DIR / f"{vid}.mp4", num_frames=8, size=cpu.config.recognizer.input_size)
        np.testing.assert_allclose(row["fused"], cpu(clip.frames, 3, 0.3).fused, atol=0.05)


# --------------------------------------------------------------------------- training
def _train_cfg(data, tmp_path, **changes):
    from nsnet.training import TrainConfig

    base = dict(data=str(data), out=str(tmp_path / "model"), cache_dir=str(tmp_path / "cache"), subset="all",
                sampler_backbone="efficientnet_lite0", recognizer_backbone="efficientnet_lite0",
                backbones_pretrained=False, sampler_size=48, recognizer_size=48, hidden_dim=16, num_frames=4, k=2,
                batch_size=2, recognizer_epochs=1, sampler_epochs=1, val_subset="none", progress=False,
                device="cuda", log_every=0)
    return TrainConfig.from_dict({**base, **changes})


def test_finetuning_runs_fp16_with_loss_scaling_and_previews_read_ahead(train_data, tmp_path, monkeypatch):
    from nsnet.training import modules, trainer

    asked = []
    real_prefetch = modules.Previews.prefetch
    monkeypatch.setattr(modules.Previews, "prefetch", lambda self, batches: (asked.append(
        (self.workers, len(batches))), real_prefetch(self, batches))[1])
    cfg = _train_cfg(train_data, tmp_path, finetune=True, state_min_interval_s=0.0, preview_workers=1)
    with fake_cuda() as gpu:
        result = trainer.train(cfg)
    assert gpu.autocast["float16"] > 0 and gpu.pins > 0  # fp16 autocast; batches through pinned memory
    assert asked and all(w == 1 and n > 0 for w, n in asked)  # every pass over previews was read ahead
    state = torch.load(cfg.state_path, weights_only=True)
    assert state["scaler"]["scale"] > 0  # fp16 fine-tuning scales its loss
    assert all(math.isfinite(v) for losses in result.history.values() for v in losses)


def test_cached_features_follow_the_training_precision_and_move_a_batch_at_a_time(train_data, tmp_path,
                                                                                  monkeypatch):
    from nsnet.training import trainer

    monkeypatch.setattr(trainer, "PSEUDO_LABEL_FRAMES", 8)  # pseudo-labelling too: 2 videos of T=4 a pass
    with fake_cuda() as gpu:
        trainer.train(_train_cfg(train_data, tmp_path / "bf16", precision="bf16"))
    assert gpu.autocast["bfloat16"] > 0 and not gpu.autocast["float16"]  # features extracted in bf16
    features = [s for s in gpu.moved_shapes if len(s) == 3 and s[1] == 4]  # (videos, T, D) inputs moved
    assert features and max(s[0] for s in features) <= 2  # batch by batch (2 videos), never all 6 at once
    with fake_cuda() as gpu:
        trainer.train(_train_cfg(train_data, tmp_path / "fp32", amp=False))
    assert not gpu.autocast  # --no-amp: the features too are float32


def test_pseudo_labels_in_chunks_are_the_rule_applied_to_each_video(tiny_pipeline_config, monkeypatch):
    from nsnet.training import TrainConfig, trainer

    torch.manual_seed(0)
    pipe = Pipeline.build(tiny_pipeline_config, device="cpu")
    feats = torch.randn(7, 8, pipe.recognizer.backbone.num_features)  # (N, T, D)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    cfg = TrainConfig(pseudo_rule="topk", rho=0.25)
    monkeypatch.setattr(trainer, "PSEUDO_LABEL_FRAMES", 8 * 2)  # two videos a pass: 4 passes
    got = trainer.teacher_pseudo_labels(pipe, feats, labels, cfg)
    expected = torch.zeros(7, 8)
    with torch.no_grad():
        for i in range(7):  # naive: each video alone, the top ceil(0.25 * 8) = 2 confidences
            conf = torch.softmax(pipe.recognizer.head(feats[i]), -1)[:, labels[i]]
            expected[i, conf.topk(2).indices] = 1
    assert torch.equal(got, expected)


def test_previews_are_handed_out_in_the_prefetched_order_and_out_of_order_reads_still_work():
    from nsnet.training.modules import Previews

    class Store:
        def load(self, i):
            return {"frames": torch.full((2, 3, 3, 3), i, dtype=torch.uint8)}

    previews = Previews(Store(), [10, 11, 12, 13, 14], workers=2)
    batches = [torch.tensor([4, 0]), torch.tensor([2]), torch.tensor([1, 3])]
    previews.prefetch(batches)
    assert previews[batches[0]][:, 0, 0, 0, 0].tolist() == [14, 10]
    assert previews[batches[1]][:, 0, 0, 0, 0].tolist() == [12]
    assert previews[torch.tensor([3])][:, 0, 0, 0, 0].tolist() == [13]  # not the next one: read here
    assert previews[batches[2]][:, 0, 0, 0, 0].tolist() == [11, 13]


# --------------------------------------------------------------------------- cluster and ZeroGPU plumbing
def test_collectives_wait_long_for_train_and_analyze(monkeypatch):
    from nsnet import distributed as dist_utils

    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv(dist_utils.TIMEOUT_ENV, raising=False)
    monkeypatch.setattr(dist_utils.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist_utils.dist, "init_process_group", lambda **kw: seen.update(kw))
    monkeypatch.setattr(dist_utils.dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist_utils.dist, "get_world_size", lambda: 2)
    dist_utils.init(torch.device("cpu"))  # what train's run() calls
    assert seen == {"backend": "gloo", "timeout": timedelta(days=7)}  # NCCL's default would be 10 minutes
    monkeypatch.setenv(dist_utils.TIMEOUT_ENV, "3600")
    dist_utils.init(torch.device("cpu"))
    assert seen["timeout"] == timedelta(hours=1)
    for bad in ("soon", "5", "nan", "1e12"):
        monkeypatch.setenv(dist_utils.TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=dist_utils.TIMEOUT_ENV):
            dist_utils.init(torch.device("cpu"))


def test_pipelines_are_found_by_name_and_calls_carry_plain_data(tiny_checkpoint):
    from nsnet.inference.store import PipelineStore, decode, run_frames

    clip, decode_ms = decode(EXAMPLES[0], 8, 64)
    with fake_cuda():
        store = PipelineStore(device="cuda")
        args = ("tiny", clip.frames, 3, 0.3)
        ForkingPickler.dumps(args)  # what spaces sends its GPU worker: plain data pickles
        with pytest.raises(KeyError, match="no pipeline called 'tiny'"):
            run_frames(*args, store=store)
        result = run_frames(*args, source=str(tiny_checkpoint), store=store, timestamps_s=clip.timestamps_s,
                            decode_ms=decode_ms)  # loaded in this process, by name
        assert store.get("tiny") is store.get("tiny", str(tiny_checkpoint))  # kept: loaded once
        assert result.device == "cuda" and result.frame_probs is not None  # dense by default
    back = pickle.loads(ForkingPickler.dumps(result))  # and the answer travels back
    np.testing.assert_array_equal(back.selected, result.selected)
    cpu = Pipeline.from_pretrained(tiny_checkpoint, device="cpu")
    pickle.loads(ForkingPickler.dumps(cpu))  # a CPU pipeline holds no lock: it pickles too
    np.testing.assert_allclose(cpu(clip.frames, 3, 0.3).fused, result.fused, atol=0.05)


# --------------------------------------------------------------------------- nsnet bench gpu
def test_bench_gpu_dry_run_takes_every_cuda_branch_end_to_end(tmp_path, capsys):
    from nsnet.benchmarks import gpu as bench_gpu

    out = tmp_path / "gpu.json"
    with fake_cuda() as gpu:
        assert bench_gpu.main(["--dry-run", "--workdir", str(tmp_path / "work"), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["device"] == "cuda" and all("error" not in r[s] for s in bench_gpu.SECTIONS)
    assert set(r["precision"]["by_precision"]) == {"auto", "fp32", "fp16", "bf16", "fp32-ieee"}
    assert r["precision"]["by_precision"]["auto"]["runs"] == "fp16"
    assert r["precision"]["by_precision"]["fp32"]["max_fused_diff"] < 1e-4  # fp32 on the "GPU" is CPU fp32
    assert r["analyze_eval"]["same_selection"] == r["analyze_eval"]["compared"] == r["videos"]
    assert r["folding"]["sampler"]["used"] and r["flops"]["agree"]
    assert r["flops"]["vit"]["cpu"] == pytest.approx(1384704 / 1e9)  # by hand: see test_flops.py
    assert r["throughput"]["compute_videos_per_s"] > 0 and r["throughput"]["decoded_videos"] == 2
    assert r["finetune"]["steps"] == 2 and r["resume"]["interrupted"] and r["resume"]["equal"]
    assert gpu.autocast["float16"] and gpu.autocast["bfloat16"]
    assert "precision vs cpu fp32" in capsys.readouterr().out


def test_bench_gpu_without_a_gpu_says_so_in_one_line(tmp_path, caplog):
    from nsnet.benchmarks import gpu as bench_gpu

    assert bench_gpu.main(["--workdir", str(tmp_path), "--device", "cpu"]) == 2
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "no CUDA GPU here: nsnet bench gpu measures one (--dry-run runs every section at tiny sizes on this device)"]
    assert not (tmp_path / "data-24").exists()  # refused before anything was made
