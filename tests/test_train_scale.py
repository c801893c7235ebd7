"""Training that is ready for a cluster: honest resume, throttled state, logs, validation,
fine-tuning at scale (accumulation, frame chunks, augmentation, autocast), on tiny CPU runs."""
from __future__ import annotations

import json
import logging
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nsnet.cli import train as train_cli
from nsnet.config import ConfigError
from nsnet.data.features import default_cache_dir, load_records
from nsnet.data.synthetic import main as make_synthetic
from nsnet.inference import Pipeline
from nsnet.training import TrainConfig, trainer
from nsnet.training import modules, state as state_mod
from nsnet.training.state import check_resume

ROOT = Path(__file__).resolve().parent.parent

TINY = dict(sampler_backbone="efficientnet_lite0", recognizer_backbone="efficientnet_lite0",
            backbones_pretrained=False, sampler_size=64, recognizer_size=64, hidden_dim=32,
            num_frames=6, k=2, batch_size=2, recognizer_epochs=3, sampler_epochs=3, lr=5e-3, progress=False,
            pseudo_rule="relative", val_subset="none")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    assert make_synthetic([str(out), "--videos", "10", "--seed", "3", "--classes", "3", "--size", "96x72"]) == 0
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One feature cache for the module: same backbones (seeded), so later runs decode nothing."""
    return tmp_path_factory.mktemp("cache")


def _cfg(data, tmp_path, cache, **changes) -> TrainConfig:
    return TrainConfig.from_dict(dict(TINY, data=str(data), out=str(tmp_path / "ckpt"), cache_dir=str(cache),
                                      device="cpu", **changes))


def _messages(caplog, level=logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


# --------------------------------------------------------------------------- 4. resume
def test_resume_refuses_another_model_or_data_with_a_one_line_diff(tmp_path):
    saved = TrainConfig.from_dict({"data": "a.json", "sampler_epochs": 3000, "out": str(tmp_path / "m")})
    state = {"stage": "sampler", "epoch": 157, "step": 0, "config": json.dumps(saved.to_dict())}
    other = saved.replace(data="b.json", **{"sampler.hidden_dim": 128}, resume=True)
    with pytest.raises(ConfigError) as err:
        check_resume(dict(state), other, 1)
    text = str(err.value)
    assert "\n" not in text and text.startswith("cannot resume")
    assert "pipeline.sampler.hidden_dim 256 -> 128" in text and "data a.json -> b.json" in text
    # the sampler stage's objective is fixed once it started; before it, changing it is fine
    with pytest.raises(ConfigError, match="beta 1.0 -> 0.5"):
        check_resume(dict(state), saved.replace(beta=0.5), 1)
    check_resume(dict(state, stage="recognizer", epoch=3), saved.replace(beta=0.5), 1)
    # fewer epochs than the stage has reached: refused, not "0 epochs and a checkpoint from mid-schedule"
    with pytest.raises(ConfigError, match="sampler_epochs 150 is below the 157 epochs"):
        check_resume(dict(state), saved.replace(sampler_epochs=150), 1)
    with pytest.raises(ConfigError, match="below the 158 epochs"):  # a mid-epoch state has started epoch 158
        check_resume(dict(state, step=3), saved.replace(sampler_epochs=157), 1)


def test_resume_says_what_it_does_with_a_changed_schedule(tmp_path, caplog):
    saved = TrainConfig.from_dict({"data": "a.json", "sampler_epochs": 3000, "out": str(tmp_path / "m")})
    state = {"stage": "sampler", "epoch": 157, "step": 5, "world_size": 2, "config": json.dumps(saved.to_dict())}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nsnet.training.state"):
        check_resume(state, saved.replace(sampler_epochs=200, lr=1e-3, batch_size=16, device="cpu"), 2)
    lines = _messages(caplog)
    assert len(lines) == 1, lines
    line = lines[0]
    assert "after epoch 157 of 200" in line and "sampler_epochs 3000 -> 200" in line and "lr 0.002 -> 0.001" in line
    assert "as if the run had started with them" in line
    assert f"lr now {1e-3 * (1 + math.cos(math.pi * 157 / 200)) / 2:.3g}" in line
    assert "epoch 158 restarts from its first batch" in line and state["step"] == 0  # batch size changed
    assert "device" not in line  # where and how it runs is not a schedule change


def test_resume_extends_a_stage_on_the_new_schedule_and_numbers_epochs_from_one(tiny_data, tmp_path, cache, caplog):
    cfg = _cfg(tiny_data, tmp_path, cache, recognizer_epochs=4, sampler_epochs=0, log_every=1)
    first = trainer.train(cfg)
    state = torch.load(cfg.state_path, weights_only=True)
    assert state["stage"] == "recognizer" and state["epoch"] == 4 and state["step"] == 0  # 4 epochs done, as logged
    assert len(first.history["recognizer"]) == 4

    with pytest.raises(ConfigError, match="recognizer_epochs 3 is below the 4 epochs"):
        trainer.train(cfg.replace(resume=True, recognizer_epochs=3))
    with pytest.raises(ConfigError, match="pipeline.num_frames 6 -> 8"):
        trainer.train(cfg.replace(resume=True, num_frames=8))

    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = trainer.train(cfg.replace(resume=True, recognizer_epochs=6, lr=1e-2))
    lines = _messages(caplog)
    assert again.history["recognizer"][:4] == first.history["recognizer"] and len(again.history["recognizer"]) == 6
    resumed = [m for m in lines if m.startswith("resuming the recognizer stage after epoch 4 of 6")]
    assert len(resumed) == 1 and "recognizer_epochs 4 -> 6" in resumed[0] and "lr 0.005 -> 0.01" in resumed[0]
    steps = [m for m in lines if m.startswith("recognizer epoch 5/6 step")]
    assert steps and all(f"lr {1e-2 * (1 + math.cos(math.pi * 4 / 6)) / 2:.3g}," in m for m in steps), steps
    assert not any(m.startswith("recognizer epoch 4/6 step") for m in lines)  # nothing done twice


def _interrupt_after(monkeypatch, calls: int) -> None:
    """Make the recognizer's loss raise KeyboardInterrupt on forward pass number ``calls + 1``."""
    real, count = nn.functional.cross_entropy, {"n": 0}

    def loss(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(nn.functional, "cross_entropy", loss)


def test_a_mid_epoch_state_resumes_to_the_same_weights(tiny_data, tmp_path, cache, monkeypatch):
    """--state-every-min: the state is written inside an epoch, and resuming from it replays
    nothing twice: the run ends exactly where an uninterrupted one does."""
    cfg = _cfg(tiny_data, tmp_path / "a", cache, state_every_min=0.0)  # 7 videos, 2 a step: 4 steps an epoch
    straight = trainer.train(cfg).pipeline.trained_state_dict()

    cut = _cfg(tiny_data, tmp_path / "b", cache, state_every_min=0.0)
    _interrupt_after(monkeypatch, 6)  # epoch 2, after its second step
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cut)
    monkeypatch.undo()
    saved = torch.load(cut.state_path, weights_only=True)
    assert (saved["stage"], saved["epoch"], saved["step"]) == ("recognizer", 1, 2)
    resumed = trainer.train(cut.replace(resume=True)).pipeline.trained_state_dict()
    assert resumed.keys() == straight.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)


