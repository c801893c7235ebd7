"""Explorer latency benchmark: ``python -m app.bench [--checkpoint DIR] [--no-browser] [--json OUT]``.

Measures, on a generated 60-s 720p H.264 clip (cached under ``--cache-dir``):

1. *run*, two moments of one Run: the *first result* (NSNet's own: the three curves, the chosen
   frames, the labels, the cost) and the *full result* (after the dense pass: the comparison
   table and the teacher curve too). In process, from the Run callback's start to its first
   and its last step (decode, networks, chart JSON, gallery, tables); and, when
   ``/usr/bin/chromium`` exists, from clicking Run in a real browser until the page shows
   each (first: the chart redrawn, every gallery and viewer image of this run loaded, the
   top-5 labels filled; full: the comparison table filled and the run finished; plus one
   animation frame), timed inside the page; the clip is uploaded once before;
2. *rerank*: changing K or λ, in process (the callback, chart JSON included) and in the
   browser (from the slider's change event to the chart legend and the headline showing
   the new value, plus one animation frame, timed inside the page).

The model is the app's default (``--checkpoint``, else the bundled demo model, else
the untrained pipeline); the report says which, and the machine's load average. This is
a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nsnet.benchmarks.decode import make_clip

from ..server.runtime import configure_environment
from ..server.settings import AppSettings
from .common import CHROMIUM, CHROMIUM_ARGS, CLEARED_JS, finish_report, upload_clip

log = logging.getLogger("app.bench")

# Clicks Run and resolves with [first, full] ms: *first* when NSNet's result of this run is on the
# page (the headline names this run's clip, the chart redrawn since the click, every gallery and
# viewer image loaded, the top-5 labels filled), *full* when the run has finished (the chart's
# progress overlay shown and hidden again), the comparison table is filled and the teacher curve
# drawn; each plus one animation frame so it has been painted. The teacher box stays ticked, so
# the chart on the page before a run (with the last run's teacher curve) always differs from the
# run's first chart (NSNet's, no teacher yet); runs alternate between two names of the clip, so
# each run's headline differs from the last one's.
RUN_JS = """(name) => new Promise((resolve, reject) => {
  const host = document.querySelector('#saliency-plot');
  const tracker = host.querySelector('[data-testid=status-tracker]');
  const oldPlot = host.querySelector('.js-plotly-plot');
  let drawn = false, seen = false, finished = false, first = null;
  const plotObs = new MutationObserver((records) => {
    if (records.some((r) => !tracker.contains(r.target))) drawn = true;
  });
  plotObs.observe(host, {subtree: true, childList: true, attributes: true, characterData: true});
  const obs = new MutationObserver(() => {
    if (!tracker.classList.contains('hide')) seen = true; else if (seen) finished = true;
  });
  obs.observe(tracker, {attributes: true, attributeFilter: ['class']});
  const loaded = (sel) => {
    const imgs = [...document.querySelectorAll(sel)];
    return imgs.length > 0 && imgs.every((im) => im.complete && im.naturalWidth > 0);
  };
  const t0 = performance.now();
  document.querySelector('#run-button').click();
  const check = () => {
    if (performance.now() - t0 > 120000) {
      obs.disconnect(); plotObs.disconnect(); reject(new Error('run did not finish in 120 s')); return;
    }
    const plot = host.querySelector('.js-plotly-plot');
    const ours = document.querySelector('#summary').innerText.includes(name);
    if (first === null && ours && (drawn || plot !== oldPlot) && plot && plot.querySelector('.legendtext')
        && loaded('#selected-gallery img') && loaded('#frame-image img')
        && document.querySelector('#labels').textContent.includes('%')) {
      first = -1;
      requestAnimationFrame(() => { first = performance.now() - t0; });
    }
    if (first > 0 && finished && document.querySelector('#compare').textContent.includes('Dense-')
        && [...host.querySelectorAll('.legendtext')].some((e) => e.textContent.includes('teacher'))) {
      obs.disconnect(); plotObs.disconnect();
      requestAnimationFrame(() => resolve([first, performance.now() - t0]));
    } else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})"""


# Sets a slider's number box (K or λ) and resolves with the ms until the chart's legend and
# the headline show the new value, plus one animation frame (timed inside the page).
SLIDER_JS = """([slider, value, legend, headline]) => new Promise((resolve, reject) => {
  const input = document.querySelector(slider + ' input[type=number]');
  const t0 = performance.now();
  input.value = String(value);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  input.dispatchEvent(new Event('change', {bubbles: true}));
  const check = () => {
    if (performance.now() - t0 > 30000) { reject(new Error('the chart did not show ' + legend)); return; }
    const done = [...document.querySelectorAll('#saliency-plot .legendtext')].some((e) => e.textContent.includes(legend))
      && document.querySelector('#summary').textContent.includes(headline);
    if (done) requestAnimationFrame(() => resolve(performance.now() - t0)); else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})"""


def _stats(xs: list[float]) -> dict:
    return {"median_ms": round(statistics.median(xs) * 1e3, 1), "min_ms": round(min(xs) * 1e3, 1),
            "max_ms": round(max(xs) * 1e3, 1), "n": len(xs)}


def bench_in_process(cb, clip: Path, t: int, k: int, lam: float, runs: int) -> dict:
    """``cb``: an ``app.tabs.analyze.Analysis``. Its Run callback's first and last step, then K / λ moves."""
    first_times, run_times, session = [], [], None
    stages = []
    for _ in range(runs):
        start = time.perf_counter()
        steps = cb.run(str(clip), t, k, lam, None, None, False, 1, session, progress=lambda *a, **kw: None)
        out = next(steps)
        first_times.append(time.perf_counter() - start)
        for more in steps:
            out.update(more)
        run_times.append(time.perf_counter() - start)
        session = out["session"]
        stages.append(dict(session.base.timings_ms, dense_recognizer=session.base.dense_recognizer_ms))
    rerank_times = []
    for i in range(20):
        kk, ll = 1 + (i % t), round((i * 0.05) % 1.0, 2)
        start = time.perf_counter()
        cb.rerank(session, kk, ll, i % 2 == 0, 1)
        rerank_times.append(time.perf_counter() - start)
    med = {key: round(statistics.median(s[key] for s in stages), 1) for key in stages[0]}
    return {"first": _stats(first_times), "run": _stats(run_times), "run_stage_ms_median": med,
            "rerank": _stats(rerank_times)}


def bench_browser(demo, launch_kw: dict, clip: Path, runs: int, k_new: int) -> dict:
    """``launch_kw``: ``app.shell.launch_kwargs(settings)``; the server picks a free port."""
    from playwright.sync_api import sync_playwright  # optional: only for the browser numbers

    twin = clip.with_name(f"{clip.stem}-twin{clip.suffix}")   # the same video under a second name
    if not twin.exists():
        shutil.copyfile(clip, twin)
    names = (clip, twin)
    demo.launch(**dict(launch_kw, server_port=None), prevent_thread_lock=True, quiet=True)
    url = demo.local_url
    first_times, run_times, k_times, lam_times = [], [], [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#run-button", timeout=60_000)
            page.get_by_label("Show teacher curve").check()
            for i in range(runs):   # two names of the clip, alternately: each run's headline is new
                path = names[i % 2]
                if i:
                    page.locator("#clip-input button[aria-label='Clear']").first.click()
                    page.wait_for_function(CLEARED_JS, arg=names[(i - 1) % 2].name, timeout=60_000, polling=100)
                upload_clip(page, path, timeout_ms=60_000)
                first, full = page.evaluate(RUN_JS, path.name)
                first_times.append(first / 1e3)
                run_times.append(full / 1e3)
                time.sleep(0.5)
            # K and λ changes, alternating; the first of each is dropped (one-off frontend work)
            for i in range(8):
                k = k_new + (i % 2)
                k_times.append(page.evaluate(SLIDER_JS, ["#k-slider", k, f"K={k})", f"K={k},"]) / 1e3)
                time.sleep(0.4)
            for i in range(8):
                lam = (0.3, 0.7)[i % 2]
                lam_times.append(page.evaluate(SLIDER_JS, ["#lam-slider", lam, f"λ={lam:.2f})", f"λ={lam:.2f}"]) / 1e3)
                time.sleep(0.4)
            browser.close()
    finally:
        demo.close()
    return {"first": _stats(first_times), "run": _stats(run_times), "rerank": _stats(k_times[1:] + lam_times[1:]),
            "rerank_k": _stats(k_times[1:]), "rerank_lam": _stats(lam_times[1:])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="checkpoint folder (default: bundled demo, else untrained)")
    p.add_argument("--clip", type=Path, help="use this clip instead of the generated 60-s 720p one")
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "nsnet-bench-decode")
    p.add_argument("--frames", type=int, default=None, help="T (default: the model's)")
    p.add_argument("--k", type=int, default=None, help="K (default: the model's)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-browser", action="store_true", help="skip the Playwright/Chromium measurement")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    configure_environment()
    # Imported only now, after configure_environment() (Gradio brings in huggingface_hub,
    # which reads HF_HUB_DISABLE_TELEMETRY when first imported), and so --help stays quick.
    import torch

    from ..shell import build_demo, launch_kwargs, warmup
    from ..state.context import AppContext
    from ..state.models import ModelStore, load_default
    from ..tabs.analyze import Analysis

    # the same generated 60-s 1280x720 30-fps H.264 clip as `python -m nsnet bench pipeline`
    clip = args.clip or make_clip(args.cache_dir, "bench", 1280, 720, minutes=1.0)
    pipe, option = load_default(args.checkpoint, args.device)
    t = args.frames or pipe.config.num_frames
    k = args.k or min(pipe.config.k, t)
    lam = pipe.config.lam
    log.info("warm-up: %.1f s", warmup(pipe, t))
    settings = AppSettings(examples_dir=args.cache_dir / "no-examples", max_frames=max(64, t),
                           time_budget_s=60.0)
    store = ModelStore(pipe, option, device=args.device)
    cb = Analysis(AppContext(store=store, settings=settings,
                             export_root=Path(tempfile.mkdtemp(prefix="nsnet-bench-"))))
    report = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__, "device": str(pipe.device),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "model": {"label": option.label, "trained": bool(pipe.config.trained),
                  "sampler": f"{pipe.config.sampler.backbone}@{pipe.config.sampler.input_size}",
                  "recognizer": f"{pipe.config.recognizer.backbone}@{pipe.config.recognizer.input_size}"},
        "clip": str(clip), "t": t, "k": k, "lam": lam,
        "in_process": bench_in_process(cb, clip, t, k, lam, args.runs),
    }
    def browser() -> dict:
        return bench_browser(build_demo(store, settings, examples=[]), launch_kwargs(settings), clip, args.runs,
                             k_new=min(k + 1, t - 1))

    return finish_report(report, None if args.no_browser else browser, args.json)


if __name__ == "__main__":
    sys.exit(main())
