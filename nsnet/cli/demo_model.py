"""``nsnet demo-model``: rebuild the bundled demo checkpoint from scratch.

1. generate the synthetic benchmark (``make-synthetic``, training seed);
2. train NSNet on its training subset (``train``);
3. evaluate on its validation subset and on a second benchmark generated with a seed
   never used for training or tuning (``eval``), with the K = 1..T curve;
4. copy a few held-out clips and their annotations to ``<out>/examples`` for the app.

Everything lands in ``<out>/demo-model`` (config, weights, eval JSON, curve HTML,
RESULTS.md) and ``<out>/examples``. Runs on a 2-core CPU in well under 30 minutes.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from ..data.formats import read_activitynet
from ..data.synthetic import main as make_synthetic
from . import evaluate as evaluate_cli
from . import train as train_cli

log = logging.getLogger(__name__)

EXAMPLES = 4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nsnet demo-model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="assets", help="where demo-model/ and examples/ are written")
    p.add_argument("--workdir", default="runs/demo", help="generated data and caches")
    p.add_argument("--videos", type=int, default=400, help="videos in the training benchmark (all subsets)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training benchmark")
    p.add_argument("--heldout-videos", type=int, default=150)
    p.add_argument("--heldout-seed", type=int, default=1234, help="seed of the held-out benchmark (never trained on)")
    p.add_argument("--train-config", default=None, help="JSON TrainConfig overrides")
    p.add_argument("--device", default="auto")
    return p


def _run(step: str, fn, argv: list[str]) -> None:
    log.info("== %s: %s", step, " ".join(argv))
    start = time.perf_counter()
    code = fn(argv)
    if code:
        raise SystemExit(f"demo-model: step '{step}' failed with exit code {code}")
    log.info("== %s done in %.0f s", step, time.perf_counter() - start)


def _copy_examples(data: Path, dest: Path, count: int) -> None:
    """A few held-out clips (one per class where possible) plus their annotations."""
    records, _ = read_activitynet(data / "annotations.json")
    seen, chosen = set(), []
    for rec in sorted(records, key=lambda r: r.video_id):
        if rec.label in seen or rec.duration is None or not 8 <= rec.duration <= 20:
            continue
        seen.add(rec.label)
        chosen.append(rec)
        if len(chosen) == count:
            break
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for rec in chosen:
        shutil.copy2(rec.path, dest / Path(rec.path).name)
    ann = json.loads((data / "annotations.json").read_text())  # the subset keeps the file's own layout
    sub = dict(ann, database={rec.video_id: ann["database"][rec.video_id] for rec in chosen})
    (dest / "annotations.json").write_text(json.dumps(sub, indent=2) + "\n")
    shutil.copy2(data / "classes.txt", dest / "classes.txt")
    log.info("copied %d example clips to %s", len(chosen), dest)


def _results_markdown(val: dict, held: dict, meta: dict) -> str:
    rows = ["| method | validation mAP | validation top-1 | held-out mAP | held-out top-1 | GFLOPs/video (multiply-adds) |",
            "|---|---:|---:|---:|---:|---:|"]
    for m, v in val["methods"].items():
        h = held["methods"][m]
        rows.append(f"| {m} | {100 * v['map']:.1f} | {100 * v['top1']:.1f} | {100 * h['map']:.1f} | "
                    f"{100 * h['top1']:.1f} | {v['gflops']:.2f} |")
    extra = []
    for name, res in (("validation", val), ("held-out", held)):
        pl = res.get("pseudo_labels") or {}
        if res.get("saliency_ap") is not None:
            extra.append(f"- {name}: saliency AP {100 * res['saliency_ap']:.1f}, pseudo-label precision "
                         f"{_pct(pl.get('precision'))} / recall {_pct(pl.get('recall'))} "
                         f"({res['num_videos']} videos, T={res['t']}, K={res['k']})")
    return "\n".join(rows + [""] + extra + ["", f"training: {meta.get('num_train_videos')} videos, "
                                                f"{meta.get('train_seconds')} s"]) + "\n"


def _pct(value) -> str:
    """A fraction as a percentage with one decimal, or n/a (a pseudo-label precision is null
    when no frame was labelled salient)."""
    return "n/a" if value is None else f"{100 * value:.1f}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, work = Path(args.out), Path(args.workdir)
    model, data, heldout = out / "demo-model", work / "train-data", work / "heldout-data"
    started = time.perf_counter()
    _run("generate training benchmark", make_synthetic, [str(data), "--videos", str(args.videos),
                                                          "--seed", str(args.seed)])
    _run("generate held-out benchmark", make_synthetic, [str(heldout), "--videos", str(args.heldout_videos),
                                                         "--seed", str(args.heldout_seed)])
    train_argv = ["--data", str(data), "--out", str(model), "--cache-dir", str(work / "cache"),
                  "--device", args.device, "--val-subset", "none"]  # eval below validates; no <out>.best in assets/
    if args.train_config:
        train_argv += ["--config", args.train_config]
    _run("train", train_cli.main, train_argv)
    common = ["--checkpoint", str(model), "--cache-dir", str(work / "cache"), "--device", args.device, "--no-progress",
              "--plot-js", "cdn"]  # the bundled folder stays small
    _run("evaluate validation", evaluate_cli.main, ["--data", str(data), "--subset", "validation",
                                           "--json", str(model / "eval_validation.json"),
                                           "--plot", str(model / "curve_validation.html")] + common)
    _run("evaluate held-out", evaluate_cli.main, ["--data", str(heldout), "--subset", "all",
                                         "--json", str(model / "eval_heldout.json"),
                                         "--plot", str(model / "curve_heldout.html")] + common)
    _copy_examples(heldout, out / "examples", EXAMPLES)
    val = json.loads((model / "eval_validation.json").read_text())
    held = json.loads((model / "eval_heldout.json").read_text())
    meta = json.loads((model / "config.json").read_text())["meta"]
    table = _results_markdown(val, held, meta)
    (model / "RESULTS.md").write_text(f"# Demo model results\n\nBuilt by `nsnet demo-model` in "
                                      f"{time.perf_counter() - started:.0f} s.\n\n{table}")
    print(table)
    return 0