def test_the_state_is_written_once_per_stage_when_epochs_are_fast(tiny_data, tmp_path, cache, monkeypatch):
    writes = []
    real = state_mod.save_state
    monkeypatch.setattr(state_mod, "save_state", lambda path, state: (writes.append(
        (state["stage"], state["epoch"], state["step"])), real(path, state)))
    cfg = _cfg(tiny_data, tmp_path, cache, recognizer_epochs=5, sampler_epochs=5)
    trainer.train(cfg)
    assert writes == [("recognizer", 5, 0), ("sampler", 5, 0)]  # was: after each of the 10 epochs
    assert [p.name for p in cfg.state_path.parent.iterdir() if p.name.endswith(".tmp")] == []
    writes.clear()
    trainer.train(cfg.replace(state_min_interval_s=0))  # no throttle: every epoch end, no double at a stage end
    assert writes == [("recognizer", e, 0) for e in range(1, 6)] + [("sampler", e, 0) for e in range(1, 6)]


# --------------------------------------------------------------------------- 8. fine-tuning at scale
def test_gradient_accumulation_matches_one_bigger_batch(tiny_data, tmp_path, cache, monkeypatch):
    """2 passes of 2 videos per optimiser step give the gradients of 1 pass of 4, and as many steps."""
    steps: dict[str, list[list[torch.Tensor]]] = {}
    real = torch.optim.AdamW.step

    def record(self, *args, **kwargs):
        steps.setdefault(run, []).append([p.grad.clone() for g in self.param_groups for p in g["params"]])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", record)
    common = {"recognizer.dropout": 0.0, "sampler.dropout": 0.0, "recognizer_epochs": 2, "sampler_epochs": 0,
              "save_state": False, "subset": "all", "max_videos": 8}  # 8 videos: batches of 4 split evenly in 2
    run = "big"
    trainer.train(_cfg(tiny_data, tmp_path / "a", cache, batch_size=4, **common))
    run = "accum"
    trainer.train(_cfg(tiny_data, tmp_path / "b", cache, batch_size=2, grad_accum=2, **common))
    assert len(steps["big"]) == len(steps["accum"]) == 4  # 2 steps an epoch
    first_big, first_accum = steps["big"][0], steps["accum"][0]
    assert any(float(g.abs().max()) > 1e-4 for g in first_big)
    for a, b in zip(first_big, first_accum):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-7)


