"""A fake CUDA GPU for tests: the library's CUDA-only branches run on the CPU.

``with fake_cuda() as gpu:`` (or the ``fake_gpu`` fixture of ``test_fake_cuda.py``) makes
this process look like it has one CUDA GPU, so code that asks ``device.type == "cuda"``
takes its CUDA branch, and everything that branch does lands on the CPU:

* ``torch.cuda`` (and ``torch.accelerator``) answer as one bf16-capable GPU (``bf16=False``: one without native bf16,
  which still *emulates* it, as a T4 does): ``is_available``, ``device_count``,
  ``is_bf16_supported(including_emulation=...)``, ``get_device_name``, capability and
  properties, ``current_device``; ``set_device``, ``synchronize``, ``empty_cache`` and the
  memory statistics are no-ops (peak memory 0); the CUDA RNG state is a CPU generator's.
* tensors asked for on ``cuda`` stay on the CPU: ``Tensor.to('cuda')``, ``.cuda()``,
  ``device='cuda'`` of any factory, ``nn.Module.to('cuda')`` (a ``TorchFunctionMode``: in the
  thread that entered it); ``pin_memory()`` returns the tensor (it counts as pinned);
  so does a DataLoader's pinning (in its thread too); ``non_blocking`` copies are plain CPU copies.
* ``torch.autocast('cuda', dtype)`` is emulated the way a GPU's tensor cores compute: the
  operations CUDA autocast runs in low precision (convolutions, linear layers, matrix
  products, attention) take their floating inputs rounded to ``dtype``, multiply-accumulate
  in float32 and return ``dtype`` tensors; the ones it runs in float32 (softmax, layer /
  group norm, losses, ...) get float32 inputs; ``torch.autocast(..., enabled=False)`` inside
  turns it off. The dtypes are a GPU's, so a dtype error of the CUDA branch shows up, and fp16
  costs what float32 does (CPU fp16 kernels are about 10x slower). Not emulated: activation
  checkpointing's recomputation under autocast (``frame_chunk``).

``gpu`` records what the code did (``autocast`` dtypes, ``moves`` to cuda, ``pins``,
``syncs``), so a test can check that the CUDA branch really ran. Nothing here imports the
library: the harness is about torch only.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterator

import torch
import torch.utils.data._utils.pin_memory  # noqa: F401 - patched by fake_cuda
from torch.overrides import TorchFunctionMode

__all__ = ["FakeGPU", "fake_cuda"]

_REAL_AUTOCAST = torch.amp.autocast_mode.autocast


@dataclass
class FakeGPU:
    """What the fake GPU saw."""

    bf16: bool = True
    name: str = "Fake GPU (CPU)"
    autocast: Counter = field(default_factory=Counter)   # dtype name -> autocast('cuda') regions entered
    moves: int = 0                                       # tensors (or factories) asked onto cuda
    moved_shapes: Counter = field(default_factory=Counter)  # shape -> tensors moved onto cuda with .to / .cuda
    pins: int = 0                                        # pin_memory() calls
    syncs: int = 0                                       # torch.cuda.synchronize() calls
    amp: list = field(default_factory=list)              # the emulated autocast dtype of each open region
    rng: torch.Tensor = field(default_factory=torch.get_rng_state)


def _is_cuda(value: Any) -> bool:
    if isinstance(value, torch.device):
        return value.type == "cuda"
    if isinstance(value, str):
        return value == "cuda" or value.startswith("cuda:")
    return False


F = torch.nn.functional
#: What CUDA autocast runs in the low-precision dtype (torch's "lower_precision_fp" list, the ones used here).
_LOW = {torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
        torch.conv_transpose3d, F.conv1d, F.conv2d, F.conv3d, F.linear, torch.matmul, torch.mm, torch.bmm,
        torch.addmm, torch.baddbmm, torch.addbmm, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.mm,
        torch.Tensor.bmm, F.scaled_dot_product_attention, torch.prelu}
#: What CUDA autocast runs in float32 (part of torch's "fp32" list).
_FP32 = {torch.softmax, torch.log_softmax, F.softmax, F.log_softmax, torch.Tensor.softmax, torch.Tensor.log_softmax,
         F.layer_norm, F.group_norm, torch.layer_norm, torch.group_norm, F.cross_entropy, F.nll_loss,
         F.binary_cross_entropy_with_logits, F.mse_loss, F.kl_div, torch.cumsum, torch.exp, torch.log, torch.pow,
         F.normalize, torch.norm, torch.Tensor.norm}


#: What CUDA runs in its input's dtype with float32 arithmetic inside (cuDNN batch norm): done in float32
#: here (CPU fp16 kernels are slow), the output rounded back to the input's dtype.
_KEEP = {F.batch_norm, torch.batch_norm}


def _cast(value: Any, dtype: torch.dtype, rounded: bool) -> Any:
    """Floating tensors in ``value`` (nested in lists / tuples / dicts) to float32, first rounded to
    ``dtype`` when ``rounded``."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype).float() if rounded else value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype, rounded) for v in value)
    if isinstance(value, dict):
        return {k: _cast(v, dtype, rounded) for k, v in value.items()}
    return value


def _to(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, dtype) for v in value)
    return value


