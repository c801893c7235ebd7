"""The bundled demo model on the bundled examples: output pinned, CLI usable from anywhere.

``tests/data/demo_predict.json`` holds ``predict --json`` of the demo checkpoint on each
example clip (without ``video.path`` and ``timings_ms``, which depend on where and how fast
it ran). A refactor must not move a single score; a deliberate change of the model or of a
reported quantity regenerates the file in the same commit.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from nsnet.cli import predict

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
GOLDEN = json.loads((Path(__file__).parent / "data" / "demo_predict.json").read_text())


def _close(a, b, where: str = "") -> None:
    """Exact structure, floats to 1e-5 (relative) so BLAS threading cannot fail the test."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7), (where, a, b)
    else:
        assert a == b, (where, a, b)


def _comparable(obj: dict) -> dict:
    obj = dict(obj, video={k: v for k, v in obj["video"].items() if k != "path"})
    obj.pop("timings_ms")
    return obj


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_predict_json_of_the_demo_model_is_unchanged(name, capsys):
    assert predict.main([str(EXAMPLES / name), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"]["path"] == str(EXAMPLES / name)
    assert set(out["timings_ms"]) == {"decode", "sampler", "recognizer", "total"}
    _close(GOLDEN[name], _comparable(out), name)


def test_console_script_works_from_another_folder(tmp_path):
    """``pip install -e .`` (part of the set-up) gives an ``nsnet`` command usable anywhere."""
    script = Path(sys.executable).parent / "nsnet"
    assert script.is_file(), "run `make venv` (it installs the package with `pip install -e .`)"
    name = sorted(GOLDEN)[0]
    done = subprocess.run([str(script), "predict", str(EXAMPLES / name), "--json", "--device", "cpu"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _close(GOLDEN[name], _comparable(json.loads(done.stdout)), name)
