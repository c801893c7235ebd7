"""The docs hold: every relative link resolves, every page is reachable, every documented command runs.

* Links: every relative link and image in ``README.md`` and ``docs/*.md`` points at a file of
  the repository, and every ``#anchor`` at a heading (GitHub's slugs) of the page it names;
  every page of ``docs/`` is linked from the README.
* Commands: every ``nsnet ...``, ``python app.py ...``, ``python -m app.<module> ...``,
  ``make ...`` and ``torchrun ...`` line of a shell code block is parsed into its program
  (``nsnet eval``, ``nsnet bench decode``, ``make run``, ...) and flags. Each program must have
  an entry in ``RUNS`` below, which runs it on tiny inputs in a subprocess with a timeout, and
  each documented flag must be passed by one of that program's entries; or the program is in
  ``NOT_RUN`` with the reason. Documenting a command or a flag therefore means adding it here,
  and the failure message says what to add.

The Markdown and command parsing lives in ``docs_md.py``.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from docs_md import (LINK, PAGES, README, ROOT, anchors, documented_commands, fenced_blocks, is_external,
                     links, parse_command, resolve, shell_lines, slug)

EXAMPLE = ROOT / "assets" / "examples" / "syn_00009.mp4"  # the smallest bundled example (8.6 s, 320x240)
CHROMIUM = "/usr/bin/chromium"

# ------------------------------------------------------------------------------------ links


def test_pages_exist_and_readme_is_a_card():
    assert README.is_file() and len(PAGES) >= 7, PAGES
    text = README.read_text()
    assert text.startswith("---\n") and "app_file: app.py" in text.split("---")[1]  # the Space's front matter
    assert len(text.splitlines()) <= 250, "README.md is the Space's card: keep it to 250 lines, move detail to docs/"


def test_every_relative_link_resolves():
    problems = []
    for page in PAGES:
        for n, target in links(page):
            if is_external(target):
                continue
            path, anchor = resolve(page, target)
            where = f"{page.relative_to(ROOT)}:{n}: {target}"
            if not path.is_relative_to(ROOT):
                problems.append(f"{where}: points outside the repository")
            elif not path.exists():
                problems.append(f"{where}: {path.relative_to(ROOT)} does not exist")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                problems.append(f"{where}: no heading of {path.relative_to(ROOT)} has the anchor #{anchor}")
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {resolve(README, t)[0] for _, t in links(README) if not is_external(t)}
    unlinked = [p.relative_to(ROOT) for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, f"pages not linked from README.md (add them to its Documentation table): {unlinked}"


def test_readme_pictures_are_current_pngs():
    for name in ("screenshot.png", "screenshot_dataset.png"):
        assert f"assets/{name}" in README.read_text(), name
        assert (ROOT / "assets" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_slugs_and_links_follow_github():
    assert slug("`eval` agrees with it exactly") == "eval-agrees-with-it-exactly"
    assert slug("Security: what a page serves") == "security-what-a-page-serves"
    assert slug("Speed and memory (CPU, 2 cores)") == "speed-and-memory-cpu-2-cores"
    line = "see [a](docs/x.md#y), ![pic](assets/p.png \"t\"), `[not](a link)` and [web](https://e.org)"
    assert [t for t in LINK.findall(re.sub(r"`[^`]*`", "``", line))] == ["docs/x.md#y", "assets/p.png",
                                                                          "https://e.org"]


# ------------------------------------------------------------------------------------ commands


def test_command_parser():
    assert parse_command("nsnet bench decode|pipeline|analyze") == [(f"nsnet bench {k}", frozenset())
                                                                    for k in ("decode", "pipeline", "analyze")]
    assert parse_command("nsnet predict VIDEO [--checkpoint DIR] [--device auto|cpu|cuda] --json  # a --comment") == [
        ("nsnet predict", frozenset({"--checkpoint", "--device", "--json"}))]
    assert parse_command("torchrun --nproc_per_node 2 -m nsnet train --data D --out=C") == [
        ("torchrun", frozenset({"--nproc_per_node"})), ("nsnet train", frozenset({"--data", "--out"}))]
    assert parse_command("NSNET_X=1 .venv/bin/python -m app.bench --runs 5") == [("python -m app.bench",
                                                                                 frozenset({"--runs"}))]
    assert parse_command("python -m nsnet eval --k 2") == [("nsnet eval", frozenset({"--k"}))]
    assert parse_command("make run") == [("make run", frozenset())]
    assert parse_command("apt-get install chromium") == [] and parse_command("# nsnet predict") == []
    text = "x\n```bash\nnsnet eval --data D \\\n  --json J   # c\n```\n```python\nnsnet = 1\n```\n"
    assert shell_lines(text) == [(3, "nsnet eval --data D    --json J   # c")]


def test_the_docs_show_the_quick_start_and_every_command():
    programs = {c.program for c in documented_commands()}
    for expected in ("make run", "make test", "nsnet predict", "nsnet make-synthetic", "nsnet train", "nsnet eval",
                     "nsnet analyze", "nsnet bench decode", "nsnet bench pipeline", "nsnet bench analyze",
                     "python app.py"):
        assert expected in programs, f"{expected} is no longer shown in any code block of the docs"
    readme = {c.program for c in documented_commands() if c.where.startswith("README.md")}
    assert {"make run", "make test"} <= readme


# The programs the suite does not run, and why. Their flags are not checked.
NOT_RUN = {
    "make test": "runs this suite (it would run itself); `make -n test` is checked below",
    "make demo-model": "9 min 41 s on 2 cores; it runs `nsnet demo-model --out assets`, which has a tiny entry",
    "make bench": "= `nsnet bench pipeline` with its defaults (a generated 60-s 720p clip), which has a tiny entry",
    "make screenshots": "rewrites assets/; `python -m app.screenshots --out TMP` (its command) has a tiny entry",
    "torchrun": "multi-process / multi-node launcher (GPU clusters in these examples); the flags of the nsnet "
                "command it launches are checked, and tests/test_train_scale.py and tests/test_analyze.py run "
                "two gloo processes",
    "python -m pytest": "the test suite itself",
    "make mutate": "minutes of mutation testing (tests/mutate.py); not part of `make test`",
}

@dataclass
class Run:
    """One command run on tiny inputs. ``argv`` starts with the program as the docs write it
    (``nsnet``, ``python``, ``make``); placeholders: {tmp} a module temp folder, {ds} a 4-video
    benchmark (the make-synthetic entry), {ex} a bundled example clip, {port} 0 (the server picks a free port),
    {config} a tiny training config (JSON)."""

    argv: list[str]
    check: Callable[..., None] | None = None  # (CompletedProcess, tmp); for a server (url, tmp)
    codes: tuple[int, ...] = (0,)
    timeout: float = 300
    serve: bool = False       # a server: wait until it answers, run ``check`` while it is up, then stop it
    env: dict | None = None
    needs: tuple[str, ...] = ()
    slow: bool = True
    browser: bool = False
    known_failure: tuple[str, str] | None = None  # (text in the output, reason): xfail while it fails like that
    requires: Callable[[], str | None] | None = None  # a reason to skip (something this machine lacks), or None


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_synthetic(proc, tmp):
    ann = _json(tmp / "synth" / "annotations.json")["database"]
    assert len(ann) == 4 and len(list((tmp / "synth").rglob("*.mp4"))) == 4
    assert len((tmp / "synth" / "classes.txt").read_text().split()) == 12


def check_predict(proc, tmp):
    out = json.loads(proc.stdout)
    assert len(out["timestamps_s"]) == 8 and len(out["selected"]) == 2 and len(out["labels"]) == 5
    assert out["selected"] == sorted(out["selected"]) and 0 < out["gflops"]["total"] < out["gflops"]["dense"] * 2


def check_refused_remap(proc, tmp):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "/home/me/swin" in lines[0] and "Traceback" not in proc.stderr, proc.stderr


def check_eval(proc, tmp):
    res = _json(tmp / "eval.json")
    assert res["num_videos"] == 4 and res["k"] == 2
    assert set(res["methods"]) >= {"dense", "uniform", "random", "frame_only", "attention_only", "nsnet", "oracle"}
    assert len(_jsonl(tmp / "eval.jsonl")) == 4 and (tmp / "curve.html").stat().st_size > 1000


def check_analyze(proc, tmp):
    rows = _jsonl(tmp / "analyze.jsonl")
    assert len(rows) == 4 and all(len(r["fused"]) == 8 and len(r["selected"]) == 2 for r in rows)
    assert _json(tmp / "analyze.summary.json")["counts"]["videos"] == 4


def check_resumed(proc, tmp):
    rows = _jsonl(tmp / "analyze.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(_json(tmp / "synth" / "annotations.json")["database"])


def check_mixed(proc, tmp):
    rows = _jsonl(tmp / "mixed.jsonl")
    assert len(rows) == 5 and EXAMPLE.stem in {r["id"] for r in rows}


def check_bench_json(name: str, key: str):
    def check(proc, tmp):
        assert key in _json(tmp / name), proc.stdout[-2000:]
    return check


def check_train(proc, tmp):
    cfg = _json(tmp / "ckpt" / "config.json")
    assert (tmp / "ckpt" / "model.safetensors").is_file() and cfg["meta"]["train"]["pseudo_rule"] == "relative"


def check_demo_model(proc, tmp):
    model = tmp / "demo" / "demo-model"
    for name in ("config.json", "model.safetensors", "eval_validation.json", "eval_heldout.json", "RESULTS.md"):
        assert (model / name).is_file(), name


def check_export(proc, tmp):
    stem = EXAMPLE.stem
    for suffix in (".png", ".svg", ".highlights.mp4", ".json"):
        assert (tmp / "export" / f"{stem}{suffix}").stat().st_size > 0, suffix
    assert len(_json(tmp / "export" / f"{stem}.json")["selected"]) == 2


def needs_command(name: str) -> Callable[[], str | None]:
    def check() -> str | None:
        from nsnet.cli import COMMANDS
        from nsnet.cli.bench import SUBCOMMANDS

        program, _, sub = name.partition(" ")
        known = program in COMMANDS and (not sub or sub in SUBCOMMANDS)
        return None if known else f"`nsnet {name}` is not in this tree yet"
    return check


def needs_kaleido() -> str | None:
    reason = needs_command("export")()
    if reason:
        return reason
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return "kaleido is not installed (nsnet export renders its chart with it)"
    return None if shutil.which("chromium") or os.environ.get("BROWSER_PATH") else "no Chromium for kaleido"


def check_page_and_readme_api(url: str, tmp: Path) -> None:
    """The page answers, and the README's API example runs against it."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200 and "NSNet" in resp.read().decode("utf-8", "replace")
    block = next(b for lang, _, b in fenced_blocks(README.read_text()) if lang == "python"
                 and any("gradio_client" in line for line in b))
    code = "\n".join(block).replace("http://127.0.0.1:7860/", url)
    ran = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(), capture_output=True,
                         text=True, timeout=180)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "'label'" in ran.stdout