class _CudaToCpu(TorchFunctionMode):
    def __init__(self, gpu: FakeGPU) -> None:
        super().__init__()
        self.gpu = gpu

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.cuda:
            self._moved(args[0])
            return args[0]
        if func is torch.Tensor.pin_memory:
            self.gpu.pins += 1
            return args[0]
        if func is torch.Tensor.is_pinned:
            return True
        asked = _is_cuda(kwargs.get("device"))
        if asked:
            kwargs["device"] = "cpu"
        if func is torch.Tensor.to and any(_is_cuda(a) for a in args[1:]):
            asked = True
            args = tuple("cpu" if i and _is_cuda(a) else a for i, a in enumerate(args))
        if asked:
            if func is torch.Tensor.to:
                self._moved(args[0])
            else:
                self.gpu.moves += 1
        amp = self.gpu.amp[-1] if self.gpu.amp else None
        if amp is not None and func in _LOW:  # tensor cores: inputs rounded to amp, float32 accumulation
            return _to(func(*_cast(args, amp, True), **_cast(kwargs, amp, True)), amp)
        if amp is not None and func in _FP32:
            return func(*_cast(args, amp, False), **_cast(kwargs, amp, False))
        if func in _KEEP and args and isinstance(args[0], torch.Tensor) and args[0].dtype in (torch.float16,
                                                                                                torch.bfloat16):
            return func(*_cast(args, args[0].dtype, False), **_cast(kwargs, args[0].dtype, False)).to(args[0].dtype)
        return func(*args, **kwargs)

    def _moved(self, tensor: torch.Tensor) -> None:
        self.gpu.moves += 1
        self.gpu.moved_shapes[tuple(tensor.shape)] += 1


def _autocast_class(gpu: FakeGPU) -> type:
    class FakeAutocast(_REAL_AUTOCAST):
        """``torch.autocast`` with ``cuda`` emulated on the CPU (see the module docstring)."""

        def __init__(self, device_type: str, dtype: torch.dtype | None = None, enabled: bool = True,
                     cache_enabled: bool | None = None) -> None:
            self.asked_device, self._emulate = device_type, "inherit"
            if device_type == "cuda":
                dtype = torch.float16 if dtype is None else dtype  # CUDA autocast's default
                self._emulate = dtype if enabled else None
                if enabled:
                    gpu.autocast[str(dtype).removeprefix("torch.")] += 1
                super().__init__("cpu", dtype=torch.bfloat16, enabled=False)  # real CPU autocast stays off
                return
            if not enabled:
                self._emulate = None  # autocast(..., enabled=False) ends the emulated region too
            super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

        def __enter__(self):
            outer = gpu.amp[-1] if gpu.amp else None
            gpu.amp.append(outer if self._emulate == "inherit" else self._emulate)
            return super().__enter__()

        def __exit__(self, *exc):
            gpu.amp.pop()
            return super().__exit__(*exc)

    return FakeAutocast


def _cuda_api(gpu: FakeGPU) -> dict[str, Any]:
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return gpu.bf16 or including_emulation

    def synchronize(device: Any = None) -> None:
        gpu.syncs += 1

    def get_rng_state(device: Any = "cuda") -> torch.Tensor:
        return gpu.rng.clone()

    def set_rng_state(state: torch.Tensor, device: Any = "cuda") -> None:
        gpu.rng = state.clone()

    props = SimpleNamespace(name=gpu.name, major=9, minor=0, total_memory=80 * 2 ** 30, multi_processor_count=132)
    noop = lambda *a, **k: None  # noqa: E731
    zero = lambda *a, **k: 0  # noqa: E731
    return {
        "is_available": lambda: True, "device_count": lambda: 1, "is_initialized": lambda: True,
        "is_bf16_supported": is_bf16_supported, "get_device_name": lambda device=None: gpu.name,
        "get_device_capability": lambda device=None: (9, 0), "get_device_properties": lambda device=None: props,
        "current_device": lambda: 0, "set_device": noop, "synchronize": synchronize, "empty_cache": noop,
        "max_memory_allocated": zero, "memory_allocated": zero, "max_memory_reserved": zero,
        "memory_reserved": zero, "reset_peak_memory_stats": noop, "reset_max_memory_allocated": noop,
        "mem_get_info": lambda device=None: (props.total_memory, props.total_memory),
        "get_rng_state": get_rng_state, "set_rng_state": set_rng_state, "manual_seed": noop,
        "manual_seed_all": noop, "seed_all": noop, "current_stream": lambda device=None: _STREAM,
        "is_current_stream_capturing": lambda: False,
    }


_STREAM = SimpleNamespace(is_capturing=lambda: False, synchronize=lambda: None, wait_stream=lambda other: None,
                          query=lambda: True)  # a stream that never captures a CUDA graph (optimizers ask)


def _accelerator_api(gpu: FakeGPU) -> dict[str, Any]:
    """``torch.accelerator`` answering as the fake GPU (DataLoader's pinning asks it)."""
    return {"is_available": lambda: True, "device_count": lambda: 1, "current_device_index": lambda: 0,
            "set_device_index": lambda device=None: None,
            "current_accelerator": lambda check_available=False: torch.device("cuda"),
            "synchronize": lambda device=None: setattr(gpu, "syncs", gpu.syncs + 1),
            "current_stream": lambda device=None: _STREAM}


@contextlib.contextmanager
def fake_cuda(bf16: bool = True) -> Iterator[FakeGPU]:
    """One fake CUDA GPU for the duration (see the module docstring); everything comes back after."""
    gpu = FakeGPU(bf16=bf16)
    patches: list[tuple[Any, str, Any]] = [(torch.cuda, name, fn) for name, fn in _cuda_api(gpu).items()]
    autocast = _autocast_class(gpu)
    patches += [(torch, "autocast", autocast), (torch.amp, "autocast", autocast)]
    patches += [(torch.accelerator, name, fn) for name, fn in _accelerator_api(gpu).items()]

    def pin_memory(data: Any, device: Any = None) -> Any:  # DataLoader(pin_memory=True), its thread included
        gpu.pins += 1
        return data

    patches.append((torch.utils.data._utils.pin_memory, "pin_memory", pin_memory))
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        with _CudaToCpu(gpu):
            yield gpu
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)
