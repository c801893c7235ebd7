"""Redraw the README's pictures from today's page: ``python -m app.screenshots [--out assets]`` (``make screenshots``).

1. serves the explorer as a user would (``python app.py`` in a subprocess, on a free port) and
   runs a bundled example in it -> ``screenshot.png``;
2. generates a small benchmark (``nsnet make-synthetic``), analyses it (``nsnet analyze``) and
   serves it in dataset mode (``python app.py --data ... --results ...``) -> the Dataset tab,
   ``screenshot_dataset.png``.

The pages are driven in Debian's Chromium (``/usr/bin/chromium``) through Playwright, with the
element ids and the upload wait the browser tests use (``app.bench.common``). Nothing here
imports the app itself: only its command line and its page, so the pictures show what a visitor
sees. Each PNG is written to a temporary name and renamed when complete; nothing else under
``--out`` is touched.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .bench.common import CHROMIUM, CHROMIUM_ARGS, upload_clip

log = logging.getLogger("app.screenshots")

ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1440, "height": 1000}
ANALYSIS_PNG, DATASET_PNG = "screenshot.png", "screenshot_dataset.png"
MAX_VIDEOS = 200  # the generated dataset stays small: this is a picture, not a benchmark


class ScreenshotError(RuntimeError):
    """One line saying what went wrong (the command exits 2 with it)."""


# Resolves when every output of a run is on the page (the benchmarks' condition): chart drawn,
# gallery and viewer images loaded, labels and comparison table filled; then one animation frame.
RESULT_READY_JS = """() => {
  const loaded = (sel) => { const imgs = [...document.querySelectorAll(sel)];
    return imgs.length > 0 && imgs.every((im) => im.complete && im.naturalWidth > 0); };
  const text = (sel) => (document.querySelector(sel)?.textContent ?? '');
  return !!document.querySelector('#saliency-plot .js-plotly-plot .legendtext')
    && loaded('#selected-gallery img') && loaded('#frame-image img')
    && text('#compare').includes('Dense-') && text('#labels').includes('%');
}"""

# The same, or an error toast on the page (then ``page_error`` says what it was at once).
RESULT_READY_JS_OR_ERROR = "() => (" + RESULT_READY_JS + ")() || !!document.querySelector('.toast-body.error')"

DATASET_READY_JS = """(first) => {
  const text = (sel) => (document.querySelector(sel)?.textContent ?? '');
  return text('#ds-table').includes(first) && !!document.querySelector('#ds-confusion .js-plotly-plot')
    && text('#ds-summary').includes('NSNet');
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    """The environment of the servers and commands: offline, no analytics, quiet progress."""
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("GRADIO_SERVER_PORT", None)
    return env


def run_step(name: str, argv: list[str], log_file: Path, timeout_s: float) -> None:
    """Run one command to completion; a failure is a ScreenshotError naming it and its last line."""
    log.info("running %s", " ".join(argv[1:]))
    with log_file.open("w") as out:
        try:
            code = subprocess.run(argv, cwd=ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            raise ScreenshotError(f"{name} took longer than {timeout_s:.0f} s (a busy machine? raise --timeout-s)"
                                  ) from None
    if code:
        raise ScreenshotError(f"{name} failed with exit code {code}: {last_line(log_file)}")


def last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


class Server:
    """``python app.py ARGS --port P`` in a subprocess: started at once, waited for by ``url()``."""

    def __init__(self, name: str, args: list[str], work: Path, cwd: Path = ROOT) -> None:
        self.name, self.port, self.log_file = name, free_port(), work / f"{name}.log"
        argv = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(self.port),
                "--export-dir", str(work / f"{name}-exports"), *args]
        log.info("starting %s", " ".join(argv[1:]))
        self._out = self.log_file.open("w")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=child_env(), stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def url(self, timeout_s: float) -> str:
        """The page's address once it answers (HTTP 200); a ScreenshotError if it exits or times out."""
        url, deadline = f"http://127.0.0.1:{self.port}/", time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ScreenshotError(f"app.py ({self.name}) exited with code {self.proc.returncode}: "
                                      f"{last_line(self.log_file)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return url
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise ScreenshotError(f"app.py ({self.name}) did not answer on {url} within {timeout_s:.0f} s")

    def stop(self) -> None:
        """SIGTERM (the app removes its export folder), then SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def save_png(page, selector: str | None, dest: Path) -> None:
    """A full-page (or one element's) PNG, written under a temporary name and renamed when complete."""
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        if selector:
            page.locator(selector).screenshot(path=str(tmp), type="png")
        else:
            page.screenshot(path=str(tmp), type="png", full_page=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote %s", dest)


def page_error(page) -> None:
    """A ScreenshotError with the text of the page's error toast, when it shows one."""
    toast = page.locator(".toast-body.error")
    if toast.count():
        text = " ".join(toast.first.inner_text().split())
        raise ScreenshotError(f"the page showed an error instead of the result: {text[:300]}")


def shoot_analysis(browser, url: str, clip: Path, dest: Path, timeout_ms: int) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(url)
        page.wait_for_selector("#run-button", timeout=timeout_ms)
        upload_clip(page, clip, timeout_ms)
        page.click("#run-button")
        page.wait_for_function(RESULT_READY_JS_OR_ERROR, timeout=timeout_ms, polling=200)
        page_error(page)
        page.wait_for_function("(stem) => document.querySelector('#summary').innerText.includes(stem)",
                               arg=clip.stem, timeout=timeout_ms, polling=100)
        page.wait_for_timeout(800)  # let the chart's and the gallery's transitions settle
        save_png(page, None, dest)
    finally:
        page.close()


def shoot_dataset(browser, url: str, first_id: str, dest: Path, timeout_ms: int) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(url)
        page.wait_for_selector("#run-button", timeout=timeout_ms)
        page.click("#tab-dataset-button")
        page.wait_for_function(DATASET_READY_JS, arg=first_id, timeout=timeout_ms, polling=200)
        page.wait_for_timeout(800)
        save_png(page, None, dest)
    finally:
        page.close()


def first_row_id(results: Path) -> str:
    with results.open() as f:
        return json.loads(f.readline())["id"]


def take(args: argparse.Namespace) -> list[Path]:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ScreenshotError("the playwright package is not installed (pip install -r requirements-dev.txt)") from None
    if not Path(CHROMIUM).exists():
        raise ScreenshotError(f"{CHROMIUM} not found: install Debian's Chromium (apt-get install chromium)")
    clip = Path(args.clip).resolve()
    if not clip.is_file():
        raise ScreenshotError(f"example clip {clip} not found")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # The Dataset tab prints the results file and the run's checkpoint as they were given, so
    # the dataset server runs in the work folder with relative names, and analyze records the
    # checkpoint the servers load (relative to the repository when it is inside it).
    given = args.checkpoint and (str(Path(args.checkpoint).resolve()) if Path(args.checkpoint).exists()
                                 else args.checkpoint)  # a folder, or a hub id
    served = ["--checkpoint", given] if given else []
    recorded = given or os.environ.get("NSNET_CHECKPOINT") or str(ROOT / "assets" / "demo-model")
    if Path(recorded).is_absolute() and Path(recorded).is_relative_to(ROOT):
        recorded = str(Path(recorded).relative_to(ROOT))
    timeout_ms = int(args.timeout_s * 1000)
    work = Path(tempfile.mkdtemp(prefix="nsnet-screenshots-"))
    servers: list[Server] = []
    try:
        servers.append(Server("explorer", served, work))  # loads its model while the dataset is made
        data, results = work / "dataset", work / "dataset.jsonl"
        nsnet = [sys.executable, "-m", "nsnet"]
        run_step("nsnet make-synthetic", nsnet + ["make-synthetic", str(data), "--videos", str(args.videos),
                                                  "--seed", str(args.seed), "--size", args.size, "--no-progress"],
                 work / "make-synthetic.log", args.timeout_s)
        run_step("nsnet analyze", nsnet + ["analyze", str(data), "--out", str(results), "--workers", "0",
                                           "--no-progress", "--checkpoint", recorded],
                 work / "analyze.log", args.timeout_s)
        servers.append(Server("dataset", ["--data", data.name, "--results", results.name, *served], work, cwd=work))
        written = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                shoot_analysis(browser, servers[0].url(args.timeout_s), clip, out / ANALYSIS_PNG, timeout_ms)
                written.append(out / ANALYSIS_PNG)
                shoot_dataset(browser, servers[1].url(args.timeout_s), first_row_id(results), out / DATASET_PNG,
                              timeout_ms)
                written.append(out / DATASET_PNG)
            except PlaywrightError as exc:
                raise ScreenshotError(f"the page did not show the result: {str(exc).splitlines()[0]}") from None
            finally:
                browser.close()
        return written
    finally:
        for server in servers:
            server.stop()
        if args.keep_work:
            log.info("work folder kept: %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _size(text: str) -> str:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and 32 <= int(w) <= 1920 and 32 <= int(h) <= 1080):
        raise argparse.ArgumentTypeError(f"expected WxH between 32x32 and 1920x1080, got {text!r}")
    return f"{int(w)}x{int(h)}"


def _videos(text: str) -> int:
    n = int(text)
    if not 2 <= n <= MAX_VIDEOS:
        raise argparse.ArgumentTypeError(f"--videos must be between 2 and {MAX_VIDEOS}, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.screenshots", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "assets"),
                   help=f"folder of {ANALYSIS_PNG} and {DATASET_PNG} (default: the repository's assets/)")
    p.add_argument("--clip", default=str(ROOT / "assets" / "examples" / "syn_00005.mp4"),
                   help="the clip run on the analysis page (default: a bundled example)")
    p.add_argument("--checkpoint", default=None, help="checkpoint of both pages (default: the app's default model)")
    p.add_argument("--videos", type=_videos, default=12, help="videos of the generated dataset (default 12)")
    p.add_argument("--size", type=_size, default="320x240", help="their frame size WxH (default 320x240)")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated dataset (default 7)")
    p.add_argument("--timeout-s", type=float, default=300.0, help="bound on each step (default 300 s)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary folder (server logs, dataset)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    start = time.perf_counter()
    try:
        written = take(args)
    except ScreenshotError as exc:
        print(f"app.screenshots: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(str(p) for p in written)} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