def test_frame_chunks_give_the_same_gradients_and_keep_batch_norm_honest():
    torch.manual_seed(0)
    backbone = Pipeline.build(TrainConfig.from_dict(TINY).pipeline_config(["a", "b"]), device="cpu").sampler.backbone
    backbone.requires_grad_(True)
    frames = torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8)

    def grads(chunk: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        backbone.zero_grad()
        out = modules.embed(backbone, frames, 64, chunk)
        (out ** 2).mean().backward()
        return out.detach(), [p.grad.clone() for p in backbone.parameters() if p.grad is not None]

    backbone.eval()  # BatchNorm on running statistics: chunks must not change anything
    (whole, g_whole), (chunked, g_chunked) = grads(0), grads(4)
    assert chunked.shape == (2, 3, whole.shape[-1])
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_whole, g_chunked):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-6)

    backbone.train()  # each chunk updates the running statistics once, although it is computed twice
    bn = next(m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    reference = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in reference]
    torch.manual_seed(1)
    with torch.no_grad():  # plain forward passes, one per chunk: what the statistics must end up as
        for start in range(0, 6, 4):
            modules.embed(backbone, frames.reshape(6, 64, 64, 3)[start:start + 4], 64)
    expected = [(m.running_mean.clone(), m.num_batches_tracked.clone()) for m in reference]
    for m, (mean, var, count) in zip(reference, saved):
        m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
    assert torch.equal(bn.running_mean, before)
    torch.manual_seed(1)
    grads(4)
    for m, (mean, count) in zip(reference, expected):
        torch.testing.assert_close(m.running_mean, mean, rtol=1e-4, atol=1e-6)
        assert int(m.num_batches_tracked) == int(count)


