"""Serve the NSNet saliency explorer: ``python app.py [--host H] [--port P] [--checkpoint DIR] ...``.

Also the Hugging Face Spaces entry point (``app_file: app.py``). See ``app/settings.py``
for every flag and environment variable. Nothing is fetched from a hub unless a hub id
is asked for explicitly (``--checkpoint user/name`` or the UI box with ``--allow-hub``).
"""
from __future__ import annotations

import logging
import sys

try:  # Hugging Face ZeroGPU: `spaces` wants to be imported before torch touches CUDA
    import spaces  # type: ignore[import-not-found]  # noqa: F401
except ImportError:
    pass

import app  # noqa: F401  (sets the offline-friendly Gradio environment defaults first)
from app.settings import AppSettings, parse_settings

log = logging.getLogger("app")


def create_demo(settings: AppSettings):
    """Load the models once, find the example clips and build the Blocks (no launch)."""
    from app.models import ModelStore, load_default, load_examples, scan_checkpoints, warmup
    from app.ui import build_demo

    pipe, option = load_default(settings.checkpoint, settings.device)
    store = ModelStore(pipe, option, scan_checkpoints(settings.models_dir), device=settings.device,
                       allow_hub=settings.allow_hub)
    log.info("warm-up run took %.1f s", warmup(pipe))
    examples = load_examples(settings.examples_dir)
    log.info("model %r on %s (trained=%s); %d other checkpoint(s); %d example clip(s)", option.label,
             pipe.device, pipe.config.trained, len(store.options) - 1, len(examples))
    return build_demo(store, settings, examples=examples)


def main(argv: list[str] | None = None) -> int:
    settings, args = parse_settings(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from app.ui import launch_kwargs

    demo = create_demo(settings)
    demo.launch(**launch_kwargs(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
