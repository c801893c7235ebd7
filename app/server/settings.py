"""Explorer settings: command-line flags, then environment variables, then defaults.

| flag              | environment                      | default                      |
|-------------------|----------------------------------|------------------------------|
| --host            | GRADIO_SERVER_NAME               | 127.0.0.1                    |
| --port            | GRADIO_SERVER_PORT               | 7860 (0: the first free one from 7860) |
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
| --hub-allow       | NSNET_HUB_ALLOW (comma-separated) | any Hub id (patterns such as myorg/*; repeatable) |
| --hub-max-mb      | NSNET_HUB_MAX_MB                 | 2048 (weights of one Hub checkpoint or backbone) |
| --max-frame-pixels| NSNET_MAX_FRAME_PIXELS           | 8192x8192 (nsnet.limits.MAX_SOURCE_PIXELS) |
| --export-dir      | NSNET_EXPORT_DIR                 | <temp dir>/nsnet-explorer    |
| --export-mb       | NSNET_EXPORT_MB                  | 200 (preview JPEGs + downloads, all sessions) |
| --export-max-age-min | NSNET_EXPORT_MAX_AGE_MIN      | 60 (a session folder unwritten this long is removed) |
| --session-frames-mb | NSNET_SESSION_FRAMES_MB        | 1024 (decoded previews kept in memory, all sessions) |
| (none)            | SPACES_ZERO_GPU (1/true)         | off: inference runs in process; on Hugging Face ZeroGPU it runs under ``spaces.GPU`` |
| --data            | NSNET_DATA                       | none: dataset mode off (ActivityNet, Kinetics CSV, folders) |
| --video-root      | NSNET_VIDEO_ROOT                 | the reader's default (beside the annotation file) |
| --subset          | NSNET_SUBSET                     | all subsets (e.g. validation)  |
| --results         | NSNET_RESULTS                    | none: rows computed lazily (``nsnet analyze`` JSONL: instant) |
| --compare-results | NSNET_COMPARE_RESULTS            | none: a second ``nsnet analyze`` JSONL (B) shown beside the rows |

The resource ceilings a visitor's request runs under are all here (``Limits`` in the
README): pixels per frame (``max_frame_pixels``), frames per request (``max_frames``),
decode seconds (``time_budget_s``), upload MB (``max_upload_mb``), export MB
(``export_mb``), the sessions' decoded previews in memory (``session_frames_mb``) and
the weights a visitor's Hub checkpoint may download (``hub_max_mb``). The library's own
ceilings (``nsnet.limits``) bound them from above.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from nsnet import limits  # constants only: importing settings stays light (no torch, no Gradio)

__all__ = ["AppSettings", "parse_settings", "parse_pixels", "REPO_ROOT", "DEFAULT_PORT"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env_bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


DEFAULT_PORT = 7860   # Gradio's own default; 0 scans upward from it

@dataclass(frozen=True)
class AppSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    checkpoint: str | None = None          # None: the bundled demo model (nsnet.inference.checkpoint), else untrained
    models_dir: Path | None = None
    examples_dir: Path = REPO_ROOT / "assets" / "examples"
    max_upload_mb: float = 200.0
    time_budget_s: float = 20.0
    device: str = "auto"
    concurrency: int = 1
    max_queue: int = 32
    max_frames: int = 64
    allow_hub: bool = False
    hub_allow: tuple[str, ...] = ()        # fnmatch patterns of allowed Hub ids (empty: any)
    hub_max_mb: float = 2048.0             # weights of one Hub checkpoint or Hub backbone
    zero_gpu: bool = False                 # Hugging Face ZeroGPU hardware (SPACES_ZERO_GPU)
    max_frame_pixels: int = limits.MAX_SOURCE_PIXELS
    export_dir: Path = Path(tempfile.gettempdir()) / "nsnet-explorer"
    export_mb: float = 200.0
    export_max_age_min: float = 60.0
    session_frames_mb: float = 1024.0      # decoded previews of all sessions, in memory
    data: Path | None = None               # dataset mode: annotation file or dataset folder
    video_root: Path | None = None
    subset: str | None = None
    results: Path | None = None            # per-video results (``nsnet analyze`` JSONL)
    compare_results: Path | None = None    # a second results file (B), side by side with the rows (A)

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0:
            raise ValueError(f"--max-upload-mb must be > 0, got {self.max_upload_mb}")
        if self.time_budget_s <= 0:
            raise ValueError(f"--time-budget-s must be > 0, got {self.time_budget_s}")
        if self.concurrency < 1 or self.max_queue < 1:
            raise ValueError("--concurrency and --max-queue must be >= 1")
        if not 2 <= self.max_frames <= limits.MAX_FRAMES:
            raise ValueError(f"--max-frames must be in 2..{limits.MAX_FRAMES}, got {self.max_frames}")
        if not 1 <= self.max_frame_pixels <= limits.MAX_SOURCE_PIXELS:
            raise ValueError(f"--max-frame-pixels must be in 1..{limits.MAX_SOURCE_PIXELS} "
                             f"(nsnet.limits.MAX_SOURCE_PIXELS), got {self.max_frame_pixels}")
        if not self.session_frames_mb > 0:
            raise ValueError(f"--session-frames-mb must be > 0, got {self.session_frames_mb}")
        if not self.hub_max_mb > 0:
            raise ValueError(f"--hub-max-mb must be > 0, got {self.hub_max_mb}")
        if not self.export_mb > 0 or not self.export_max_age_min > 0:
            raise ValueError("--export-mb and --export-max-age-min must be > 0")
        object.__setattr__(self, "hub_allow", tuple(_hub_pattern(p) for p in self.hub_allow))
        if not 0 <= self.port < 65536:
            raise ValueError(f"--port must be in 0..65535 (0: the first free port from 7860), got {self.port}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def session_frames_bytes(self) -> int:
        return int(self.session_frames_mb * 1024 * 1024)

    @property
    def hub_max_bytes(self) -> int:
        return int(self.hub_max_mb * 1024 * 1024)

    @property
    def export_bytes(self) -> int:
        return int(self.export_mb * 1024 * 1024)

    @property
    def export_max_age_s(self) -> float:
        return self.export_max_age_min * 60.0


def _hub_pattern(pattern: str) -> str:
    """An allow-list pattern (``owner/*``, ``owner/name``), stripped; ValueError for anything else."""
    pattern = pattern.strip()
    if not pattern or any(c.isspace() for c in pattern) or "/" not in pattern:
        raise ValueError(f"--hub-allow patterns look like owner/* or owner/name, got {pattern!r}")
    return pattern


def parse_pixels(text: str) -> int:
    """``"3840x2160"`` or ``"8294400"`` as a pixel count (ValueError otherwise)."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*[xX*]\s*(\d{1,6})\s*|\s*(\d{1,12})\s*", text)
    if not m:
        raise ValueError(f"expected WIDTHxHEIGHT or a pixel count, got {text!r}")
    return int(m[1]) * int(m[2]) if m[1] else int(m[3])


def _dataset_settings(args: argparse.Namespace, pick) -> dict:
    """The dataset-mode fields (``--data``, ``--video-root``, ``--subset``, ``--results``)."""
    paths = {name: pick(getattr(args, name), f"NSNET_{name.upper()}")
             for name in ("data", "video_root", "results", "compare_results")}
    return dict({k: Path(v).expanduser() if v else None for k, v in paths.items()},
                subset=pick(args.subset, "NSNET_SUBSET") or None)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="Serve the NSNet saliency explorer (Gradio).")
    p.add_argument("--host", help="interface to bind (env GRADIO_SERVER_NAME; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env GRADIO_SERVER_PORT; default 7860; 0: the first free one "
                                            "from 7860, named in the log)")
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
    p.add_argument("--hub-allow", action="append", metavar="PATTERN",
                   help="with --allow-hub, accept only Hub ids matching this fnmatch pattern, e.g. 'myorg/*' "
                        "(repeatable; env NSNET_HUB_ALLOW, comma-separated; default: any id)")
    p.add_argument("--hub-max-mb", type=float,
                   help="largest weights a Hub checkpoint (or a Hub backbone it names) may have; checked from the "
                        "Hub's metadata before any download (env NSNET_HUB_MAX_MB; 2048)")
    p.add_argument("--max-frame-pixels", type=parse_pixels, metavar="WxH",
                   help="largest video frame accepted, WIDTHxHEIGHT or a pixel count "
                        "(env NSNET_MAX_FRAME_PIXELS; default and ceiling 8192x8192)")
    p.add_argument("--export-dir", help="folder of the per-session files: preview JPEGs and downloads "
                                        "(env NSNET_EXPORT_DIR; default <temp dir>/nsnet-explorer)")
    p.add_argument("--export-mb", type=float, help="size bound of the export folder in MB (env NSNET_EXPORT_MB; 200)")
    p.add_argument("--export-max-age-min", type=float,
                   help="session folders not written for this long are removed (env NSNET_EXPORT_MAX_AGE_MIN; 60)")
    p.add_argument("--session-frames-mb", type=float,
                   help="decoded previews kept in memory for all sessions together, least recently used dropped "
                        "first (env NSNET_SESSION_FRAMES_MB; 1024)")
    p.add_argument("--data", help="dataset mode: an ActivityNet JSON, a Kinetics CSV or a folder per class "
                                  "(env NSNET_DATA); adds the Dataset tab")
    p.add_argument("--video-root", help="where the dataset's videos are (env NSNET_VIDEO_ROOT)")
    p.add_argument("--subset", help="keep one subset, e.g. validation (env NSNET_SUBSET; default all)")
    p.add_argument("--results", help="per-video results of `nsnet analyze` (JSONL; env NSNET_RESULTS): "
                                     "the Dataset tab is instant; without it rows are computed when first opened")
    p.add_argument("--compare-results", metavar="B.jsonl",
                   help="a second `nsnet analyze` results file (env NSNET_COMPARE_RESULTS), e.g. another checkpoint "
                        "or K: the Dataset tab shows its labels beside the rows and the overlap of the selections")
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
            hub_allow=tuple(args.hub_allow) if args.hub_allow else tuple(
                p for p in env.get("NSNET_HUB_ALLOW", "").split(",") if p.strip()),
            hub_max_mb=pick(args.hub_max_mb, "NSNET_HUB_MAX_MB", float, d.hub_max_mb),
            zero_gpu=bool(_env_bool(env.get("SPACES_ZERO_GPU"))),
            max_frame_pixels=pick(args.max_frame_pixels, "NSNET_MAX_FRAME_PIXELS", parse_pixels,
                                  d.max_frame_pixels),
            export_dir=Path(pick(args.export_dir, "NSNET_EXPORT_DIR", str, str(d.export_dir))).expanduser(),
            export_mb=pick(args.export_mb, "NSNET_EXPORT_MB", float, d.export_mb),
            export_max_age_min=pick(args.export_max_age_min, "NSNET_EXPORT_MAX_AGE_MIN", float,
                                    d.export_max_age_min),
            session_frames_mb=pick(args.session_frames_mb, "NSNET_SESSION_FRAMES_MB", float,
                                   d.session_frames_mb),
            **_dataset_settings(args, lambda flag, name: pick(flag, name, str, None)),
        )
    except ValueError as exc:
        raise SystemExit(f"app.py: {exc}") from None
    _check_results(settings.results)
    _check_compare(settings)
    return settings, args


def _check_results(results: Path | None) -> None:
    """``--results`` must be a regular file: a FIFO (which would hang start-up), a folder or a device is refused
    up front, in one line, before any model loads."""
    if results is None:
        return
    from nsnet.jsonsafe import check_regular  # lazily: importing settings stays light

    try:
        check_regular(results, f"--results {results}", error=ValueError)
    except ValueError as exc:
        raise SystemExit(f"app.py: {exc}") from None


def _check_compare(settings: AppSettings) -> None:
    """``--compare-results``: dataset mode on, a regular file whose first row is a row of ``nsnet analyze`` and
    whose run file (``B.run.json``), when there, is one. A bad file: one line on stderr, exit 2, before any model
    loads. Reads the file only up to its first valid row (the rows are read, bounded, when the page is built)."""
    path = settings.compare_results
    if path is None:
        return
    from nsnet.evaluation import jsonl  # lazily: importing settings stays light

    what = f"--compare-results {path.name}"
    try:
        if not (settings.data or settings.results):
            raise jsonl.ResultFileError("--compare-results needs dataset mode: give --results A.jsonl (or --data)")
        found = jsonl.read_rows(path, max_rows=1, what=what)
        if not found.rows:
            why = f" (line {found.skipped[0][0]}: {found.skipped[0][1]})" if found.skipped else " (empty)"
            raise jsonl.ResultFileError(f"{what}: not a results file of nsnet analyze: no valid row{why}")
        run = jsonl.run_path(path)
        if run.exists():
            jsonl.read_run(run)
    except (jsonl.ResultFileError, OSError) as exc:
        sys.stderr.write(f"app.py: {str(exc).replace(str(jsonl.run_path(path)), jsonl.run_path(path).name)}\n")
        raise SystemExit(2) from None
