"""Explorer latency benchmark: ``python -m app.bench [--checkpoint DIR] [--no-browser] [--json OUT]``.

Measures, on a generated 60-s 720p H.264 clip (cached under ``--cache-dir``):

1. *run*: from the Run callback's start to all outputs ready (decode, sampler,
   recognizer, dense pass, chart JSON, gallery, tables), in process; and, when
   ``/usr/bin/chromium`` exists, from clicking Run in a real browser to the full result
   on the page (chart drawn, every gallery and viewer image loaded, labels and comparison
   table filled, one more animation frame), timed inside the page; the clip is uploaded
   once before;
2. *rerank*: changing K or λ, in process (the callback, chart JSON included) and in the
   browser (from the slider's change event to the chart legend and the headline showing
   the new value, plus one animation frame, timed inside the page).

The model is the app's default (``--checkpoint``, else the bundled demo model, else
the untrained pipeline); the report says which. This is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nsnet.benchmarks.decode import make_clip

from .runtime import configure_environment
from .settings import AppSettings

log = logging.getLogger("app.bench")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]


# Clicks Run and resolves with the ms until every output of the run is on the page: the
# chart's progress overlay has shown and hidden again (all outputs arrive in one message),
# the chart is drawn, every gallery and viewer image has loaded, the comparison table and
# top-5 labels are filled; then one more animation frame so it has been painted.
RUN_JS = """() => new Promise((resolve, reject) => {
  const tracker = document.querySelector('#saliency-plot [data-testid=status-tracker]');
  let seen = false, finished = false;
  const obs = new MutationObserver(() => {
    if (!tracker.classList.contains('hide')) seen = true; else if (seen) finished = true;
  });
  obs.observe(tracker, {attributes: true, attributeFilter: ['class']});
  const imagesLoaded = (sel) => {
    const imgs = [...document.querySelectorAll(sel)];
    return imgs.length > 0 && imgs.every((im) => im.complete && im.naturalWidth > 0);
  };
  const t0 = performance.now();
  document.querySelector('#run-button').click();
  const check = () => {
    if (performance.now() - t0 > 120000) { obs.disconnect(); reject(new Error('run did not finish in 120 s')); return; }
    const done = finished && document.querySelector('#saliency-plot .js-plotly-plot .legendtext')
      && imagesLoaded('#selected-gallery img') && imagesLoaded('#frame-image img')
      && document.querySelector('#compare').textContent.includes('Dense-')
      && document.querySelector('#labels').textContent.includes('%');
    if (done) { obs.disconnect(); requestAnimationFrame(() => resolve(performance.now() - t0)); }
    else requestAnimationFrame(check);
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(xs: list[float]) -> dict:
    return {"median_ms": round(statistics.median(xs) * 1e3, 1), "min_ms": round(min(xs) * 1e3, 1),
            "max_ms": round(max(xs) * 1e3, 1), "n": len(xs)}


def bench_in_process(cb, clip: Path, t: int, k: int, lam: float, runs: int) -> dict:
    run_times, session = [], None
    stages = []
    for _ in range(runs):
        start = time.perf_counter()
        out = cb.run(str(clip), t, k, lam, None, None, False, 1, session, progress=lambda *a, **kw: None)
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
    return {"run": _stats(run_times), "run_stage_ms_median": med, "rerank": _stats(rerank_times)}


def bench_browser(demo, launch_kw: dict, clip: Path, runs: int, k_new: int) -> dict:
    """``launch_kw``: ``app.demo.launch_kwargs(settings)``; the port is chosen here."""
    from playwright.sync_api import sync_playwright  # optional: only for the browser numbers

    port = _free_port()
    demo.launch(**dict(launch_kw, server_port=port), prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    run_times, k_times, lam_times = [], [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url)
            page.wait_for_selector("#run-button", timeout=60_000)
            page.set_input_files("#clip-input input[type=file]", str(clip))
            page.wait_for_function("() => document.querySelector('#clip-input').innerText.includes('.mp4')",
                                   timeout=60_000)
            for _ in range(runs):
                run_times.append(page.evaluate(RUN_JS) / 1e3)
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
    return {"run": _stats(run_times), "rerank": _stats(k_times[1:] + lam_times[1:]),
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

    from .callbacks import AppContext, Callbacks
    from .demo import build_demo, launch_kwargs
    from .models import ModelStore, load_default, warmup

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
    cb = Callbacks(AppContext(store=store, settings=settings,
                              export_root=Path(tempfile.mkdtemp(prefix="nsnet-bench-"))))
    report = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__, "device": str(pipe.device)},
        "model": {"label": option.label, "trained": bool(pipe.config.trained),
                  "sampler": f"{pipe.config.sampler.backbone}@{pipe.config.sampler.input_size}",
                  "recognizer": f"{pipe.config.recognizer.backbone}@{pipe.config.recognizer.input_size}"},
        "clip": str(clip), "t": t, "k": k, "lam": lam,
        "in_process": bench_in_process(cb, clip, t, k, lam, args.runs),
    }
    if not args.no_browser:
        if Path(CHROMIUM).exists():
            demo = build_demo(store, settings, examples=[])
            report["browser"] = bench_browser(demo, launch_kwargs(settings), clip, args.runs, k_new=min(k + 1, t - 1))
        else:
            report["browser"] = f"skipped: {CHROMIUM} not found"
    return print_report(report, args.json)


def print_report(report: dict, path: Path | None) -> int:
    """Print a benchmark's report as JSON, also write it to ``path`` when given; the exit code (0)."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
