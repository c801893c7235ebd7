"""``nsnet bench {decode,pipeline,analyze,gpu} ...``: cost benchmarks (not timed tests)."""
from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "decode": "nsnet.benchmarks.decode",      # T-frame sampling vs decoding everything, peak RSS
    "pipeline": "nsnet.benchmarks.pipeline",  # per-stage wall time and GFLOPs, NSNet-K vs dense-T
    "analyze": "nsnet.benchmarks.analyze",    # videos/s: nsnet analyze vs a loop over Pipeline.analyze
    "gpu": "nsnet.benchmarks.gpu",            # precision agreement, analyze = eval, folding, GFLOPs, throughput, ...
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: nsnet bench {decode,pipeline,analyze,gpu} [options]  (see each --help)",
              file=sys.stdout if argv and argv[0] in ("-h", "--help") else sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return int(importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]) or 0)
