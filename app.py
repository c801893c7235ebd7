"""Serve the NSNet saliency explorer: ``python app.py [--host H] [--port P] [--checkpoint DIR] ...``.

Also the Hugging Face Spaces entry point (``app_file: app.py``). See ``app/settings.py``
for every flag and environment variable. Nothing is fetched from a hub unless a hub id
is asked for explicitly (``--checkpoint user/name`` or the UI box with ``--allow-hub``).
"""
from __future__ import annotations

import logging
import signal
import sys

from app.runtime import configure_environment, import_spaces
from app.settings import AppSettings, parse_settings

log = logging.getLogger("app")


def create_demo(settings: AppSettings):
    """Load the models once, find the example clips and build the Blocks (no launch)."""
    configure_environment()
    # Imported only now, after configure_environment(): Gradio brings in huggingface_hub,
    # which reads HF_HUB_DISABLE_TELEMETRY once, when it is first imported.
    from app.demo import build_demo
    from app.models import ModelStore, load_default, load_examples, scan_checkpoints, warmup

    if settings.zero_gpu:
        import_spaces()  # ZeroGPU: `spaces` wants to be imported before torch initialises CUDA
    pipe, option = load_default(settings.checkpoint, settings.device)
    store = ModelStore(pipe, option, scan_checkpoints(settings.models_dir), device=settings.device,
                       allow_hub=settings.allow_hub, hub_allow=settings.hub_allow,
                       hub_max_bytes=settings.hub_max_bytes)
    log.info("warm-up run took %.1f s", warmup(pipe))
    examples = load_examples(settings.examples_dir)
    log.info("model %r on %s (trained=%s); %d other checkpoint(s); %d example clip(s)", option.label,
             pipe.device, pipe.config.trained, len(store.options) - 1, len(examples))
    dataset = None
    if settings.data or settings.results:  # dataset mode
        from app.dataset_store import DatasetStore
        from nsnet.data.records import DatasetError

        try:
            dataset = DatasetStore.open(settings.data, settings.video_root, settings.subset, settings.results)
        except (DatasetError, OSError) as exc:
            raise SystemExit(f"app.py: cannot load the dataset: {exc}") from None
    return build_demo(store, settings, examples=examples, dataset=dataset)


def main(argv: list[str] | None = None) -> int:
    configure_environment()  # offline defaults first: no analytics, no telemetry unless the host opts in
    settings, args = parse_settings(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from app.demo import launch_kwargs  # after configure_environment(), as in create_demo

    # SIGTERM (a Space or container stopping) ends the server like Ctrl-C, so the normal exit
    # runs and removes this instance's export folder (``app.storage``; atexit).
    signal.signal(signal.SIGTERM, _interrupt)
    create_demo(settings).launch(**launch_kwargs(settings))
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
