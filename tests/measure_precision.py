"""What each GPU precision does to NSNet's answers, measured on a CPU (not a test: a measurement).

    .venv/bin/python tests/measure_precision.py DATA [--full 24] [--checkpoint assets/demo-model]

GPU arithmetic is emulated the way tensor cores compute (``tests/fake_cuda.py``: inputs of
convolutions and matrix products rounded to fp16 / bf16, float32 sums, CUDA autocast's
float32 operations in float32); TF32 (what ``fp32`` runs on an Ampere or newer GPU with
torch's default cuDNN settings) by rounding those inputs to a 10-bit mantissa. Against CPU
float32: the whole pipeline (selections, fused scores, top-1, NSNet mAP) on the first
``--full`` videos, and the sampler's selections on every video, with the float32 gap between
the K-th and (K+1)-th fused score of each video whose selection changed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_cuda import fake_cuda  # noqa: E402

from nsnet.benchmarks.gpu import precision_agreement  # noqa: E402
from nsnet.data.features import map_labels  # noqa: E402
from nsnet.evaluation.analyze import resolve_inputs  # noqa: E402
from nsnet.inference import Pipeline  # noqa: E402
from nsnet.video import read_clip  # noqa: E402

F = torch.nn.functional
_TF32_OPS = {torch.conv1d, torch.conv2d, F.conv1d, F.conv2d, F.linear, torch.matmul}


def _tf32(t):
    """A float32 tensor rounded to TF32's 10-bit mantissa (to nearest, ties to even)."""
    if not (isinstance(t, torch.Tensor) and t.dtype == torch.float32):
        return t
    i = t.view(torch.int32)
    return ((i + 0xFFF + ((i >> 13) & 1)) & ~0x1FFF).view(torch.float32)


class TF32(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _TF32_OPS:
            args, kwargs = tuple(_tf32(a) for a in args), {k: _tf32(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("--full", type=int, default=24, help="videos run through the whole pipeline")
    p.add_argument("--checkpoint", default="assets/demo-model")
    args = p.parse_args()
    cpu = Pipeline.from_pretrained(args.checkpoint, device="cpu", precision="fp32")
    t, k, lam = cpu.config.num_frames, cpu.config.k, cpu.config.lam
    records, _ = map_labels(resolve_inputs([args.data], subset="all")[0], cpu.class_names)
    clips = [read_clip(r.path, num_frames=t, size=cpu.config.recognizer.input_size) for r in records]
    labels, n = [r.label_index for r in records], args.full
    out = {"videos": len(clips), "cpu_bf16": precision_agreement(cpu, {"bf16": cpu.with_precision("bf16")},
                                                                   clips[:n], labels[:n], k, lam)}
    frames = [torch.as_tensor(c.frames) for c in clips]
    with torch.inference_mode():
        ref = [cpu.sampler_outputs(f, k, lam) for f in frames]
        with TF32():
            runs = {"tf32": [cpu.sampler_outputs(f, k, lam) for f in frames]}
        with fake_cuda():
            gpu = Pipeline.from_pretrained(args.checkpoint, device="cuda")
            out["gpu"] = precision_agreement(cpu, {p: gpu.with_precision(p) for p in ("auto", "bf16")},
                                             clips[:n], labels[:n], k, lam)
            for p in ("fp16", "bf16"):
                runs[p] = [gpu.with_precision(p).sampler_outputs(f, k, lam) for f in frames]

    def gap(o) -> float:
        s = o.fused[0].sort(descending=True).values
        return float(s[k - 1] - s[k])

    out["sampler_only"] = {"fp32_gap_median": float(torch.tensor([gap(o) for o in ref]).median())}
    for name, got in runs.items():
        changed = [i for i, (a, b) in enumerate(zip(ref, got)) if not torch.equal(a.selected, b.selected)]
        out["sampler_only"][name] = {
            "same_selection": len(frames) - len(changed),
            "max_fused_diff": max(float((a.fused - b.fused).abs().max()) for a, b in zip(ref, got)),
            "changed_fp32_gaps": [round(gap(ref[i]), 4) for i in changed]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
