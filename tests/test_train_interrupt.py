"""Ctrl-C in ``nsnet train`` and ``nsnet analyze``: exit 130, no traceback, one line with the exact
command that resumes; the resumed run continues where the interrupted one stopped.

The commands run as subprocesses in their own session; SIGINT goes to the whole process group,
as a terminal's Ctrl-C does.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from nsnet.cli import analyze as analyze_cli
from nsnet.cli import train as train_cli
from nsnet.data.synthetic import main as make_synthetic
from nsnet.training import trainer

TRAIN_FLAGS = ["--device", "cpu", "--sampler-backbone", "efficientnet_lite0", "--recognizer-backbone",
               "efficientnet_lite0", "--no-backbones-pretrained", "--sampler-input-size", "64",
               "--recognizer-input-size", "64", "--sampler-hidden-dim", "32", "--num-frames", "6", "--k", "2",
               "--batch-size", "2", "--sampler-epochs", "2", "--val-subset", "none", "--pseudo-rule", "topk",
               "--log-every", "1", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    assert make_synthetic([str(out), "--videos", "10", "--seed", "3", "--classes", "3", "--size", "96x72"]) == 0
    return out


def _interrupt(cmd: list[str], cwd: Path, ready) -> tuple[int, list[str]]:
    """Run ``cmd``; once ``ready(stderr lines so far)`` holds, send SIGINT to its process group."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NSNET_LOG_LEVEL="INFO")
    proc = subprocess.Popen(cmd, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            start_new_session=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in proc.stderr), daemon=True)
    reader.start()
    sent, deadline = False, time.monotonic() + 480
    try:
        while proc.poll() is None and not sent and time.monotonic() < deadline:
            if ready(list(lines)):
                os.killpg(proc.pid, signal.SIGINT)
                sent = True
            time.sleep(0.05)
        code = proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert sent, lines[-20:]
    return code, lines


def _resume_line(lines: list[str], command: str) -> tuple[str, list[str]]:
    found = [line for line in lines if "resume with:" in line]
    assert len(found) == 1, lines[-20:]
    text = found[0]
    assert not [line for line in lines if "Traceback" in line or "KeyboardInterrupt" in line], lines[-30:]
    args = shlex.split(text.split("resume with: ", 1)[1])
    assert args[:2] == ["nsnet", command] and args[-1] == "--resume"
    return text, args[2:]


def test_ctrl_c_in_train_saves_the_state_says_how_to_resume_and_exits_130(tiny_data, tmp_path, caplog):
    argv = ["--data", str(tiny_data), "--out", str(tmp_path / "ckpt"), "--cache-dir", str(tmp_path / "cache"),
            "--recognizer-epochs", "100000"] + TRAIN_FLAGS
    # 7 videos, 2 a step: 4 steps an epoch; stop inside epoch 3, far from a state write (every 60 s)
    code, lines = _interrupt([sys.executable, "-m", "nsnet", "train", *argv], tmp_path,
                             lambda lines: any("recognizer epoch 3/100000 step 10/" in line for line in lines))
    assert code == 130, lines[-20:]
    text, args = _resume_line(lines, "train")
    state = torch.load(tmp_path / "ckpt.train_state.pt", weights_only=True)
    done, step = state["epoch"], state["step"]
    assert state["stage"] == "recognizer" and done >= 2 and 0 <= step < 4
    where = f"{done} recognizer epochs" + (f" and {step} step" if step else "")
    assert f"training state saved after {where}" in text and "ckpt.train_state.pt" in text, text
    # the printed command is this run's, plus --resume
    assert args == argv + ["--resume"]
    cfg = train_cli.config_from_args(args)
    assert cfg.resume and cfg.replace(resume=False) == train_cli.config_from_args(argv)
    # and it resumes there (with a shorter schedule, to finish quickly)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        result = trainer.train(cfg.replace(recognizer_epochs=done + 1, sampler_epochs=1))
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming the recognizer stage")]
    assert len(resumed) == 1 and f"after epoch {done}" in resumed[0], resumed
    assert len(result.history["recognizer"]) == done + 1


def test_ctrl_c_before_any_state_still_says_how_to_resume(tmp_path):
    from nsnet.training.interrupt import TrainingInterrupted

    argv = ["--data", "d", "--out", str(tmp_path / "m")]
    cfg = train_cli.config_from_args(argv)
    line = train_cli.interrupted_line(cfg, KeyboardInterrupt(), argv)
    assert "before a training state was written" in line and line.endswith(f"nsnet train {shlex.join(argv)} --resume")
    line = train_cli.interrupted_line(cfg, TrainingInterrupted(cfg.state_path, None), argv + ["--no-save-state"])
    assert "--no-save-state" in line and "\n" not in line


def test_ctrl_c_in_analyze_keeps_the_rows_says_how_to_resume_and_exits_130(tiny_data, tmp_path):
    out = tmp_path / "rows.jsonl"
    argv = [str(tiny_data / "annotations.json"), "--out", str(out), "--workers", "0", "--batch-size", "1",
            "--device", "cpu", "--no-progress"]
    def ready(lines: list[str]) -> bool:  # once the first rows are on disk
        return out.is_file() and len(out.read_text().splitlines()) >= 1

    code, proc_lines = _interrupt([sys.executable, "-m", "nsnet", "analyze", *argv], tmp_path, ready)
    assert code == 130, proc_lines[-20:]
    text, args = _resume_line(proc_lines, "analyze")
    assert args == argv + ["--resume"] and str(out) in text
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert 1 <= len(kept) < 10, kept
    assert analyze_cli.main(args) == 0  # the printed command finishes the run
    rows = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(rows) == len(set(rows)) == 10 and set(kept) <= set(rows)
