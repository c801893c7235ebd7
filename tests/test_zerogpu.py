"""The explorer on Hugging Face ZeroGPU: the app's GPU entry under the real ``spaces`` package.

``spaces.GPU`` runs a call in a worker process forked from the server and sends the call's
arguments and result through a multiprocessing queue (``ForkingPickler``). Here the real
``spaces`` (``SPACES_ZERO_GPU=true``) runs with only its network client (the GPU scheduler) and
its CUDA hand-over replaced by stand-ins, in a fresh interpreter: the worker is really forked and
every argument and result really crosses the queue. The results must equal a direct in-process
run; a checkpoint loaded after the worker forked is loaded inside the worker, by name (even when the
server held the store's lock at the fork).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("spaces")
pytest.importorskip("gradio")

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(r'''
    import json, os, sys
    os.environ["SPACES_ZERO_GPU"] = "true"
    os.environ["SPACES_ZERO_DEVICE_API_URL"] = "http://127.0.0.1:9"   # never called: the client is replaced
    import spaces  # before torch, as on a Space
    from types import SimpleNamespace
    from spaces.zero import client
    from spaces.zero import torch as zero_torch

    # Stand-ins for what needs the ZeroGPU infrastructure: the scheduler's HTTP API and the CUDA hand-over.
    client.schedule = lambda **kw: SimpleNamespace(allowToken="t", nvidiaIndex=0, nvidiaUUID="u", idle=True)
    client.release = lambda *a, **kw: None
    client.allow = lambda *a, **kw: None
    client.get_duration_seconds = lambda duration, size: 60
    zero_torch.unpatch = lambda: None
    zero_torch.init = lambda uuid: None
    zero_torch.size = lambda: 0
    zero_torch.move = lambda callback=None: None

    import multiprocessing
    from pathlib import Path

    import numpy as np
    import torch

    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    from clips import write_clip
    from nsnet.config import PipelineConfig, RecognizerConfig, SamplerConfig
    from nsnet.inference import Pipeline
    from app.server import runtime
    from app.state.models import CheckpointOption, ModelStore, scan_checkpoints

    work = Path(sys.argv[3])
    durations = []

    def tiny(seed):
        torch.manual_seed(seed)
        cfg = PipelineConfig(
            class_names=[f"class_{i}" for i in range(5)], num_frames=8, k=3, lam=0.5,
            sampler=SamplerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=64),
            recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=96))
        return Pipeline.build(cfg, device="cpu")

    pipe = tiny(0)
    tiny(1).save_pretrained(work / "models" / "other")
    store = ModelStore(pipe, CheckpointOption("tiny", ""), scan_checkpoints(work / "models"), device="cpu")
    clip_path = work / "walk.mp4"
    write_clip(clip_path, num_frames=24, fps=12, size=(96, 64))

    # The worker records where each GPU call ran and which pipelines it had (it is forked: this spy goes with it).
    found = runtime.pipeline_named
    def spy(name):
        preloaded = name == "" or any(o.label == name and o.source in store.loaded_sources() for o in store.options)
        with open(work / "calls.jsonl", "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "name": name, "preloaded": preloaded}) + "\n")
        return found(name)
    runtime.pipeline_named = spy

    wrapped = runtime.gpu_seconds
    def record(names, n):
        durations.append([list(names), n, wrapped(names, n)])
        return wrapped(names, n)
    runtime.gpu_seconds = record

    runner = runtime.choose_runner(True, "cuda", store)
    out = {"mode": runner.mode, "progress": runner.reports_progress, "main_pid": os.getpid()}

    T, K, LAM = 8, 3, 0.3
    FIELDS = ("timestamps_s", "frame_scores", "attention", "fused", "selected", "probs", "frame_probs")

    def same(a, b):
        bad = [f for f in FIELDS if (getattr(a, f) is None) != (getattr(b, f) is None)
               or (getattr(a, f) is not None and not np.allclose(getattr(a, f), getattr(b, f), atol=1e-6))]
        bad += [f for f in ("class_names", "lam", "video", "repeated") if getattr(a, f) != getattr(b, f)]
        if a.timings_ms["decode"] <= 0:
            bad.append("decode_ms")
        return bad

    budget = 30.0
    store.pipelines._lock.acquire()   # the worker forks while the server holds the store's lock (another visitor loading)
    clip_z, first_z = runner.first(pipe, str(clip_path), T, K, LAM, budget, None)
    store.pipelines._lock.release()
    clip_d, first_d = runtime.first_pass(pipe, str(clip_path), T, K, LAM, budget)
    out["first"] = same(first_z, first_d) + ([] if first_z.frame_probs is None else ["dense"])
    out["frames_equal"] = bool(np.array_equal(clip_z.frames, clip_d.frames))
    out["dense"] = same(runner.dense(pipe, clip_z.frames, first_z), runtime.dense_pass(pipe, clip_d.frames, first_d))
    out["analyze"] = same(runner.analyze(pipe, str(clip_path), T, K, LAM, budget)[1],
                          runtime.analyze_file(pipe, str(clip_path), T, K, LAM, budget)[1])
    other, _ = store.get("models/other")   # loaded here after the worker forked: the worker must load it itself
    _, za, zb = runner.analyze_pair(pipe, other, str(clip_path), T, K, LAM, budget)
    _, da, db = runtime.analyze_pair(pipe, other, str(clip_path), T, K, LAM, budget)
    out["pair"] = same(za, da) + same(zb, db)
    out["pair_differs"] = not (np.allclose(za.fused, zb.fused) and np.allclose(za.frame_probs, zb.frame_probs))
    try:
        runner.first(pipe, str(clip_path), T, T + 1, LAM, budget, None)
        out["bad_k"] = None
    except Exception as exc:
        out["bad_k"] = str(exc)
    out["workers"] = [p.pid for p in multiprocessing.active_children()]
    out["calls"] = [json.loads(line) for line in (work / "calls.jsonl").read_text().splitlines()]
    out["durations"] = durations
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture(scope="module")
def zerogpu_run(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("zerogpu")
    script = work / "run.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(ROOT), str(ROOT / "tests"), str(work)],
                          capture_output=True, text=True, timeout=300, cwd=work)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_the_gpu_entry_runs_under_spaces_in_a_forked_worker(zerogpu_run):
    out = zerogpu_run
    assert out["mode"] == "spaces.GPU" and out["progress"] is False
    pids = {call["pid"] for call in out["calls"]}
    assert pids and out["main_pid"] not in pids          # every GPU call ran in the worker, none in the server
    assert len(pids) == 1 and pids <= set(out["workers"])   # one GPU function: one worker, reused


def test_zerogpu_results_equal_a_direct_run(zerogpu_run):
    out = zerogpu_run
    assert out["frames_equal"]
    assert out["first"] == [] and out["dense"] == [] and out["analyze"] == [] and out["pair"] == []
    assert out["pair_differs"]    # A and B really are two different checkpoints


def test_a_checkpoint_loaded_after_the_fork_is_loaded_in_the_worker_by_name(zerogpu_run):
    calls = [c for c in zerogpu_run["calls"] if c["name"] == "models/other"]
    assert calls and calls[0]["preloaded"] is False   # the worker did not have it: it loaded it by name
    assert {c["name"] for c in zerogpu_run["calls"]} == {"", "models/other"}


def test_bad_parameters_fail_before_any_gpu_call(zerogpu_run):
    assert "K" in zerogpu_run["bad_k"] or "k" in zerogpu_run["bad_k"]
    assert len(zerogpu_run["calls"]) == 5   # first, dense, analyze, pair (two names); none for the bad K


def test_each_call_asks_for_a_duration_fitted_to_its_work(zerogpu_run):
    by_names = {tuple(names): seconds for names, _, seconds in zerogpu_run["durations"]}
    # 10 s fixed + 0.25 s per preview per pipeline (T=8), + 20 s for a checkpoint read after start-up.
    assert by_names[("",)] == 12
    assert by_names[("", "models/other")] == 10 + 4 + 20


def test_gpu_seconds_is_bounded():
    from app.server import runtime

    assert runtime.gpu_seconds(("",), 10_000) == runtime.GPU_MAX_S
