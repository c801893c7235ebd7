"""Dataset-mode and two-checkpoint benchmark: ``python -m app.bench.dataset [--videos 500] [--distinct 24]
[--checkpoint-b DIR] [--no-browser] [--json OUT]``.

1. *dataset*: a generated synthetic benchmark (``make-synthetic``, seed 77) of ``--distinct`` real
   clips, grown to ``--videos`` entries by hard links (entry ``e0042`` is clip 42 mod ``--distinct``
   with that clip's ground truth), and its ``--results`` file: ``nsnet analyze`` on the distinct
   clips with the default model, each row copied to the entries that link to its clip (every row
   is real; only the number of distinct clips is small). Cached under ``--work``. In Debian's
   Chromium through Playwright, each latency timed inside the page from the click until the
   table (or the analysis) shows the result, plus one animation frame:
   * first rows: a click on the Dataset tab until its first row is on the page (fresh page each time);
   * filter: picking an Outcome until the count and first row change;
   * sort: picking a Sort (server side), and a column menu's Sort ascending / descending (in the page);
   * open a row: a click on a row until the analysis tab shows that video with its ground truth
     (chart drawn, every gallery image loaded); each time a clip not analysed before (no cache).
2. *compare*: on the generated 60-s 1280x720 H.264 clip of ``app.bench``, the Run callback with
   one checkpoint against the Compare callback with two (decode once, both pipelines on the same
   previews), in process, full outputs (charts, labels, costs); medians and their ratio.

Checkpoint A is the app's default (``--checkpoint``, else the bundled demo model); B is
``--checkpoint-b`` (for the comparison). This is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nsnet.benchmarks.decode import make_clip

from ..server.runtime import configure_environment
from ..server.settings import AppSettings
from .common import CHROMIUM, CHROMIUM_ARGS, finish_report

log = logging.getLogger("app.bench.dataset")

# Resolves with the ms from the next click (capture phase) until ``done()`` holds, plus one frame.
ARM_JS = """(doneSrc) => {
  const done = new Function('return (' + doneSrc + ')();');
  window.__lat = null;
  let t0 = null;
  document.addEventListener('click', () => { t0 = performance.now(); }, {capture: true, once: true});
  const poll = () => {
    if (t0 !== null && done()) { requestAnimationFrame(() => { window.__lat = performance.now() - t0; }); return; }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
}"""
# The text of the cell shown at row r (display order, after any sort), column c.
CELL = ("(r, c) => (document.querySelector(`#ds-table .virtual-row[data-index=\"${r}\"] [data-col=\"${c}\"]`)"
        " || {innerText: ''}).innerText.trim()")


def _stats(ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms), 1), "min_ms": round(min(ms), 1), "max_ms": round(max(ms), 1),
            "n": len(ms)}


# --------------------------------------------------------------------------- the dataset
def build_dataset(work: Path, videos: int, distinct: int, checkpoint: str | None) -> tuple[Path, Path]:
    """(annotation file, results file) of the ``videos``-entry dataset (see the module docstring)."""
    from nsnet.data.synthetic.generate import generate

    src = work / f"src-{distinct}"
    if not (src / "annotations.json").is_file():
        generate(src, distinct, seed=77, workers=min(2, os.cpu_count() or 1), progress=False)
    rows_src = work / f"src-{distinct}-rows.jsonl"
    if not rows_src.is_file():
        cmd = [sys.executable, "-m", "nsnet", "analyze", str(src), "--out", str(rows_src), "--workers", "1",
               "--no-progress"] + (["--checkpoint", checkpoint] if checkpoint else [])
        log.info("analysing the %d distinct clips: %s", distinct, " ".join(cmd))
        subprocess.run(cmd, check=True)
    out = work / f"n{videos}-of-{distinct}"
    ann, rows_out = out / "annotations.json", out / "rows.jsonl"
    if ann.is_file() and rows_out.is_file():
        return ann, rows_out
    doc = json.loads((src / "annotations.json").read_text())
    rows = {r["id"]: r for r in map(json.loads, rows_src.read_text().splitlines()) if r}
    ids = sorted(doc["database"])
    (out / "videos").mkdir(parents=True, exist_ok=True)
    database, lines = {}, []
    for i in range(videos):
        source = ids[i % len(ids)]
        vid = f"e{i:04d}_{source}"
        path = out / "videos" / f"{vid}.mp4"
        if not path.exists():
            os.link(src / "videos" / f"{source}.mp4", path)
        database[vid] = dict(doc["database"][source], subset="validation")
        lines.append(json.dumps(dict(rows[source], id=vid, path=str(path), subset="validation")))
    shutil.copy(src / "classes.txt", out / "classes.txt")
    ann.write_text(json.dumps(dict(doc, database=database)))
    rows_out.write_text("\n".join(lines) + "\n")
    shutil.copy(rows_src.with_name(f"{rows_src.stem}.run.json"), out / "rows.run.json")
    return ann, rows_out


def bench_browser(demo, launch_kw: dict, rows: list[dict], distinct: int, repeats: int, opens: int) -> dict:
    from playwright.sync_api import sync_playwright

    from ..views import dataset_table as ds
    from ..views.dataset_summary import count_note

    ids = [r["id"] for r in rows]

    def expect(outcome: str = ds.ALL, sort: str = ds.DATASET_ORDER) -> str:
        """JS: the page shows the count and the first row the server computes for this filter and sort."""
        shown = ds.sort_rows(ds.filter_rows(rows, outcome=outcome), *ds.SORTS[sort])
        note = count_note(len(shown), len(rows)).replace("**", "")
        return (f"() => document.querySelector('#ds-count').innerText.includes({json.dumps(note)})"
                f" && ({CELL})(0, 0) === {json.dumps(shown[0]['id'])}")

    demo.launch(**dict(launch_kw, server_port=None), prevent_thread_lock=True, quiet=True)  # a free port
    url = demo.local_url
    first, filters, sorts, menu_sorts, opened = [], [], [], [], []

    def lat(page) -> float:
        page.wait_for_function("() => window.__lat !== null", timeout=60_000)
        return page.evaluate("() => window.__lat")

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            for _ in range(repeats + 1):   # a fresh page each time; the first (cold) load is dropped
                page.goto(url)
                page.wait_for_selector("#tab-dataset-button", timeout=60_000)
                page.evaluate(ARM_JS, f"() => ({CELL})(0, 0) === {json.dumps(ids[0])}")
                page.click("#tab-dataset-button")
                first.append(lat(page))
            first = first[1:]
            page.wait_for_timeout(500)

            def choose(dropdown: str, option: str, done: str) -> float:
                page.locator(f"{dropdown} input").click()
                page.evaluate(ARM_JS, done)
                page.get_by_role("option", name=option, exact=True).click()
                value = lat(page)
                page.wait_for_timeout(300)
                return value

            for i in range(repeats):
                for option in ("NSNet wrong", ds.ALL) if i % 2 == 0 else ("NSNet right", ds.ALL):
                    filters.append(choose("#ds-outcome", option, expect(outcome=option)))
            for i in range(repeats):
                for option in ("saliency AP, lowest first", "saliency AP, highest first"):
                    sorts.append(choose("#ds-sort", option, expect(sort=option)))
            for i in range(repeats):  # the Video column (unique ids): the first row shown is the first / last id
                for item, top in (("Sort descending", max(ids)), ("Sort ascending", min(ids))):
                    page.locator("#ds-table th[data-heading='0']").hover()
                    page.locator("#ds-table th[data-heading='0'] button.cell-menu-button").click(force=True)
                    page.evaluate(ARM_JS, f"() => ({CELL})(0, 0) === {json.dumps(top)}")
                    page.get_by_role("menuitem", name=item).click()
                    menu_sorts.append(lat(page))
                    page.wait_for_timeout(300)
            # open rows: each a clip not analysed before (entries i < distinct are distinct clips)
            page.goto(url)
            page.wait_for_selector("#tab-dataset-button", timeout=60_000)
            for vid in ids[1:1 + min(opens, distinct - 1)]:
                page.click("#tab-dataset-button")
                page.fill("#ds-search textarea, #ds-search input", vid)
                page.wait_for_function(f"() => ({CELL})(0, 0) === {json.dumps(vid)} && ({CELL})(1, 0) === ''",
                                       timeout=30_000)
                done = (f"() => document.querySelector('#summary').innerText.includes({json.dumps(vid)})"
                        " && document.querySelector('#summary').innerText.includes('Ground truth')"
                        " && document.querySelector('#saliency-plot .legendtext')"
                        " && [...document.querySelectorAll('#selected-gallery img')].length > 0"
                        " && [...document.querySelectorAll('#selected-gallery img')].every(i => i.complete"
                        " && i.naturalWidth > 0)")
                page.evaluate(ARM_JS, done)
                page.locator("#ds-table [data-testid=cell-0-1]").click()
                opened.append(lat(page))
                page.wait_for_timeout(500)
            browser.close()
    finally:
        demo.close()
    return {"first_rows": _stats(first), "filter": _stats(filters), "sort_server": _stats(sorts),
            "sort_column_menu": _stats(menu_sorts), "open_row": _stats(opened)}


# --------------------------------------------------------------------------- two checkpoints
def bench_compare(ctx, clip: Path, b_label: str, t: int, k: int, lam: float, runs: int) -> dict:
    from ..tabs.analyze import Analysis
    from ..tabs.compare import Comparison

    cb, ccb = Analysis(ctx), Comparison(ctx)
    one, two, stages = [], [], []
    quiet = lambda *a, **kw: None  # noqa: E731
    ccb.compare(str(clip), t, k, lam, None, "", b_label, "", False, progress=quiet)  # warm-up (both pipelines)
    for _ in range(runs):  # interleaved, so that drift in the machine's load hits both alike
        start = time.perf_counter()
        for _ in cb.run(str(clip), t, k, lam, None, None, False, 1, None, progress=quiet):  # both steps
            pass
        one.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        out = ccb.compare(str(clip), t, k, lam, None, "", b_label, "", False, progress=quiet)
        two.append((time.perf_counter() - start) * 1e3)
        state = out["cmp_state"]
        stages.append({"decode": state.decode_ms,
                       "a_networks": state.base_a.timings_ms["sampler"] + (state.base_a.dense_recognizer_ms or 0),
                       "b_networks": state.base_b.timings_ms["sampler"] + (state.base_b.dense_recognizer_ms or 0)})
    med = {key: round(statistics.median(s[key] for s in stages), 1) for key in stages[0]}
    return {"run_one_checkpoint": _stats(one), "compare_two_checkpoints": _stats(two),
            "ratio_of_medians": round(statistics.median(two) / statistics.median(one), 3),
            "ratio_of_minimums": round(min(two) / min(one), 3),
            "median_of_paired_ratios": round(statistics.median(b / a for a, b in zip(one, two)), 3),
            "compare_stages_ms": med}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.bench.dataset", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="checkpoint A (default: the bundled demo model)")
    p.add_argument("--checkpoint-b", help="checkpoint B folder, for the comparison (skipped without)")
    p.add_argument("--videos", type=int, default=500)
    p.add_argument("--distinct", type=int, default=24, help="distinct generated clips behind the entries")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "nsnet-bench-dataset")
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "nsnet-bench-decode")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--opens", type=int, default=5, help="rows opened (distinct clips)")
    p.add_argument("--runs", type=int, default=5, help="runs of each side of the comparison")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("--only", choices=["compare", "dataset"], help="run one part only")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    configure_environment()
    import torch

    from ..shell import build_demo, launch_kwargs, warmup
    from ..state.context import AppContext
    from ..state.dataset import DatasetStore
    from ..state.models import ModelStore, load_default, scan_checkpoints

    pipe, option = load_default(args.checkpoint, args.device)
    t, k, lam = pipe.config.num_frames, pipe.config.k, pipe.config.lam
    log.info("warm-up: %.1f s", warmup(pipe, t))
    report: dict = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__, "device": str(pipe.device),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "model_a": option.label, "t": t, "k": k, "lam": lam}
    options = []
    if args.checkpoint_b:
        b = Path(args.checkpoint_b)
        options = [o for o in scan_checkpoints(b.parent) if Path(o.source).resolve() == b.resolve()]
    store = ModelStore(pipe, option, options, device=args.device)
    settings_kw = dict(examples_dir=args.work / "no-examples", time_budget_s=60.0)

    if options and args.only != "dataset":
        ctx = AppContext(store=store, settings=AppSettings(**settings_kw),
                         export_root=Path(tempfile.mkdtemp(prefix="nsnet-bench-")))
        clip = make_clip(args.cache_dir, "bench", 1280, 720, minutes=1.0)
        warmup(store.get(options[0].label)[0], t)
        report["model_b"] = options[0].label
        report["compare"] = dict(clip=str(clip), **bench_compare(ctx, clip, options[0].label, t, k, lam, args.runs))
        print(json.dumps(report["compare"], indent=2), flush=True)

    if args.only == "compare":
        args.json and args.json.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    ann, rows = build_dataset(args.work, args.videos, args.distinct, args.checkpoint)
    settings = AppSettings(data=ann, results=rows, **settings_kw)
    start = time.perf_counter()
    dataset = DatasetStore.open(ann, results=rows)
    report["dataset"] = {"annotations": str(ann), "results": str(rows), "videos": len(dataset.records),
                         "distinct_clips": args.distinct, "load_ms": round((time.perf_counter() - start) * 1e3, 1)}
    def browser() -> dict:
        return bench_browser(build_demo(store, settings, examples=[], dataset=dataset), launch_kwargs(settings),
                             dataset.rows(), args.distinct, args.repeats, args.opens)

    return finish_report(report, None if args.no_browser else browser, args.json)


if __name__ == "__main__":
    sys.exit(main())