def check_screenshots(proc, tmp):
    from PIL import Image

    pictures = []
    for name in ("screenshot.png", "screenshot_dataset.png"):
        with Image.open(tmp / "shots" / name) as im:
            im.load()
            assert im.width >= 1000 and im.height >= 800, (name, im.size)
            small = im.convert("RGB").resize((im.width // 8, im.height // 8))
            assert len(set(small.getdata())) > 200, f"{name} is nearly blank"  # text, charts and frames
            pictures.append(small)
    assert pictures[0].size != pictures[1].size or list(pictures[0].getdata()) != list(pictures[1].getdata())
    assert sorted(p.name for p in (tmp / "shots").iterdir()) == ["screenshot.png", "screenshot_dataset.png"]


ANALYZE_FLAGS = ["--frames", "8", "--k", "2", "--lam", "0.3", "--seed", "0", "--batch-size", "2", "--workers", "0",
                 "--device", "cpu", "--precision", "fp32", "--max-videos", "4", "--time-budget-s", "60",
                 "--no-progress"]

RUNS: dict[str, Run] = {
    "make-synthetic": Run(["nsnet", "make-synthetic", "{ds}", "--videos", "4", "--seed", "3", "--classes", "12",
                           "--size", "96x72", "--no-progress"], check_synthetic, slow=False),
    "predict": Run(["nsnet", "predict", "{ex}", "--checkpoint", "assets/demo-model", "--frames", "8", "--k", "2",
                    "--lam", "0.3", "--device", "cpu", "--time-budget-s", "60", "--json"], check_predict),
    "predict --backbone-path": Run(["nsnet", "predict", "{ex}", "--frames", "4", "--k", "1",
                                    "--backbone-path", "/home/me/swin=/data/swin"], check_refused_remap, codes=(2,)),
    "eval": Run(["nsnet", "eval", "--data", "{ds}", "--video-root", "{ds}", "--checkpoint", "assets/demo-model",
                 "--subset", "all", "--k", "2", "--lam", "0.7", "--seed", "1", "--max-videos", "4", "--device", "cpu",
                 "--cache-dir", "{tmp}/cache", "--json", "{tmp}/eval.json", "--plot", "{tmp}/curve.html",
                 "--plot-js", "inline", "--per-video", "{tmp}/eval.jsonl", "--precision", "fp32", "--no-progress"],
                check_eval, needs=("make-synthetic",)),
    "analyze": Run(["nsnet", "analyze", "{ds}/annotations.json", "--video-root", "{ds}", "--subset", "all",
                    "--checkpoint", "assets/demo-model", "--out", "{tmp}/analyze.jsonl", *ANALYZE_FLAGS],
                   check_analyze, needs=("make-synthetic",)),
    "analyze --resume": Run(["nsnet", "analyze", "{ds}/annotations.json", "--video-root", "{ds}", "--subset", "all",
                             "--out", "{tmp}/analyze.jsonl", "--resume", *ANALYZE_FLAGS], check_resumed,
                            needs=("analyze",)),
    "analyze folder + file": Run(["nsnet", "analyze", "{ds}/videos", "{ex}", "--out", "{tmp}/mixed.jsonl",
                                  "--frames", "4", "--k", "1", "--workers", "0", "--no-progress"], check_mixed,
                                 needs=("make-synthetic",)),
    # tiny clips cannot meet the decode targets: exit 1 with the PASS/FAIL lines is a completed run
    "bench decode": Run(["nsnet", "bench", "decode", "--workdir", "{tmp}/bench-decode", "--height", "144",
                         "--short-min", "0.05", "--long-min", "0.1", "--repeats", "1", "--skip-8k", "--frames", "4",
                         "--size", "64", "--json", "{tmp}/bench-decode.json"],
                        check_bench_json("bench-decode.json", "rows"), codes=(0, 1)),
    "bench pipeline": Run(["nsnet", "bench", "pipeline", "--video", "{ex}", "--repeats", "1", "--batch", "2",
                           "--frames", "8", "--k", "2", "--device", "cpu", "--json", "{tmp}/bench-pipeline.json"]),
    "bench analyze": Run(["nsnet", "bench", "analyze", "--data", "{ds}", "--workdir", "{tmp}/bench-analyze",
                          "--max-videos", "2", "--rounds", "1", "--precision", "fp32", "bf16", "--loop-precision",
                          "bf16", "--batch-size", "2", "--workers", "0", "--frames", "4", "--k", "1", "--device", "cpu",
                          "--json", "{tmp}/bench-analyze.json"], needs=("make-synthetic",)),
    "train": Run(["nsnet", "train", "--config", "{config}", "--data", "{ds}/annotations.json", "--video-root", "{ds}",
                  "--out", "{tmp}/ckpt", "--cache-dir", "{tmp}/cache-train", "--subset", "all", "--seed", "5",
                  "--pseudo-rule", "relative", "--resume", "--finetune", "--batch-size", "2", "--grad-accum", "2",
                  "--frame-chunk", "4", "--augment", "--state-every-min", "15", "--val-subset", "none",
                  "--device", "cpu", "--no-progress"], check_train, needs=("make-synthetic",)),
    "ablate": Run(["nsnet", "ablate", "--data", "{ds}", "--val-subset", "all", "--seeds", "0", "--config", "{config}",
                   "--cache-dir", "{tmp}/cache-ablate", "--json", "{tmp}/ablate.json"],
                  check_bench_json("ablate.json", "variants"), needs=("make-synthetic",)),
    "demo-model": Run(["nsnet", "demo-model", "--out", "{tmp}/demo", "--workdir", "{tmp}/demo-work", "--videos", "6",
                       "--heldout-videos", "3", "--train-config", "{config}", "--device", "cpu"],
                      check_demo_model, timeout=600),
    "export": Run(["nsnet", "export", "{ex}", "--out", "{tmp}/export", "--frames", "8", "--k", "2", "--lam", "0.3",
                   "--window-s", "0.5", "--clip-size", "96", "--device", "cpu", "--time-budget-s", "60"],
                  check_export, browser=True, requires=needs_kaleido),
    "bench gpu --dry-run": Run(["nsnet", "bench", "gpu", "--dry-run", "--data", "{ds}", "--workdir", "{tmp}/bench-gpu",
                                "--json", "{tmp}/bench-gpu.json"], requires=needs_command("bench gpu"),
                               needs=("make-synthetic",)),
    "python app.py": Run(["python", "app.py", "--host", "127.0.0.1", "--port", "{port}", "--checkpoint",
                          "assets/demo-model", "--models-dir", "{tmp}/models", "--examples-dir", "assets/examples",
                          "--device", "cpu", "--max-upload-mb", "50", "--time-budget-s", "10", "--max-frames", "32",
                          "--max-frame-pixels", "1920x1080", "--concurrency", "1", "--max-queue", "8",
                          "--export-dir", "{tmp}/exports", "--export-mb", "100", "--export-max-age-min", "30",
                          "--session-frames-mb", "256", "--allow-hub", "--hub-allow", "myorg/*", "--hub-max-mb", "500",
                          "--data", "{ds}", "--video-root", "{ds}", "--subset", "all", "--results",
                          "{tmp}/analyze.jsonl", "--compare-results", "{tmp}/analyze.jsonl", "--verbose"],
                         check_page_and_readme_api, serve=True, needs=("analyze",)),
    "make run": Run(["make", "run"], check_page_and_readme_api, serve=True, env={"GRADIO_SERVER_PORT": "{port}"}),
    "python -m app.bench": Run(["python", "-m", "app.bench", "--clip", "{ex}", "--runs", "1", "--no-browser",
                                "--frames", "8", "--k", "2", "--device", "cpu", "--json", "{tmp}/app-bench.json"],
                               check_bench_json("app-bench.json", "in_process")),
    "python -m app.bench.dataset": Run(["python", "-m", "app.bench.dataset", "--checkpoint-b", "assets/demo-model",
                                        "--videos", "4", "--distinct", "2", "--work", "{tmp}/bench-dataset",
                                        "--runs", "1", "--repeats", "1", "--opens", "1", "--only", "dataset",
                                        "--no-browser", "--device", "cpu", "--json", "{tmp}/app-bench-dataset.json"]),
    "python -m app.screenshots": Run(["python", "-m", "app.screenshots", "--out", "{tmp}/shots", "--videos", "3",
                                      "--size", "160x120", "--timeout-s", "400"], check_screenshots, timeout=900,
                                     browser=True),
}


def _programs_of(run: Run) -> list[tuple[str, frozenset]]:
    return parse_command(shlex.join(run.argv))


def covered() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for run in RUNS.values():
        for program, flags in _programs_of(run):
            out.setdefault(program, set()).update(flags)
    return out


def test_every_documented_command_and_flag_is_run_by_the_suite():
    have, missing = covered(), []
    for cmd in documented_commands():
        if cmd.program in NOT_RUN:
            continue
        if cmd.program not in have:
            missing.append(f"{cmd.where}: `{cmd.program}` has no entry in RUNS (tests/test_docs.py): add one that "
                           f"runs it on tiny inputs, or list it in NOT_RUN with the reason")
            continue
        for flag in sorted(cmd.flags - have[cmd.program]):
            missing.append(f"{cmd.where}: `{cmd.program} {flag}` is documented, but no RUNS entry of "
                           f"`{cmd.program}` passes {flag}: add it to one (tests/test_docs.py)")
    assert not missing, "documented commands the suite does not run:\n" + "\n".join(missing)


def test_documented_make_targets_exist():
    targets = sorted({c.program.split(" ", 1)[1] for c in documented_commands() if c.program.startswith("make ")})
    assert "run" in targets and "test" in targets
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, f"make {target}: {dry.stderr.strip()}"
    assert "pytest" in subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True,
                                      timeout=60).stdout


# ------------------------------------------------------------------------------------ running them


def child_env(extra: dict | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NSNET_", "GRADIO_SERVER_"))}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", **(extra or {}))
    return env


def program_argv(argv: list[str]) -> list[str]:
    if argv[0] == "nsnet":
        script = Path(sys.executable).with_name("nsnet")
        return ([str(script)] if script.is_file() else [sys.executable, "-m", "nsnet"]) + argv[1:]
    if argv[0] == "python":
        return [sys.executable] + argv[1:]
    return argv


class Workspace:
    """The module's temp folder and the runs already done (each entry runs once)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.done = tmp, {}
        (tmp / "models").mkdir()
        tiny = dict(sampler_backbone="efficientnet_lite0", recognizer_backbone="efficientnet_lite0",
                    backbones_pretrained=False, sampler_size=64, recognizer_size=64, hidden_dim=16, num_frames=6,
                    k=2, batch_size=2, recognizer_epochs=1, sampler_epochs=1,
                    pseudo_rule="relative")  # a tiny random teacher is never 50% sure: threshold would mark no frame
        (tmp / "tiny.json").write_text(json.dumps(tiny))

    def fill(self, text: str, port: int) -> str:
        return text.format(tmp=self.tmp, ds=self.tmp / "synth", ex=EXAMPLE, port=port, config=self.tmp / "tiny.json")

    def run(self, name: str) -> subprocess.CompletedProcess:
        if name in self.done:
            return self.done[name]
        entry = RUNS[name]
        for dep in entry.needs:
            dep_proc = self.run(dep)
            assert dep_proc.returncode in RUNS[dep].codes, f"{dep} (needed by {name}) failed"
        port = 0   # a server picks its own free port and logs its URL (no probe-then-bind race)
        argv = program_argv([self.fill(a, port) for a in entry.argv])
        env = child_env({k: self.fill(v, port) for k, v in (entry.env or {}).items()})
        proc = (serve(argv, env, port, entry, self.tmp) if entry.serve else
                subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=entry.timeout))
        self.done[name] = proc
        return proc


def serve(argv, env, port, entry: Run, tmp: Path) -> subprocess.CompletedProcess:
    """Start a server, wait until it answers, run the entry's check while it is up, stop it."""
    log = tmp / f"server-{re.sub(r'[^A-Za-z0-9]+', '-', ' '.join(argv[:3]))}-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        url, deadline = f"http://127.0.0.1:{port}/" if port else "", time.monotonic() + entry.timeout
        try:
            while True:
                assert server.poll() is None, f"{argv[:3]} exited with {server.returncode}: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"{argv[:3]} did not answer within {entry.timeout} s"
                if not url:   # the port the server chose, from its log
                    found = re.search(r"Running on local URL:\s*(http://[\w.:-]+)", log.read_text())
                    if not found:
                        time.sleep(0.5)
                        continue
                    url = found[1].rstrip("/") + "/"
                try:
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    time.sleep(0.5)
            if entry.check:
                entry.check(url, tmp)
            proc = subprocess.CompletedProcess(argv, 0, log.read_text(), "")
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
    return proc


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("docs-commands"))


