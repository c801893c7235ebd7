"""``nsnet ablate``: the open design choices (pseudo labels, attention, L_non, lam) on a benchmark.

The recognizer is trained once; every variant then trains only the sampler on cached
features, over several seeds, and is scored on the validation subset at the same K.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..data.features import default_cache_dir
from ..evaluation.ablate import markdown, run
from ..training import TrainConfig
from .common import USER_ERRORS

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet ablate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--val-subset", default="validation")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cache-dir", default=None,
                   help="feature cache (default: $NSNET_CACHE_DIR, else $XDG_CACHE_HOME/nsnet or ~/.cache/nsnet)")
    p.add_argument("--config", default=None, help="JSON TrainConfig overrides for the base recipe")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        values = json.loads(Path(args.config).read_text()) if args.config else {}
        cache = args.cache_dir or str(default_cache_dir())
        base = TrainConfig.from_dict({**values, "data": args.data, "cache_dir": cache, "progress": False,
                                      "save_state": False})
        res = run(base, args.val_subset, args.seeds)
    except USER_ERRORS + (OSError, json.JSONDecodeError) as exc:
        log.error("%s", exc)
        return 2
    text = markdown(res)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    return 0
