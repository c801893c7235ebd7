"""Process set-up and how inference runs, each decided by an explicit call (nothing on import).

* ``configure_environment()``: the offline defaults (no Gradio analytics, no Hugging Face
  telemetry) unless the host already set them. ``app.py`` calls it first thing, before
  Gradio (and with it ``huggingface_hub``, which reads its variable on import) is loaded.
* ``choose_runner(zero_gpu, device)``: when the demo is built, picks how the network-running
  functions (``analyze_file``, and ``analyze_pair`` for comparing two checkpoints) are
  called: in process with a progress callback, or under
  ``spaces.GPU`` on Hugging Face ZeroGPU (where the call may run in another process, so
  it gets plain data and no progress callback).

This module imports neither Gradio nor torch, so ``app.py`` can use it before either.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Callable, MutableMapping, Optional

from nsnet.config import PipelineConfig

if TYPE_CHECKING:  # annotations only: importing these pulls in torch
    from nsnet.inference import Pipeline, PipelineResult
    from nsnet.video import Clip

__all__ = ["OFFLINE_DEFAULTS", "configure_environment", "import_spaces", "analyze_file", "analyze_pair", "Runner",
           "IN_PROCESS", "choose_runner"]

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
    report = progress or (lambda stage, frac: None)
    PipelineConfig.validate(num_frames, k, lam)
    report("decode", 0.0)
    clip, decode_ms = pipe.read(path, num_frames, time_budget_s=time_budget_s)

    def scaled(stage: str, frac: float) -> None:  # decoding is the first ~third of the bar
        report(stage, 0.3 + 0.7 * frac)

    result = pipe.analyze_clip(clip, k, lam, dense=True, decode_ms=decode_ms, progress=scaled)
    return clip, result


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


@dataclass(frozen=True)
class Runner:
    """How the network-running functions are called: ``analyze`` has ``analyze_file``'s signature,
    ``analyze_pair`` that of ``analyze_pair``."""

    analyze: Callable[..., tuple["Clip", "PipelineResult"]]
    reports_progress: bool = True     # False: pass no progress callback (it would not cross processes)
    mode: str = "in process"
    analyze_pair: Callable[..., tuple["Clip", "PipelineResult", "PipelineResult"]] = analyze_pair


IN_PROCESS = Runner(analyze_file)


def choose_runner(zero_gpu: bool, device: object) -> Runner:
    """``spaces.GPU`` around ``analyze_file`` on ZeroGPU hardware with a CUDA pipeline, else in process.

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
    log.info("ZeroGPU: inference runs under spaces.GPU")
    return Runner(spaces.GPU(analyze_file), reports_progress=False, mode="spaces.GPU",
                  analyze_pair=spaces.GPU(analyze_pair))
