"""Explorer settings: command-line flags, then environment variables, then defaults.

| flag              | environment                      | default                      |
|-------------------|----------------------------------|------------------------------|
| --host            | GRADIO_SERVER_NAME               | 127.0.0.1                    |
| --port            | GRADIO_SERVER_PORT               | 7860                         |
| --checkpoint      | NSNET_CHECKPOINT                 | assets/demo-model if present, else an untrained pipeline |
| --models-dir      | NSNET_MODELS_DIR                 | none (only the default model) |
| --examples-dir    | NSNET_EXAMPLES_DIR               | assets/examples              |
| --max-upload-mb   | NSNET_MAX_UPLOAD_MB              | 200                          |
| --time-budget-s   | NSNET_TIME_BUDGET_S              | 20 (decode time budget)      |
| --device          | NSNET_DEVICE                     | auto                         |
| --concurrency     | NSNET_CONCURRENCY                | 1 (inference runs at a time) |
| --max-queue       | NSNET_MAX_QUEUE                  | 32 (waiting requests)        |
| --max-frames      | NSNET_MAX_FRAMES                 | 64 (largest T a user may ask for) |
| --allow-hub       | NSNET_ALLOW_HUB (1/true)         | off, on when SPACE_ID is set |
| (none)            | SPACES_ZERO_GPU (1/true)         | off: inference runs in process; on Hugging Face ZeroGPU it runs under ``spaces.GPU`` |
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["AppSettings", "parse_settings", "REPO_ROOT", "BUNDLED_CHECKPOINT"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CHECKPOINT = REPO_ROOT / "assets" / "demo-model"  # served when no --checkpoint is given


def _env_bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AppSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    checkpoint: str | None = None          # None: the bundled demo model, else an untrained pipeline
    models_dir: Path | None = None
    examples_dir: Path = REPO_ROOT / "assets" / "examples"
    max_upload_mb: float = 200.0
    time_budget_s: float = 20.0
    device: str = "auto"
    concurrency: int = 1
    max_queue: int = 32
    max_frames: int = 64
    allow_hub: bool = False
    zero_gpu: bool = False                 # Hugging Face ZeroGPU hardware (SPACES_ZERO_GPU)

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0:
            raise ValueError(f"--max-upload-mb must be > 0, got {self.max_upload_mb}")
        if self.time_budget_s <= 0:
            raise ValueError(f"--time-budget-s must be > 0, got {self.time_budget_s}")
        if self.concurrency < 1 or self.max_queue < 1:
            raise ValueError("--concurrency and --max-queue must be >= 1")
        if self.max_frames < 2:
            raise ValueError(f"--max-frames must be >= 2, got {self.max_frames}")
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {self.port}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="Serve the NSNet saliency explorer (Gradio).")
    p.add_argument("--host", help="interface to bind (env GRADIO_SERVER_NAME; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env GRADIO_SERVER_PORT; default 7860)")
    p.add_argument("--checkpoint", help="default checkpoint folder or hub id (env NSNET_CHECKPOINT; "
                                        "default: assets/demo-model, else an untrained pipeline)")
    p.add_argument("--models-dir", help="folder whose checkpoint folders are offered in the UI (env NSNET_MODELS_DIR)")
    p.add_argument("--examples-dir", help="example clips + annotations.json (env NSNET_EXAMPLES_DIR)")
    p.add_argument("--max-upload-mb", type=float, help="largest accepted upload in MB (env NSNET_MAX_UPLOAD_MB; 200)")
    p.add_argument("--time-budget-s", type=float, help="decode time budget per clip (env NSNET_TIME_BUDGET_S; 20)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="env NSNET_DEVICE; default auto")
    p.add_argument("--concurrency", type=int, help="inference calls run at once (env NSNET_CONCURRENCY; 1)")
    p.add_argument("--max-queue", type=int, help="requests allowed to wait (env NSNET_MAX_QUEUE; 32)")
    p.add_argument("--max-frames", type=int, help="largest T offered (env NSNET_MAX_FRAMES; 64)")
    p.add_argument("--allow-hub", action="store_true", default=None,
                   help="let users load a Hugging Face Hub checkpoint id (env NSNET_ALLOW_HUB; on in Spaces)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
                   ) -> tuple[AppSettings, argparse.Namespace]:
    """Flags win over environment variables, which win over the defaults."""
    env = os.environ if environ is None else environ
    args = _parser().parse_args(list(argv) if argv is not None else None)

    def pick(flag, env_name, cast, default):
        if flag is not None:
            return flag
        raw = env.get(env_name)
        if raw not in (None, ""):
            try:
                return cast(raw)
            except ValueError:
                raise SystemExit(f"app.py: environment variable {env_name}={raw!r} is not a valid value") from None
        return default

    d = AppSettings()
    models_dir = pick(args.models_dir, "NSNET_MODELS_DIR", str, None)
    allow_hub = args.allow_hub if args.allow_hub is not None else _env_bool(env.get("NSNET_ALLOW_HUB"))
    if allow_hub is None:
        allow_hub = bool(env.get("SPACE_ID"))
    try:
        settings = AppSettings(
            host=pick(args.host, "GRADIO_SERVER_NAME", str, d.host),
            port=pick(args.port, "GRADIO_SERVER_PORT", int, d.port),
            checkpoint=pick(args.checkpoint, "NSNET_CHECKPOINT", str, None),
            models_dir=Path(models_dir).expanduser() if models_dir else None,
            examples_dir=Path(pick(args.examples_dir, "NSNET_EXAMPLES_DIR", str, str(d.examples_dir))).expanduser(),
            max_upload_mb=pick(args.max_upload_mb, "NSNET_MAX_UPLOAD_MB", float, d.max_upload_mb),
            time_budget_s=pick(args.time_budget_s, "NSNET_TIME_BUDGET_S", float, d.time_budget_s),
            device=pick(args.device, "NSNET_DEVICE", str, d.device),
            concurrency=pick(args.concurrency, "NSNET_CONCURRENCY", int, d.concurrency),
            max_queue=pick(args.max_queue, "NSNET_MAX_QUEUE", int, d.max_queue),
            max_frames=pick(args.max_frames, "NSNET_MAX_FRAMES", int, d.max_frames),
            allow_hub=bool(allow_hub),
            zero_gpu=bool(_env_bool(env.get("SPACES_ZERO_GPU"))),
        )
    except ValueError as exc:
        raise SystemExit(f"app.py: {exc}") from None
    return settings, args
