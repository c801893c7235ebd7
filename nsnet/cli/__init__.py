"""The ``nsnet`` command (also ``python -m nsnet``): one thin module a command, each with ``main(argv)``.

Commands are imported lazily so ``nsnet predict --help`` does not pay for training code.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys

__all__ = ["COMMANDS", "main"]

COMMANDS = {
    "predict": ("nsnet.cli.predict", "score a video: saliency curves, selected frames, labels"),
    "make-synthetic": ("nsnet.data.synthetic", "generate the untrimmed-video benchmark"),
    "train": ("nsnet.cli.train", "train the recognizer, pseudo labels and the sampler"),
    "eval": ("nsnet.cli.evaluate", "evaluate NSNet against the baselines"),
    "analyze": ("nsnet.cli.analyze", "run NSNet over a whole dataset: one JSONL row a video, resumable, torchrun"),
    "ablate": ("nsnet.cli.ablate", "measure the open design choices (pseudo labels, attention, L_non, lam)"),
    "bench": ("nsnet.cli.bench", "measure decode / sampler / recognizer cost"),
    "export": ("nsnet.cli.export", "one video as files: saliency chart (PNG, SVG), highlight clip (MP4), JSON"),
    "demo-model": ("nsnet.cli.demo_model", "rebuild the bundled demo checkpoint and example clips"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        lines = ["usage: nsnet <command> [options]   (or: python -m nsnet <command> ...)", "", "commands:"]
        lines += [f"  {name:<15} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("\n".join(lines))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"nsnet: unknown command {name!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    # predict and export keep stderr for their one-line error; the long-running commands narrate at INFO
    default = "WARNING" if name in ("predict", "export") else "INFO"
    logging.basicConfig(level=os.environ.get("NSNET_LOG_LEVEL", default).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


def console() -> None:
    """Entry point of the ``nsnet`` console script."""
    sys.exit(main())
