"""Process set-up and how inference runs, each decided by an explicit call (nothing on import).

* ``configure_environment()``: the offline defaults (no Gradio analytics, no Hugging Face
  telemetry) unless the host already set them. ``app.py`` calls it first thing, before
  Gradio (and with it ``huggingface_hub``, which reads its variable on import) is loaded.
* ``choose_runner(zero_gpu, device, store)``: when the demo is built, picks how the network-running
  functions are called: in process with a progress callback, or on Hugging Face ZeroGPU. They are
  ``analyze_file`` (decode, then NSNet and the dense pass in one go: ``/analyze`` and the dataset's
  rows), ``first_pass`` and ``dense_pass`` (a Run: NSNet's own result first, then the recognizer on
  every preview) and ``analyze_pair`` (two checkpoints).

ZeroGPU (``spaces.GPU``) runs a call in a GPU worker process forked from this one and sends the
call's arguments and result through a multiprocessing queue (``ForkingPickler``): a ``Pipeline``
cannot cross it (a lock, CUDA tensors). So the callers keep handing pipelines to the ``Runner``,
and its ZeroGPU functions (``ZeroGPURunner``) decode the clip here, on the CPU, outside the GPU
slot, then call the one GPU function, ``gpu_run``, with plain data only: the decoded
previews (numpy), their timestamps and video facts, K, λ and each checkpoint's *name* (its picker
label, "" for the default, ``hub:<id>``). In the worker the name is looked up in the module-level
store (``install``, at start-up, before any worker forks): pipelines loaded at start-up are there
already, a checkpoint loaded later is loaded inside the GPU function, by name. Each call asks for a
``duration`` fitted to its work (``gpu_seconds``). No progress callback crosses the processes.

This module imports neither Gradio nor torch, so ``app.py`` can use it before either.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, MutableMapping, Optional

from nsnet.config import PipelineConfig

if TYPE_CHECKING:  # annotations only: importing these pulls in torch
    import numpy as np

    from nsnet.inference import Pipeline, PipelineResult
    from nsnet.video import Clip

    from ..state.models import ModelStore

__all__ = ["OFFLINE_DEFAULTS", "configure_environment", "import_spaces", "analyze_file", "first_pass", "dense_pass",
           "analyze_pair", "Runner", "IN_PROCESS", "choose_runner", "install", "pipeline_named", "name_of",
           "gpu_run", "gpu_seconds", "ZeroGPURunner"]

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]  # (stage, fraction done in [0, 1])

# The explorer works offline: no telemetry or version checks unless the host opts in.
OFFLINE_DEFAULTS = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}


def configure_environment(environ: Optional[MutableMapping[str, str]] = None) -> dict[str, str]:
    """Set each of ``OFFLINE_DEFAULTS`` the host left unset; returns the ones it set."""
    env = os.environ if environ is None else environ
    applied = {}
    for name, value in OFFLINE_DEFAULTS.items():
        if name not in env:
            env[name] = value
            applied[name] = value
    return applied


def import_spaces() -> Optional[ModuleType]:
    """The Hugging Face ``spaces`` package when installed (ZeroGPU), else ``None``.

    ``app.py`` calls it before the models load: ``spaces`` wants to be imported before
    torch initialises CUDA.
    """
    try:
        import spaces  # type: ignore[import-not-found]  # optional: only on Hugging Face Spaces
    except ImportError:
        return None
    return spaces


def analyze_file(pipe: "Pipeline", path: str, num_frames: int, k: int, lam: float, time_budget_s: float,
                 progress: Optional[Progress] = None) -> tuple["Clip", "PipelineResult"]:
    """The one function that runs networks (the ZeroGPU unit of work): decode, then a dense run.

    Returns the decoded clip (its ``frames`` feed the gallery and the viewer) and the
    result. T, K and lam are checked before anything is decoded; the progress runs 0-30 %
    for decoding, then the pipeline's own stages over the rest.
    """
    return _decode_and_run(pipe, path, num_frames, k, lam, time_budget_s, progress, dense=True)


def first_pass(pipe: "Pipeline", path: str, num_frames: int, k: int, lam: float, time_budget_s: float,
               progress: Optional[Progress] = None) -> tuple["Clip", "PipelineResult"]:
    """Decode, then NSNet alone (the sampler on the T previews, the recognizer on the K it keeps).

    The first thing a Run shows; ``dense_pass`` completes it. Same checks and progress as ``analyze_file``.
    """
    return _decode_and_run(pipe, path, num_frames, k, lam, time_budget_s, progress, dense=False)


def _decode_and_run(pipe: "Pipeline", path: str, num_frames: int, k: int, lam: float, time_budget_s: float,
                    progress: Optional[Progress], *, dense: bool) -> tuple["Clip", "PipelineResult"]:
    """Check T, K, lam, decode, then run the pipeline (``dense``: the recognizer on every preview too)."""
    report = progress or (lambda stage, frac: None)
    PipelineConfig.validate(num_frames, k, lam)
    report("decode", 0.0)
    clip, decode_ms = pipe.read(path, num_frames, time_budget_s=time_budget_s)

    def scaled(stage: str, frac: float) -> None:  # decoding is the first ~third of the bar
        report(stage, 0.3 + 0.7 * frac)

    return clip, pipe.analyze_clip(clip, k, lam, dense=dense, decode_ms=decode_ms, progress=scaled)


def dense_pass(pipe: "Pipeline", frames, result: "PipelineResult") -> "PipelineResult":
    """``result`` with the recognizer's probabilities on every preview (``frame_probs``, what K/λ
    re-ranking, the comparison table and the teacher curve need), as ``dense=True`` gives them.

    ``frames``: the (T, H, W, 3) uint8 previews ``result`` came from. The recognizer runs only on
    the T - K previews the first pass did not keep (the kept ones' probabilities,
    ``result.selected_probs``, are reused); ``dense_recognizer_ms`` is, as with ``dense=True``,
    the first pass's recognizer time plus this pass's. The prediction on the K selected frames
    (``probs``) is the first pass's, unchanged.
    """
    import dataclasses
    import time

    import numpy as np
    import torch

    start = time.perf_counter()
    frames = torch.as_tensor(frames)
    t = int(frames.shape[0])
    kept = result.selected_probs
    with torch.inference_mode():
        if kept is None:   # a result from elsewhere: the recognizer on every preview
            probs = pipe.recognizer_probs(frames).numpy()  # (T, C)
            spent = 0.0
        else:
            rest = np.setdiff1d(np.arange(t), result.selected)  # (T - K,) ascending
            probs = np.zeros((t, kept.shape[1]), dtype=np.float32)
            probs[result.selected] = kept
            if len(rest):
                probs[rest] = pipe.recognizer_probs(frames[torch.from_numpy(rest)]).numpy()
            spent = float(result.timings_ms.get("recognizer", 0.0))
    ms = spent + (time.perf_counter() - start) * 1e3
    return dataclasses.replace(result, frame_probs=probs, dense_recognizer_ms=ms)


def analyze_pair(pipe_a: "Pipeline", pipe_b: "Pipeline", path: str, num_frames: int, k: int, lam: float,
                 time_budget_s: float, progress: Optional[Progress] = None
                 ) -> tuple["Clip", "PipelineResult", "PipelineResult"]:
    """Two checkpoints on the same clip: decode once, then both pipelines densely on the same frames.

    The previews are decoded at the larger of the two recognizer sizes (each backbone resizes
    to its own input). Both results carry the one decode time. Progress: decode 0-30 %, A to
    65 %, B to 100 %.
    """
    report = progress or (lambda stage, frac: None)
    PipelineConfig.validate(num_frames, k, lam)
    report("decode", 0.0)
    reader = max((pipe_a, pipe_b), key=lambda p: p.config.recognizer.input_size)
    clip, decode_ms = reader.read(path, num_frames, time_budget_s=time_budget_s)
    results = []
    for i, pipe in enumerate((pipe_a, pipe_b)):
        def scaled(stage: str, frac: float, i: int = i) -> None:
            report(f"{'AB'[i]}: {stage}", 0.3 + 0.35 * (i + frac))

        results.append(pipe.analyze_clip(clip, k, lam, dense=True, decode_ms=decode_ms, progress=scaled))
    return clip, results[0], results[1]


# ------------------------------------------------------------------ ZeroGPU: plain data across processes
_STORE: Optional["ModelStore"] = None       # the served pipelines (``install``); a forked GPU worker inherits it
_STARTUP_NAMES: frozenset[str] = frozenset()  # names whose pipelines were loaded when it was installed

GPU_BASE_S = 10.0          # a call's fixed part: the worker's start and the weights' move to the GPU
GPU_PER_FRAME_S = 0.25     # per preview and pipeline (a dense pass on a ZeroGPU slice takes far less)
GPU_LOAD_S = 20.0          # a checkpoint loaded after start-up is read inside the GPU function
GPU_MAX_S = 120.0


def install(store: "ModelStore") -> None:
    """Make ``store`` the module-level store the GPU functions find their pipelines in (at start-up,
    before any worker forks: the pipelines loaded by then are inherited by every worker; the store's
    locks are renewed in a forked child by ``nsnet.inference.store``)."""
    global _STORE, _STARTUP_NAMES
    _STORE = store
    loaded = set(store.loaded_sources())
    _STARTUP_NAMES = frozenset({""} | {option.label for option in store.options if option.source in loaded})


def pipeline_named(name: str) -> "Pipeline":
    """The pipeline of a checkpoint name ("" the default, a picker label, ``hub:<id>``) from the installed
    store; one not loaded in this process yet (a worker forked before it was loaded) is loaded now."""
    if _STORE is None:
        raise RuntimeError("no model store installed (app.server.runtime.install)")
    if name.startswith("hub:"):
        return _STORE.get(None, name[len("hub:"):])[0]
    return _STORE.get(name or None)[0]


def name_of(store: "ModelStore", pipe: "Pipeline") -> str:
    """The name ``pipeline_named`` finds ``pipe`` by: "" for the default, else its picker label or ``hub:<id>``."""
    if pipe is store.default:
        return ""
    source = store.source_of(pipe)
    if source is not None:
        if source.startswith("hub:"):
            return source
        for option in store.options:
            if option.source == source:
                return option.label
    from nsnet.inference import CheckpointError

    raise CheckpointError("this checkpoint was unloaded meanwhile (the server keeps a few): press Run again")


def _clip_data(clip: "Clip", decode_ms: float) -> dict[str, Any]:
    """A decoded clip as plain data: previews (T, H, W, 3) uint8, timestamps, video facts, decode time."""
    return {"frames": clip.frames, "timestamps_s": clip.timestamps_s, "video": clip.info.to_dict(),
            "repeated": bool(clip.repeated), "decode_ms": float(decode_ms)}


def _run(pipe: "Pipeline", data: dict[str, Any], k: int, lam: float, dense: bool) -> "PipelineResult":
    """``Pipeline.analyze_clip`` on plain clip data (the same call it makes)."""
    return pipe(data["frames"], k, lam, dense=dense, timestamps_s=data["timestamps_s"], video=data["video"],
                decode_ms=data["decode_ms"], repeated=data["repeated"])


def gpu_run(task: str, names: tuple[str, ...], data: dict[str, Any], k: int, lam: float) -> Any:
    """The one function under ``spaces.GPU`` (one worker, forked once and reused): plain data in and out.

    ``task``: ``"first"`` (NSNet alone) or ``"analyze"`` (with the dense pass) of ``names[0]`` on the
    clip ``data`` -> a result; ``"dense"``: the dense pass of ``data["result"]`` on ``data["frames"]``
    -> a result; ``"pair"``: both ``names`` densely on the same clip -> (result A, result B).
    """
    if task in ("first", "analyze"):
        return _run(pipeline_named(names[0]), data, k, lam, dense=task == "analyze")
    if task == "dense":
        return dense_pass(pipeline_named(names[0]), data["frames"], data["result"])
    if task == "pair":
        return tuple(_run(pipeline_named(name), data, k, lam, dense=True) for name in names)
    raise ValueError(f"unknown GPU task {task!r}")


def gpu_seconds(names: tuple[str, ...], num_frames: int) -> int:
    """The ``duration`` a GPU call asks for: a fixed part, each pipeline's previews, and the reading of each
    checkpoint that was not loaded at start-up (bounded by ``GPU_MAX_S``; shorter calls queue sooner)."""
    late = sum(name not in _STARTUP_NAMES for name in names)
    seconds = GPU_BASE_S + GPU_PER_FRAME_S * num_frames * len(names) + GPU_LOAD_S * late
    return int(min(GPU_MAX_S, seconds))


def _gpu_duration(task: str, names: tuple[str, ...], data: dict[str, Any], k: int, lam: float) -> int:
    """``spaces.GPU``'s dynamic duration: called with ``gpu_run``'s arguments."""
    return gpu_seconds(names, len(data["frames"]))


class ZeroGPURunner:
    """The ``Runner`` functions on ZeroGPU: each decodes here (CPU), then calls its ``spaces.GPU`` function
    with plain data (see the module doc). Same signatures and results as the in-process functions."""

    def __init__(self, spaces: Any, store: "ModelStore") -> None:
        self.store = store
        self.gpu = spaces.GPU(gpu_run, duration=_gpu_duration)

    def _decode(self, pipe: "Pipeline", path: str, num_frames: int, k: int, lam: float,
                time_budget_s: float) -> tuple["Clip", dict[str, Any]]:
        PipelineConfig.validate(num_frames, k, lam)   # before anything is decoded, as in process
        clip, decode_ms = pipe.read(path, num_frames, time_budget_s=time_budget_s)
        return clip, _clip_data(clip, decode_ms)

    def analyze(self, pipe: "Pipeline", path: str, num_frames: int, k: int, lam: float, time_budget_s: float,
                progress: Optional[Progress] = None) -> tuple["Clip", "PipelineResult"]:
        clip, data = self._decode(pipe, path, num_frames, k, lam, time_budget_s)
        return clip, self.gpu("analyze", (name_of(self.store, pipe),), data, k, lam)

    def first(self, pipe: "Pipeline", path: str, num_frames: int, k: int, lam: float, time_budget_s: float,
              progress: Optional[Progress] = None) -> tuple["Clip", "PipelineResult"]:
        clip, data = self._decode(pipe, path, num_frames, k, lam, time_budget_s)
        return clip, self.gpu("first", (name_of(self.store, pipe),), data, k, lam)

    def dense(self, pipe: "Pipeline", frames: "np.ndarray", result: "PipelineResult") -> "PipelineResult":
        return self.gpu("dense", (name_of(self.store, pipe),), {"frames": frames, "result": result}, result.k,
                        result.lam)

    def analyze_pair(self, pipe_a: "Pipeline", pipe_b: "Pipeline", path: str, num_frames: int, k: int, lam: float,
                     time_budget_s: float, progress: Optional[Progress] = None
                     ) -> tuple["Clip", "PipelineResult", "PipelineResult"]:
        reader = max((pipe_a, pipe_b), key=lambda p: p.config.recognizer.input_size)  # as ``analyze_pair``
        clip, data = self._decode(reader, path, num_frames, k, lam, time_budget_s)
        ra, rb = self.gpu("pair", (name_of(self.store, pipe_a), name_of(self.store, pipe_b)), data, k, lam)
        return clip, ra, rb


@dataclass(frozen=True)
class Runner:
    """How the network-running functions are called: each field has the signature of the function
    of its name (``analyze`` that of ``analyze_file``)."""

    analyze: Callable[..., tuple["Clip", "PipelineResult"]]
    reports_progress: bool = True     # False: pass no progress callback (it would not cross processes)
    mode: str = "in process"
    analyze_pair: Callable[..., tuple["Clip", "PipelineResult", "PipelineResult"]] = analyze_pair
    first: Callable[..., tuple["Clip", "PipelineResult"]] = first_pass
    dense: Callable[..., "PipelineResult"] = dense_pass


IN_PROCESS = Runner(analyze_file)


def choose_runner(zero_gpu: bool, device: object, store: Optional["ModelStore"] = None) -> Runner:
    """On ZeroGPU hardware with a CUDA pipeline, the ``ZeroGPURunner`` over ``store`` (installed as the
    module-level store here, at start-up); else in process.

    ``device`` is the default pipeline's (a ``torch.device`` or its string); a CPU
    pipeline never needs a GPU slot.
    """
    on_cuda = str(getattr(device, "type", device)).startswith("cuda")
    if not (zero_gpu and on_cuda):
        return IN_PROCESS
    spaces = import_spaces()
    if spaces is None:
        log.warning("SPACES_ZERO_GPU is set but the spaces package is not installed: inference runs in process")
        return IN_PROCESS
    if store is None:
        raise ValueError("ZeroGPU needs the model store: choose_runner(zero_gpu, device, store)")
    install(store)
    zero = ZeroGPURunner(spaces, store)
    log.info("ZeroGPU: decoding in process, inference under spaces.GPU with plain data")
    return Runner(zero.analyze, reports_progress=False, mode="spaces.GPU", analyze_pair=zero.analyze_pair,
                  first=zero.first, dense=zero.dense)