def test_augment_crops_and_flips_each_video_consistently_over_time():
    base = torch.arange(32, dtype=torch.uint8).repeat(32, 1)              # (H, W): brighter to the right
    frames = base[None, None, :, :, None].expand(4, 3, 32, 32, 3).contiguous()
    out = modules.augment_clips(frames, generator=torch.Generator().manual_seed(0))
    assert out.shape == frames.shape and out.dtype == torch.uint8
    for clip in out:
        assert all(torch.equal(clip[0], clip[t]) for t in range(1, 3))   # the same crop/flip for every frame
    flipped = [bool(clip[0, 16, 0, 0] > clip[0, 16, -1, 0]) for clip in out]
    again = modules.augment_clips(frames, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                                        # seeded
    many = modules.augment_clips(frames.repeat(8, 1, 1, 1, 1), generator=torch.Generator().manual_seed(1))
    flips = [bool(c[0, 16, 0, 0] > c[0, 16, -1, 0]) for c in many]
    assert 0 < sum(flips) < len(flips) and len(flipped) == 4             # some flipped, some not
    assert not all(torch.equal(many[0], c) for c in many[1:])             # crops differ
    with pytest.raises(ConfigError, match="augment needs finetune"):
        TrainConfig.from_dict({"augment": True})


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_autocast_follows_the_training_pipelines_precision():
    assert not isinstance(modules.autocast(torch.device("cpu"), None), torch.autocast)  # float32: no autocast
    ctx = modules.autocast(torch.device("cuda"), torch.float16)  # what precision auto gives on CUDA
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.float16 and ctx.device == "cuda"
    assert TrainConfig(amp=False).compute_precision == "fp32" and TrainConfig(precision="bf16").compute_precision == "bf16"
    with pytest.raises(ConfigError, match="contradicts"):
        TrainConfig(amp=False, precision="fp16")


def test_finetune_with_chunks_accumulation_and_augmentation(tiny_data, tmp_path, cache, monkeypatch, caplog):
    seen = []
    real = modules._features

    def spy(backbone, frames, size):
        seen.append(frames.shape[0])
        return real(backbone, frames, size)

    monkeypatch.setattr(modules, "_features", spy)
    cfg = _cfg(tiny_data, tmp_path, cache, finetune=True, frame_chunk=4, grad_accum=2, augment=True,
               recognizer_epochs=1, sampler_epochs=1, max_videos=4, val_subset="validation")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        result = trainer.train(cfg)
    assert seen and max(seen) <= 4, seen                   # batch 2 x T 6 = 12 frames never at once
    assert len(result.history["recognizer"]) == len(result.history["sampler"]) == 1
    assert result.validation["best_epoch"] == 1 and cfg.best_path.is_dir()
    assert Pipeline.from_pretrained(cfg.best_path, device="cpu").config.meta["validation"]["best_epoch"] == 1
    assert any("validation previews" in m for m in _messages(caplog))


# --------------------------------------------------------------------------- 7. logs, 9. CLI
def test_no_video_found_fails_before_any_model_is_built(tiny_data, tmp_path, monkeypatch, caplog):
    empty = tmp_path / "videos"
    empty.mkdir()

    def no_build(*a, **k):
        raise AssertionError("a model was built")

    monkeypatch.setattr(Pipeline, "build", no_build)
    caplog.clear()
    code = train_cli.main(["--data", str(tiny_data), "--video-root", str(empty), "--out", str(tmp_path / "m"),
                           "--no-progress", "--device", "cpu"])
    assert code == 2
    errors = [m for m in _messages(caplog, logging.ERROR)]
    assert len(errors) == 1 and "no video found" in errors[0] and "--video-root" in errors[0], errors


def test_a_wrong_subset_lists_the_valid_ones(tiny_data):
    with pytest.raises(FileNotFoundError) as err:
        load_records(tiny_data, "valdation")
    assert "its subsets: testing (1), training (7), validation (2), or 'all'" in str(err.value)


def test_the_default_cache_is_a_user_folder_shared_by_train_eval_and_ablate(tmp_path, monkeypatch):
    from nsnet.cli import ablate, evaluate

    monkeypatch.delenv("NSNET_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "nsnet"
    monkeypatch.setenv("NSNET_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    cfg = TrainConfig.from_dict({"data": str(tmp_path / "data" / "annotations.json")})
    assert cfg.cache_path == tmp_path / "mine"
    for module in (evaluate, ablate):  # no command falls back to a folder beside the annotations
        assert ".nsnet-cache" not in Path(module.__file__).read_text()


def test_both_pretrained_switches_exist_and_are_independent():
    cfg = train_cli.config_from_args(["--data", "d", "--no-recognizer-backbone-pretrained"])
    assert cfg.pipeline.sampler.backbone_pretrained and not cfg.pipeline.recognizer.backbone_pretrained
    cfg = train_cli.config_from_args(["--data", "d", "--no-sampler-backbone-pretrained"])
    assert not cfg.pipeline.sampler.backbone_pretrained and cfg.pipeline.recognizer.backbone_pretrained


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_logs_once_with_progress_lines_validation_and_skipped_videos(tiny_data, tmp_path, cache):
    """Two gloo processes: rank 0 narrates (step lines with lr, samples/s and ETA, a validation
    metric per epoch, the best checkpoint), rank 1 only warns; no tqdm redraws in a log; an
    unreadable video is listed in one file and counted in one line."""
    data = tmp_path / "data"
    data.mkdir()
    ann = json.loads((tiny_data / "annotations.json").read_text())
    for path in tiny_data.glob("**/*.mp4"):
        (data / path.name).symlink_to(path)
    first = next(v for v in ann["database"].values() if v["subset"] == "training")
    (data / "cut.mp4").write_bytes(next(tiny_data.glob("**/*.mp4")).read_bytes()[:2000])
    ann["database"]["cut"] = dict(first)
    ann["database"]["lost"] = dict(first)                                # no file: a training video
    ann["database"]["gone"] = dict(first, subset="validation")          # no file: a validation video
    (data / "annotations.json").write_text(json.dumps(ann))
    (data / "classes.txt").write_text((tiny_data / "classes.txt").read_text())
    flags = [(f"--{k.replace('_', '-')}" if v else f"--no-{k.replace('_', '-')}") if isinstance(v, bool)
             else f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k not in ("progress", "val_subset")]
    out = tmp_path / "ckpt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "nsnet", "train", "--data", str(data / "annotations.json"), "--out", str(out),
           "--cache-dir", str(cache), "--device", "cpu", "--log-every", "2", "--val-subset", "validation"] + flags
    env = dict(os.environ, OMP_NUM_THREADS="1", NSNET_LOG_LEVEL="INFO")
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    ours = [line for line in lines if " nsnet." in line]
    assert "\r" not in proc.stderr                                        # no tqdm redraws in a log
    assert not [line for line in ours if "[rank 1]" in line and (" INFO " in line or " DEBUG " in line)]
    assert not [line for line in ours if " INFO " in line and "[rank" in line]
    steps = [line for line in ours if "recognizer epoch" in line and " step " in line]
    assert steps and all("lr " in s and "samples/s" in s and "ETA" in s for s in steps), ours
    assert len([line for line in ours if "sampler epoch" in line and "val NSNet mAP@2" in line]) == 3
    assert len([line for line in ours if "recognizer epoch" in line and "val recognizer mAP" in line]) == 3
    skipped = [line for line in ours if "could not be read" in line]
    assert len(skipped) == 1 and "skipped 3 of 12" in skipped[0] and "ckpt.skipped.tsv" in skipped[0], ours
    rows = (tmp_path / "ckpt.skipped.tsv").read_text().splitlines()
    assert sorted(r.split("\t")[0] for r in rows[1:]) == ["cut", "gone", "lost"]
    assert not [line for line in ours if "cut.mp4" in line and "skipped 3 of" not in line]  # never per reader
    missing = [line for line in ours if "not found" in line]
    assert len(missing) == 1 and "[rank" not in missing[0] and "1 of 9 videos not found" in missing[0], ours
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["world_size"] == 2 and meta["validation"]["metric"] == "NSNet mAP@2"
    best = json.loads((tmp_path / "ckpt.best" / "config.json").read_text())["meta"]["validation"]
    assert best["best_epoch"] == meta["validation"]["best_epoch"] and best["subset"] == "validation"
