"""A hub backbone on a machine without the Hub fails in seconds with one line, or loads from the cache.

Every test runs ``create_backbone`` in a fresh process with an empty (or hand-made) Hugging
Face cache and ``HF_ENDPOINT`` pointed at a closed local port, so nothing can reach the
network; the time is measured around the call alone (not the imports). Before the fix the
Hub client retried the closed port for ~27 s per model.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys, time
from nsnet.models.backbones import create_backbone
name, kwargs, warm = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
if warm:  # import what the call will import, so the timer below measures the call, not the imports
    import transformers
    [getattr(transformers, attr) for attr in warm]
start = time.perf_counter()
try:
    b = create_backbone(name, **kwargs)
    out = {"ok": True, "labels": b.head_labels, "features": b.num_features}
except Exception as exc:
    out = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
out["seconds"] = time.perf_counter() - start
print("RESULT " + json.dumps(out))
"""


def _closed_port() -> int:
    with socket.socket() as s:  # bound and released: nothing listens there afterwards
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build(name: str, hf_home, *, offline: bool = False, warm: tuple[str, ...] = (), **kwargs) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_")) and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy")}
    env.update(HF_HOME=str(hf_home), HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", OMP_NUM_THREADS="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, name, json.dumps(kwargs), *warm], capture_output=True,
                          text=True, timeout=300, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("name, kwargs", [("hf:google/vit-base-patch16-224", {}),
                                          ("clip:openai/clip-vit-base-patch32", {"class_names": ["a", "b"]})])
@pytest.mark.parametrize("offline", [False, True])
def test_an_uncached_hub_model_fails_in_seconds_with_one_line(tmp_path, name, kwargs, offline):
    out = _build(name, tmp_path / "hf", offline=offline, **kwargs)
    assert not out["ok"] and out["type"] == "MissingWeightsError", out
    message = out["message"]
    assert "\n" not in message and name in message and "HF_HUB_OFFLINE" in message, message
    assert str(tmp_path) not in message  # no local path: a page may show this line
    assert out["seconds"] < 5.0, out  # was ~27 s of retries against the closed port


def _tiny_vit_in_cache(hf_home, repo_id: str) -> None:
    """A tiny ViT classifier laid out as ``huggingface_hub`` caches a downloaded repo."""
    import transformers

    labels = {0: "cat", 1: "dog"}
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32, num_labels=2, id2label=labels,
                                    label2id={v: k for k, v in labels.items()})
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    transformers.AutoModelForImageClassification.from_config(config).save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_a_cached_hub_model_loads_from_the_cache_when_the_hub_is_unreachable(tmp_path):
    _tiny_vit_in_cache(tmp_path / "hf", "someone/tiny-vit")
    out = _build("hf:someone/tiny-vit", tmp_path / "hf", warm=("AutoConfig", "AutoModelForImageClassification"))
    assert out["ok"], out
    assert out["labels"] == ["cat", "dog"] and out["features"] == 16
    # no retries (they took ~27 s): the cached copy, local files only; the bound leaves room for a busy machine
    assert out["seconds"] < 15.0, out


def test_the_probe_says_unreachable_quickly_and_a_folder_needs_no_probe(tmp_path, monkeypatch):
    from nsnet.models.backbones import hub_access

    port = _closed_port()
    assert hub_access.hub_reachable(f"http://127.0.0.1:{port}", timeout=2.0) is False
    with socket.socket() as server:  # a listening socket is reachable
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert hub_access.hub_reachable(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=2.0) is True

    def no_probe(*args, **kwargs):
        raise AssertionError("probed the Hub for a local folder")

    monkeypatch.setattr(hub_access, "hub_reachable", no_probe)
    assert hub_access.hub_access("hf:", str(tmp_path), {"revision": "x"}) == {"revision": "x"}
    assert hub_access.hub_access("hf:", "a/b", {"local_files_only": True}) == {"local_files_only": True}