def _marks(run: Run) -> list:
    return ([pytest.mark.slow] if run.slow else []) + ([pytest.mark.browser] if run.browser else [])


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(r), id=n) for n, r in RUNS.items()])
def test_documented_command_runs(name, workspace):
    entry = RUNS[name]
    if entry.browser and not (Path(CHROMIUM).exists() and shutil.which("chromium")):
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    if entry.browser and entry.argv[:3] == ["python", "-m", "app.screenshots"]:
        pytest.importorskip("playwright.sync_api")
    reason = entry.requires() if entry.requires else None
    if reason:
        pytest.skip(reason)
    if entry.argv[0] == "make":
        venv = ROOT / ".venv"
        if Path(sys.prefix).resolve() != venv.resolve():
            pytest.skip("make uses .venv; this suite runs in another environment")
        if subprocess.run(["make", "-q", ".venv/.runtime"], cwd=ROOT, timeout=60).returncode != 0:
            pytest.skip(".venv is older than requirements.txt: make would reinstall it (network)")
    proc = workspace.run(name)
    output = f"{proc.stdout}\n{proc.stderr}"
    if entry.known_failure and proc.returncode not in entry.codes and entry.known_failure[0] in output:
        pytest.xfail(entry.known_failure[1])
    command = shlex.join(map(str, proc.args))
    assert proc.returncode in entry.codes, f"{command}\nexit {proc.returncode}\n{output[-3000:]}"
    if entry.check and not entry.serve:
        entry.check(proc, workspace.tmp)


@pytest.mark.slow
def test_readme_library_example_runs():
    block = next(b for lang, _, b in fenced_blocks(README.read_text()) if lang == "python"
                 and any("nsnet.inference" in line for line in b))
    ran = subprocess.run([sys.executable, "-c", "\n".join(block)], cwd=ROOT, env=child_env(), capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "'label'" in ran.stdout and "[" in ran.stdout
