"""Hostile input against the explorer hosted in public: no file, form field or checkpoint takes it down.

* the running app (``python app.py`` in a subprocess, driven with ``gradio_client``): an
  aspect-ratio bomb (H.264, 4096x2), a GIF canvas bomb (16000x16000 logical screen), server
  paths in the hub box; one-line errors, peak RSS under 3 GB, the next request answered;
  the export folder cleaned at start-up and at shutdown (SIGTERM);
* Hub ids (``app.server.hub``, fetched by the library's resolver): syntax only, no filesystem
  access, one refusal for every path, the allow-list, backbones of a visitor's checkpoint;
* the export area (``app.server.storage``): bounded by size and age, sessions removed when they end;
* error text (``app.tabs.errors``): plain for the API, escaped for the page, bounded, no server path;
* ``/analyze``'s optional ``checkpoint`` input and the resource ceilings of ``app.server.settings``.

Every test sets up what it touches: the test that stops a server starts its own; the app picks
its own free port (``--port 0``) and the test reads it from the log.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

import gradio as gr  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from clips import write_clip  # noqa: E402
from test_app_client import K, T, check_result, make_examples, run_all, tiny_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PEAK_RSS_LIMIT = 3_000_000_000        # bytes: "under 3 GB" for the whole server process
WATCHDOG_RSS = 6 * 2**30              # the test kills the server past this (protects the machine)
HUB_PATHS = ("/etc", "/nonexistent-nsnet-folder", "../x", "~", "~/x", "./assets", str(ROOT / "assets" / "demo-model"),
             str(ROOT / "assets"), "C:\\Windows", "/", "a/b/c", "assets/../etc")


# --------------------------------------------------------------------------- hostile files
def aspect_bomb(path: Path) -> Path:
    """A tiny valid H.264 clip of 4096x2 pixels (scaled to a 224-px short side: 458752 x 224)."""
    return write_clip(path, num_frames=4, fps=4, size=(4096, 2), codec="h264")


def gif_canvas_bomb(path: Path) -> Path:
    """A small valid GIF whose header declares a 16000x16000 logical screen (bytes 6..9)."""
    write_clip(path, num_frames=3, fps=5, size=(32, 24), codec="gif")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"GIF8"
    data[6:10] = (16000).to_bytes(2, "little") * 2
    path.write_bytes(bytes(data))
    return path


def one_line_error(err: BaseException, *, names: str | None = None) -> str:
    text = str(err)
    assert "\n" not in text and len(text) <= 300, text
    assert "&#" not in text and "&gt;" not in text and "&lt;" not in text, text  # plain text, not HTML
    assert "/tmp" not in text and str(ROOT) not in text, text                    # no server path
    if names:
        assert text.startswith(names), text
    return text


# --------------------------------------------------------------------------- the running app
class Server:
    """``python app.py`` in a subprocess, its peak RSS watched from /proc."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.export_dir = work / "exports"
        self.export_dir.mkdir()
        # left by earlier runs: an old-style session folder and an instance whose process is gone
        (self.export_dir / "session-leftover").mkdir()
        (self.export_dir / "session-leftover" / "frame_001.jpg").write_bytes(b"\xff" * 100)
        (self.export_dir / "instance-dead").mkdir()
        (self.export_dir / "instance-dead.lock").write_text("")
        (self.export_dir / "unrelated.txt").write_text("not ours: stays")
        ckpt = work / "tiny-ckpt"
        tiny_pipeline().save_pretrained(ckpt)
        env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        self.log = (work / "server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--checkpoint", str(ckpt), "--port", "0", "--allow-hub",
             "--examples-dir", str(make_examples(work / "examples")), "--export-dir", str(self.export_dir),
             "--max-frames", "32", "--concurrency", "1"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.peak_rss_kb = 0
        self.killed = False
        threading.Thread(target=self._watch, daemon=True).start()
        self.url = ""
        self._wait_up()

    def status_kb(self, field: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def _watch(self) -> None:
        while self.proc.poll() is None:
            try:
                rss = self.status_kb("VmRSS")
            except (OSError, KeyError):
                return
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            if rss * 1024 > WATCHDOG_RSS:
                self.killed = True
                self.proc.kill()
            time.sleep(0.02)

    def _wait_up(self, timeout: float = 240.0) -> None:
        import httpx

        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}: {self.tail()}")
            if not self.url:  # the port the app found free, from its log
                self.log.flush()
                found = re.search(r"Running on local URL:\s*(http://[\w.:-]+)", (self.work / "server.log").read_text())
                self.url = found and found[1].rstrip("/") + "/" or ""
            try:
                if self.url and httpx.get(self.url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the app did not start in {timeout:.0f} s: {self.tail()}")

    def peak_bytes(self) -> int:
        """Peak resident memory of the server so far (VmHWM, or the sampled peak if it died)."""
        try:
            return max(self.status_kb("VmHWM"), self.peak_rss_kb) * 1024
        except (OSError, KeyError):
            return self.peak_rss_kb * 1024

    def tail(self) -> str:
        self.log.flush()
        return (self.work / "server.log").read_text()[-3000:]

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("hostile"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def remote(server) -> Client:
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def normal_clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("normal") / "normal.mp4", num_frames=30, fps=10, size=(96, 64))


def test_startup_removed_what_earlier_runs_left(server):
    names = sorted(p.name for p in server.export_dir.iterdir())
    assert "session-leftover" not in names and "instance-dead" not in names and "instance-dead.lock" not in names
    assert "unrelated.txt" in names                                      # only our own folders are removed
    assert len([n for n in names if n.startswith("instance-") and not n.endswith(".lock")]) == 1  # this run's


def test_bombs_refused_in_one_line_without_memory_blowup(server, remote, normal_clip, tmp_path):
    check_result(remote.predict(handle_file(str(normal_clip)), T, K, 0.5, api_name="/analyze"))
    for make, name in ((aspect_bomb, "wide.mp4"), (gif_canvas_bomb, "canvas.gif")):
        bomb = make(tmp_path / name)
        assert bomb.stat().st_size < 10_000   # tiny files
        start = time.perf_counter()
        with pytest.raises(Exception) as err:
            remote.predict(handle_file(str(bomb)), T, K, 0.5, api_name="/analyze")
        elapsed = time.perf_counter() - start
        text = one_line_error(err.value, names=f"{name}: ")
        assert "too large" in text or "geometry" in text or "aspect ratio" in text, text
        assert elapsed < 10, f"{name} took {elapsed:.1f} s"
        assert not server.killed and server.proc.poll() is None, server.tail()
        assert server.peak_bytes() < PEAK_RSS_LIMIT, f"peak RSS {server.peak_bytes() / 2**20:.0f} MiB after {name}"
        check_result(remote.predict(handle_file(str(normal_clip)), T, K, 0.5, api_name="/analyze"))  # next one works


def test_paths_in_the_hub_box_get_one_refusal(server, remote, normal_clip):
    from app.server.hub import HUB_ID_HELP

    texts, times = set(), []
    for path in HUB_PATHS:
        start = time.perf_counter()
        with pytest.raises(Exception) as err:
            remote.predict(handle_file(str(normal_clip)), T, K, 0.5, path, api_name="/analyze")
        times.append(time.perf_counter() - start)
        texts.add(one_line_error(err.value))
    assert texts == {HUB_ID_HELP}                  # the same line whether or not the folder exists
    assert max(times) < 5
    # the page's own event (the hub box next to the picker) refuses them the same way
    for path in ("/etc", str(ROOT / "assets" / "demo-model"), "~"):
        with pytest.raises(Exception) as err:
            remote.predict(handle_file(str(normal_clip)), T, K, 0.5, "tiny-ckpt", path, False, 1, api_name="/run")
        assert str(err.value) == HUB_ID_HELP
    assert server.peak_bytes() < PEAK_RSS_LIMIT
    check_result(remote.predict(handle_file(str(normal_clip)), T, K, 0.5, api_name="/analyze"))


def test_analyze_takes_an_optional_checkpoint(remote, normal_clip):
    check_result(remote.predict(handle_file(str(normal_clip)), T, K, 0.5, api_name="/analyze"))  # 4 inputs
    check_result(remote.predict(handle_file(str(normal_clip)), T, K, 0.5, "tiny-ckpt", api_name="/analyze"))
    check_result(remote.predict(clip=handle_file(str(normal_clip)), num_frames=T, k=K, lam=0.5, checkpoint="",
                                api_name="/analyze"))
    with pytest.raises(Exception) as err:   # a valid id, but this server cannot reach the Hub: one line
        remote.predict(handle_file(str(normal_clip)), T, K, 0.5, "someone/nsnet-model@v1", api_name="/analyze")
    assert one_line_error(err.value).startswith("Hub checkpoint someone/nsnet-model@v1: ")


def test_api_errors_are_plain_bounded_lines(remote, normal_clip, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = [((empty, T, K, 0.5), "'empty.mp4' is empty."),
             ((normal_clip, 2.5, K, 0.5), "T must be a whole number, got 2.5"),
             ((normal_clip, T, 1.5, 0.5), "K must be a whole number, got 1.5"),
             ((normal_clip, 1e308, K, 0.5), "T=1e+308 is above this server's limit of 32 previews."),
             ((normal_clip, 10 ** 300, K, 0.5), "T=1e+300 is above this server's limit of 32 previews."),
             ((normal_clip, T, K, 1e308), "lam must be between 0 and 1")]
    for (path, t, k, lam), message in cases:
        with pytest.raises(Exception) as err:
            remote.predict(handle_file(str(path)), t, k, lam, api_name="/analyze")
        text = one_line_error(err.value)
        assert message in text, text
        assert len(text) < 120, text
    check_result(remote.predict(handle_file(str(normal_clip)), T, K, 0.5, api_name="/analyze"))


def test_runs_write_into_the_area_and_shutdown_removes_it(tmp_path, normal_clip):
    server = Server(tmp_path)   # this test stops its server: it starts its own, and stops it whatever happens
    try:
        remote = Client(server.url, verbose=False)
        remote.predict(handle_file(str(normal_clip)), T, K, 0.5, "tiny-ckpt", "", False, 1, api_name="/run")
        instance = [p for p in server.export_dir.glob("instance-*") if p.is_dir()]
        assert len(instance) == 1
        jpegs = list(instance[0].rglob("*.jpg"))
        assert len(jpegs) == T and all(p.parent.parent.parent == instance[0] for p in jpegs)  # session/frames-*/
        assert server.peak_bytes() < PEAK_RSS_LIMIT
    finally:
        assert server.stop() == 0, server.tail()   # SIGTERM ends it like Ctrl-C: a clean exit
    assert sorted(p.name for p in server.export_dir.iterdir()) == ["unrelated.txt"], server.tail()


# --------------------------------------------------------------------------- hub ids
VALID = {"owner/name": ("owner/name", None), " owner/name ": ("owner/name", None),
         "Org-1/nsnet_model.v2": ("Org-1/nsnet_model.v2", None), "a/b@main": ("a/b", "main"),
         "a/b@v1.0": ("a/b", "v1.0"), "a/b@refs/pr/3": ("a/b", "refs/pr/3"),
         "u/m@" + "0123456789abcdef" * 2 + "01234567": ("u/m", "0123456789abcdef" * 2 + "01234567"),
         "x" * 96 + "/" + "y" * 96: ("x" * 96 + "/" + "y" * 96, None)}
INVALID = ["", " ", "name", "/etc", "/etc/passwd", "../x", "./x", "~", "~/x", "~root/x", "a/../b", "a/b/c",
           "a//b", "/a/b", ".a/b", "a./b", "-a/b", "a/b-", "a/.b", "a..b/c", "a/b--c", "a/b.git", "a b/c",
           "a/b@", "a/b@../x", "a/b@/abs", "a/b@x/", "a/b@x//y", "a/b@x.lock", "a/b@x y", "a/b@-x", "C:\\x\\y",
           "a\\b", "a/b\x00", "a/\nb", "ä/b", "x" * 97 + "/y", "a/" + "b" * 97, "a/b@" + "c" * 129, None, 3,
           "a/b@c@d", "%2e%2e/x", "file:///etc", "https://huggingface.co/a/b"]


def test_parse_hub_id_accepts_hub_syntax_only():
    from app.server.hub import HUB_ID_HELP, HubIdError, parse_hub_id

    for text, expected in VALID.items():
        assert parse_hub_id(text) == expected, text
    for text in INVALID:
        with pytest.raises(HubIdError) as err:
            parse_hub_id(text)
        assert str(err.value) == HUB_ID_HELP, text


def test_hub_id_check_touches_no_filesystem(monkeypatch, tmp_path):
    """The refusal cannot depend on which folders exist: nothing is stat'ed or opened before it."""
    from app.server.hub import HUB_ID_HELP
    from app.state.models import CheckpointOption, ModelStore

    def no_fs(*args, **kwargs):
        raise AssertionError("filesystem access while checking a hub id")

    store = ModelStore(tiny_pipeline(), CheckpointOption("tiny", ""), allow_hub=True)
    messages = set()
    with monkeypatch.context() as m:
        for name in ("stat", "lstat", "listdir", "scandir", "open", "access"):
            m.setattr(os, name, no_fs)
        m.setattr("builtins.open", no_fs)
        for text in HUB_PATHS + (str(tmp_path),):
            with pytest.raises(Exception) as err:
                store.get(None, text)
            messages.add(str(err.value))
    assert messages == {HUB_ID_HELP}


def test_hub_ids_never_load_server_folders(monkeypatch):
    """A valid-looking id that is also a relative folder here (``assets/demo-model``) goes to the Hub."""
    from app.state import models
    from app.state.models import CheckpointOption, ModelStore
    from nsnet.inference import CheckpointError
    from nsnet.inference.checkpoint import split_hub_id

    assert (ROOT / "assets" / "demo-model").is_dir()
    asked = []

    def fake_resolve(text, *, hub_only=False, max_bytes=None):
        assert hub_only  # the library's resolver is told not to look at this server's folders
        asked.append(split_hub_id(text))
        raise CheckpointError(f"Hub checkpoint {text}: no such model repository on the Hub")

    monkeypatch.setattr(models, "resolve_checkpoint", fake_resolve)
    monkeypatch.setattr(models.Pipeline, "from_pretrained", lambda *a, **k: pytest.fail("loaded a local folder"))
    monkeypatch.chdir(ROOT)
    store = ModelStore(tiny_pipeline(), CheckpointOption("tiny", ""), allow_hub=True)
    for text in ("assets/demo-model", "assets/demo-model@main"):
        with pytest.raises(CheckpointError, match="no such model repository"):
            store.get(None, text)
    assert asked == [("assets/demo-model", None), ("assets/demo-model", "main")]


def test_hub_allow_list_and_disabled_hub(monkeypatch):
    from app.state import models
    from app.state.models import CheckpointOption, ModelStore
    from nsnet.inference import CheckpointError
    from nsnet.inference.checkpoint import split_hub_id

    fetched = []
    monkeypatch.setattr(models, "resolve_checkpoint", lambda text, **_: fetched.append(split_hub_id(text)[0])
                        or (_ for _ in ()).throw(CheckpointError("offline")))
    pipe = tiny_pipeline()
    store = ModelStore(pipe, CheckpointOption("tiny", ""), allow_hub=True, hub_allow=("MyOrg/*", "friend/nsnet"))
    with pytest.raises(CheckpointError, match="not on this server's list of allowed Hub checkpoints"):
        store.get(None, "stranger/model")
    for ok in ("myorg/anything", "MyOrg/x@v2", "friend/nsnet"):
        with pytest.raises(CheckpointError, match="offline"):
            store.get(None, ok)
    assert fetched == ["myorg/anything", "MyOrg/x", "friend/nsnet"]
    closed = ModelStore(pipe, CheckpointOption("tiny", ""), allow_hub=False)
    with pytest.raises(CheckpointError, match="disabled on this server"):
        closed.get(None, "/etc")
    with pytest.raises(CheckpointError) as err:   # /analyze's name: only picker labels without --allow-hub
        closed.get_by_name("/etc")
    assert str(err.value) == "unknown checkpoint '/etc': this server offers 'tiny'"
    assert closed.get_by_name("tiny")[0] is pipe and closed.get_by_name("")[0] is pipe


def test_a_hub_checkpoint_may_not_name_server_folders_as_backbones(monkeypatch, tmp_path):
    import json

    from app.state import models
    from app.state.models import CheckpointOption, ModelStore
    from nsnet.inference import CheckpointError

    folder = tmp_path / "snapshot"
    tiny_pipeline().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    monkeypatch.setattr(models, "resolve_checkpoint", lambda text, **_: folder)
    store = ModelStore(tiny_pipeline(), CheckpointOption("tiny", ""), allow_hub=True, hub_allow=("good/*",))
    for backbone, problem in (("hf:/etc/models", "not a Hub model id"), ("clip:../x", "not a Hub model id"),
                              ("hf:evil/huge-model", "not allowed")):
        config["sampler"]["backbone"] = backbone
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(CheckpointError, match=problem):
            store.get(None, "good/ckpt")
    config["sampler"]["backbone"] = "efficientnet_lite0"
    (folder / "config.json").write_text(json.dumps(config))
    pipe, option = store.get(None, "good/ckpt@main")
    assert option.label == "hub:good/ckpt@main" and pipe.config.sampler.backbone == "efficientnet_lite0"


# --------------------------------------------------------------------------- the export area
def test_export_area_bounds_size_and_age(tmp_path):
    from app.server.storage import ExportArea

    area = ExportArea(tmp_path / "x", max_bytes=2500, max_age_s=3600).open()
    folders = []
    for i in range(5):
        f = area.session_folder(f"client-{i}")
        (f / "frame.jpg").write_bytes(b"\0" * 1000)
        os.utime(f, (time.time() - 100 + i, time.time() - 100 + i))   # written in this order
        area.record(f)
        folders.append(f)
    assert [f.exists() for f in folders] == [False, False, False, True, True]  # oldest first
    assert area.usage()[0] <= 2500
    os.utime(folders[3], (time.time() - 7200,) * 2)                          # older than the age bound
    fresh = area.session_folder("client-5")
    area.record(fresh)
    assert not folders[3].exists() and folders[4].exists() and fresh.exists()
    big = area.session_folder("client-6")
    (big / "huge.bin").write_bytes(b"\0" * 10_000)                             # one session over the bound
    area.record(big)
    assert big.exists() and not folders[4].exists()                          # the one just written stays
    area.remove(big)
    area.remove(tmp_path)                                                    # not a session of the area: ignored
    assert not big.exists() and tmp_path.exists()
    root = area.folder
    area.close()
    assert not root.exists() and list((tmp_path / "x").iterdir()) == []


def test_thirty_new_clients_stay_within_the_export_bound(tmp_path):
    """The issue's case: many runs from new sessions leave at most --export-mb on disk."""
    from app.server.settings import AppSettings
    from app.state.context import AppContext
    from app.state.examples import load_examples
    from app.state.models import CheckpointOption, ModelStore
    from app.state.session import cleanup_session
    from app.tabs.analyze import Analysis

    examples = tuple(load_examples(make_examples(tmp_path / "examples")))
    clip = examples[0].path   # an example: decoded and run once, then from the cache (each run writes its JPEGs)
    one_run = tiny_pipeline().read(clip, T)[0].frames.nbytes  # the previews of one run (uint8, at the model's size)
    settings = AppSettings(examples_dir=tmp_path / "examples", export_mb=0.05,
                           max_frames=32, session_frames_mb=5.5 * one_run / 2**20)
    cb = Analysis(AppContext(store=ModelStore(tiny_pipeline(), CheckpointOption("tiny", "")), settings=settings,
                              examples=examples, export_root=tmp_path / "exports"))
    sessions = []
    for i in range(30):
        out = run_all(cb, str(clip), T, K, 0.5, None, None, False, 1, None, progress=lambda *a, **k: None,
                      request=SimpleNamespace(session_hash=f"client-{i}"))
        sessions.append(out["session"])
    used, files = cb.ctx.exports.usage()
    one_session = sum(Path(p).stat().st_size for p in sessions[-1].frame_files)
    assert used <= max(settings.export_bytes, one_session), used
    assert 0 < len(list(cb.ctx.exports.folder.iterdir())) < 10 and files < 10 * T   # of 30 sessions
    assert all(Path(s.export_dir).parent == cb.ctx.exports.folder for s in sessions)
    # memory: the decoded previews of all sessions stay within --session-frames-mb (the 5 most recent here)
    pool = cb.ctx.frame_pool
    assert pool.nbytes <= settings.session_frames_bytes and len(pool) == 5
    assert [s.frames is not None for s in sessions] == [False] * 25 + [True] * 5
    # a session whose folder was evicted still shows its frames (from memory) and can still download
    recent = next(s for s in sessions[-5:] if not Path(s.export_dir).exists())
    shown = cb.show_frame(recent, 2)
    assert not isinstance(shown["frame_image"], str) and shown["frame_image"].shape == recent.frames[1].shape
    # one whose folder and frames are both gone is asked, in one line, to run again; downloads still work
    old = sessions[0]
    assert not Path(old.export_dir).exists() and old.frames is None
    with pytest.raises(gr.Error, match="no longer kept.*press Run"):
        cb.show_frame(old, 2)
    csv = Path(cb.download_csv(old)["csv_file"])
    assert csv.is_file() and csv.parent.parent == cb.ctx.exports.folder
    cleanup_session(sessions[-2])  # a state expires: its frames go with its folder
    assert len(pool) == 4 and sessions[-2].frames is None and not Path(sessions[-2].export_dir).exists()
    # the visitor leaves: their folder goes at once (demo.unload), not when the state expires
    last = Path(sessions[-1].export_dir)
    assert last.is_dir()
    cb.forget_session(SimpleNamespace(session_hash="client-29"))
    assert not last.exists()
    cb.ctx.exports.close()


def test_frame_pool_keeps_the_most_recently_used_within_its_bound():
    import numpy as np

    from app.server.storage import FramePool

    pool = FramePool(max_bytes=3000)
    a, b, c = (np.full((1000,), i, np.uint8) for i in range(3))
    ka, kb, kc = pool.put(a), pool.put(b), pool.put(c)
    assert pool.nbytes == 3000 and pool.get(ka) is a   # a is now the most recently used
    kd = pool.put(np.zeros(1000, np.uint8))             # over the bound: b (least recently used) goes
    assert pool.get(kb) is None and pool.get(ka) is a and pool.get(kc) is c and pool.get(kd) is not None
    huge = pool.put(np.zeros(5000, np.uint8))           # larger than the whole bound: not kept, nothing evicted
    assert pool.get(huge) is None and len(pool) == 3 and pool.nbytes == 3000
    pool.drop(ka)
    pool.drop("not-a-key")
    assert pool.get(ka) is None and pool.nbytes == 2000 and len(pool) == 2


def test_demo_cleans_at_start_and_wires_unload(tmp_path):
    from app.server.settings import AppSettings
    from app.shell import build_demo

    root = tmp_path / "exports"
    (root / "session-old").mkdir(parents=True)
    (root / "session-old" / "frame_001.jpg").write_bytes(b"x")
    settings = AppSettings(examples_dir=tmp_path / "none", export_dir=root,
                           export_max_age_min=30)
    demo = build_demo(tiny_pipeline(), settings, examples=[])
    assert not (root / "session-old").exists()
    assert any(t[1] == "unload" for fn in demo.fns.values() for t in fn.targets)
    assert demo.delete_cache == (1800, 1800)


# --------------------------------------------------------------------------- error text
def test_user_errors_escape_for_the_page_only():
    from app.tabs.errors import user_errors

    def bad():
        raise gr.Error("'a<b>&c.mp4' is empty.")

    with pytest.raises(gr.Error) as page:
        user_errors(bad)()
    with pytest.raises(gr.Error) as api:
        user_errors(bad, api=True)()
    assert page.value.message == "'a&lt;b&gt;&amp;c.mp4' is empty."   # Gradio's toast renders HTML
    assert api.value.message == "'a<b>&c.mp4' is empty."


def test_error_text_names_base_names_and_stays_short():
    from app.tabs.errors import error_text, shown, whole_number
    from nsnet.video import NotAVideoError

    assert error_text(NotAVideoError("/tmp/gradio/0123abcd/" + "v" * 300 + ".mp4", "not a video")).endswith(
        "…: not a video")
    assert error_text(OSError("[Errno 28] No space left: '/tmp/nsnet-explorer/instance-x/session-y/a.csv'")) == \
        "[Errno 28] No space left: 'a.csv'"
    assert len(error_text("x" * 5000)) == 300
    assert shown(10 ** 308) == "1e+308" and shown("y" * 100).endswith("…") and len(shown("y" * 100)) < 40
    for bad in (2.5, "2.5", True, float("nan"), float("inf"), [8], "8; rm -rf /"):
        with pytest.raises(gr.Error, match="T must be a whole number"):
            whole_number(bad, "T")
    assert whole_number(8.0, "T") == 8 and whole_number("8", "T") == 8


def test_limit_on_frame_pixels(tmp_path):
    from app.server.settings import AppSettings
    from app.state.context import AppContext
    from app.state.models import CheckpointOption, ModelStore
    from app.tabs.analyze import Analysis

    clip = write_clip(tmp_path / "big.mp4", num_frames=10, fps=10, size=(96, 64))
    settings = AppSettings(examples_dir=tmp_path / "none", max_frame_pixels=96 * 64 - 1)
    cb = Analysis(AppContext(store=ModelStore(tiny_pipeline(), CheckpointOption("tiny", "")), settings=settings,
                              export_root=tmp_path / "exports"))
    with pytest.raises(gr.Error) as err:
        cb.analyze_api(str(clip), T, K, 0.5)
    assert err.value.message == "big.mp4: frames of 96x64 pixels are above this server's limit of 6143 pixels."


def test_settings_name_every_ceiling(monkeypatch):
    from app.server.settings import AppSettings, parse_settings
    from nsnet import limits

    s, _ = parse_settings(["--hub-allow", "org/*", "--hub-allow", "friend/x", "--max-frame-pixels", "3840x2160",
                           "--export-mb", "50", "--export-max-age-min", "15", "--export-dir", "/srv/x"], {})
    assert s.hub_allow == ("org/*", "friend/x") and s.max_frame_pixels == 3840 * 2160
    assert s.export_bytes == 50 * 2**20 and s.export_max_age_s == 900 and s.export_dir == Path("/srv/x")
    env = {"NSNET_HUB_ALLOW": "a/*, b/c", "NSNET_MAX_FRAME_PIXELS": "1000000", "NSNET_EXPORT_MB": "7",
           "NSNET_EXPORT_MAX_AGE_MIN": "5", "NSNET_MAX_FRAMES": "128", "NSNET_HUB_MAX_MB": "300"}
    s, _ = parse_settings([], env)
    assert (s.hub_allow, s.max_frame_pixels, s.export_mb, s.export_max_age_min, s.max_frames, s.hub_max_mb) == (
        ("a/*", "b/c"), 1_000_000, 7.0, 5.0, 128, 300.0)
    assert parse_settings(["--hub-max-mb", "10"], env)[0].hub_max_bytes == 10 * 2**20  # the flag wins
    assert parse_settings(["--session-frames-mb", "64"], {})[0].session_frames_bytes == 64 * 2**20
    assert parse_settings([], {"NSNET_SESSION_FRAMES_MB": "32"})[0].session_frames_mb == 32.0
    d = AppSettings()
    assert (d.max_frame_pixels, d.max_upload_mb, d.time_budget_s, d.max_frames, d.export_mb, d.hub_max_mb) == (
        limits.MAX_SOURCE_PIXELS, 200.0, 20.0, 64, 200.0, 2048.0)
    for argv in (["--max-frames", str(limits.MAX_FRAMES + 1)], ["--max-frame-pixels", "9000x9000"],
                 ["--export-mb", "0"], ["--hub-allow", "no-slash"], ["--hub-max-mb", "0"],
                 ["--session-frames-mb", "-1"]):
        with pytest.raises(SystemExit):
            parse_settings(argv, {})


def test_hub_downloads_are_sized_from_metadata_first(monkeypatch, tmp_path):
    """--hub-max-mb: a Hub checkpoint (or a Hub backbone it names) whose weights are over the
    limit, or of unknown size, is refused from the Hub's metadata, before any download; a
    download that happens is pinned to the commit whose sizes were checked."""
    import json
    from types import SimpleNamespace

    import huggingface_hub

    from app.state.models import CheckpointOption, ModelStore
    from nsnet.inference import CheckpointError
    from nsnet.inference import checkpoint as hub  # the library's one resolver and its Hub sizes

    folder = tmp_path / "snapshot"
    tiny_pipeline().save_pretrained(folder)
    mb = 1 << 20
    repos = {"big/ckpt": {"config.json": 3000, "model.safetensors": 5000 * mb},
             "fine/ckpt": {"config.json": 3000, "model.safetensors": 40 * mb},
             "odd/ckpt": {"config.json": 3000, "model.safetensors": None},
             "fake/config": {"config.json": 50 * mb, "model.safetensors": 40 * mb},
             "no/weights": {"config.json": 3000, "README.md": 10},
             "huge/backbone": {"model-00001.safetensors": 1500 * mb, "model-00002.safetensors": 1500 * mb,
                               "pytorch_model.bin": 10},
             "small/backbone": {"model.safetensors": 300 * mb}}
    downloads = []

    class FakeApi:
        def model_info(self, repo_id, revision=None, files_metadata=False):
            assert files_metadata
            if repo_id not in repos:
                raise type("RepositoryNotFoundError", (Exception,), {})("404")
            return SimpleNamespace(sha="c0ffee" + repo_id.replace("/", ""), siblings=[
                SimpleNamespace(rfilename=name, size=size) for name, size in repos[repo_id].items()])

    def fake_download(repo_id, revision=None, allow_patterns=None):
        downloads.append((repo_id, revision))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    store = ModelStore(tiny_pipeline(), CheckpointOption("tiny", ""), allow_hub=True, hub_max_bytes=2048 * mb)
    for repo, words in (("big/ckpt", "model.safetensors is 5,000 MB, over this server's limit of 2,048 MB"),
                        ("odd/ckpt", "model.safetensors is of unknown size"),
                        ("fake/config", "config.json is 50 MB, too large"),
                        ("no/weights", "not an NSNet checkpoint"),
                        ("gone/repo", "no such model repository")):
        with pytest.raises(CheckpointError, match=words) as err:
            store.get(None, repo)
        assert "\n" not in str(err.value) and str(tmp_path) not in str(err.value)
    assert downloads == []  # nothing over the limit, of unknown size or not a checkpoint was downloaded
    pipe, option = store.get(None, "fine/ckpt@v1")
    assert downloads == [("fine/ckpt", "c0ffeefineckpt")] and option.label == "hub:fine/ckpt@v1"
    # a Hub backbone the checkpoint names is sized the same way (safetensors, as transformers loads)
    config = json.loads((folder / "config.json").read_text())
    config["recognizer"]["backbone"] = "hf:huge/backbone"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="recognizer backbone hf:huge/backbone has weights 3,000 MB, over"):
        store.get(None, "fine/ckpt@v2")
    assert hub.weights_bytes(repos["small/backbone"]) == 300 * mb
    assert hub.weights_bytes({"pytorch_model.bin": 7, "config.json": 1}) == 7
    assert hub.weights_bytes({"model.safetensors": None}) is None
    # without a limit (a trusted deployment) the size is not a reason to refuse
    assert hub.fetch_hub_checkpoint("big/ckpt", None, max_bytes=None) == folder
    assert hub.resolve_checkpoint("big/ckpt", hub_only=True) == folder
    # the one resolver the CLI uses too: a folder here is a folder; an id goes to the Hub, sized the same way
    assert hub.resolve_checkpoint(folder) == folder and hub.resolve_checkpoint("fine/ckpt@v1") == folder
    with pytest.raises(CheckpointError, match="5,000 MB, over the limit of 2,048 MB"):
        hub.resolve_checkpoint("big/ckpt", max_bytes=2048 * mb)
