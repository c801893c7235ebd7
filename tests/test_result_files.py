"""Result files are owned, never mixed or destroyed; malformed rows and hostile JSON are one line each.

The causes of issue 22 on the library and CLI side, each against the real ``nsnet analyze``
on a tiny generated benchmark (4 videos, a tiny checkpoint) or against the library function
the explorer calls:

* two writers on one ``--out`` (a lock), ``--resume`` onto a file that is not this run's own
  (an annotation file, a foreign JSONL, rows of another T, another model): refused, the file
  left byte for byte;
* a malformed results row of each kind: skipped with its line number, the others read;
* ``[[[[...]]]]`` 100 000 deep in a results row, a resumed file, a run file, a checkpoint's
  ``config.json`` and an annotation file: one line, never a ``RecursionError``;
* a file-size limit while rows are written or merged (EFBIG, as a full disk): one line, exit
  2, no temp file, the rows kept for ``--resume``; an ``--out`` that is a folder or a FIFO;
* NaN weights and duplicate class names in a checkpoint: refused, naming the tensor / name.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from nsnet import jsonsafe
from nsnet.cli import analyze as analyze_cli
from nsnet.config import ConfigError, PipelineConfig, RecognizerConfig, SamplerConfig
from nsnet.data.formats import load_dataset
from nsnet.data.records import DatasetError
from nsnet.data.synthetic import main as make_synthetic
from nsnet.evaluation import jsonl
from nsnet.inference import Pipeline
from nsnet.inference.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parent.parent
T, K = 6, 2
DEEP = "[" * 100_000 + "]" * 100_000
ENV = dict(os.environ, OMP_NUM_THREADS="1", NSNET_LOG_LEVEL="WARNING")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_checkpoint(names, folder: Path, seed: int) -> Path:
    cfg = PipelineConfig(class_names=names, num_frames=T, k=K, lam=0.3,
                         sampler=SamplerConfig(backbone="efficientnet_lite0", backbone_pretrained=True, input_size=64,
                                               hidden_dim=16, attention_dim=8),
                         recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=True,
                                                     input_size=64))
    torch.manual_seed(seed)
    Pipeline.build(cfg, device="cpu").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "data"
    assert make_synthetic([str(root), "--videos", "4", "--seed", "3", "--classes", "3", "--size", "96x72"]) == 0
    return root


@pytest.fixture(scope="module")
def ckpt(bench, tmp_path_factory):
    names = (bench / "classes.txt").read_text().split()
    return _tiny_checkpoint(names, tmp_path_factory.mktemp("ckpt") / "tiny", seed=0)


def _argv(bench, ckpt, out, *extra) -> list[str]:
    return [str(bench / "annotations.json"), "--checkpoint", str(ckpt), "--out", str(out), "--device", "cpu",
            "--no-progress", "--workers", "0", "--batch-size", "2", *extra]


def _analyze(bench, ckpt, out, *extra) -> int:
    return analyze_cli.main(_argv(bench, ckpt, out, *extra))


def _cli(argv: list[str], timeout: float = 300, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nsnet", *argv], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec)


@pytest.fixture(scope="module")
def run(bench, ckpt, tmp_path_factory):
    """A finished run: OUT.jsonl (4 rows), OUT.run.json, OUT.summary.json."""
    out = tmp_path_factory.mktemp("run") / "rows.jsonl"
    assert _analyze(bench, ckpt, out) == 0
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _one_error_line(caplog) -> str:
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".merge")) or p.name.startswith("."))


# ----------------------------------------------------------------------------- ownership (causes 3, 4)
HOLD = """
import sys, time
from nsnet.evaluation import jsonl
lock = jsonl.OutLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_second_writer_is_refused_while_a_run_holds_out(bench, ckpt, tmp_path, caplog):
    out = tmp_path / "rows.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=ROOT, env=ENV, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert _analyze(bench, ckpt, out, "--frames", "4", "--k", "2") == 2  # the second run: other T, K
        line = _one_error_line(caplog)
        assert "being written by another nsnet analyze" in line and f"pid {holder.pid}" in line
        assert not out.exists() and not jsonl.run_path(out).exists()  # nothing written, nothing mixed
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert jsonl.lock_path(out).exists()  # the holder ended without releasing (as a killed run): a stale file
    assert _analyze(bench, ckpt, out, "--frames", "4", "--k", "2", "--max-videos", "1") == 0  # free again
    assert not jsonl.lock_path(out).exists()
    assert [len(r["timestamps_s"]) for r in _rows(out)] == [4]


def test_lock_file_of_a_killed_run_is_taken_over_and_a_foreign_one_left_alone(tmp_path):
    out = tmp_path / "rows.jsonl"
    jsonl.lock_path(out).write_text('{"nsnet": "analyze", "pid": 1, "host": "gone", "since": "yesterday"}\n')
    with jsonl.OutLock(out):  # stale: nobody holds the flock
        assert json.loads(jsonl.lock_path(out).read_text())["pid"] == os.getpid()
        with pytest.raises(jsonl.ResultFileError, match=f"pid {os.getpid()} on"):
            jsonl.OutLock(out).acquire()  # a second open file description: refused, also in one process
    assert not jsonl.lock_path(out).exists()
    jsonl.lock_path(out).write_text("my notes\n")
    with pytest.raises(jsonl.ResultFileError, match="not a lock file"):
        jsonl.OutLock(out).acquire()
    assert jsonl.lock_path(out).read_text() == "my notes\n"


def test_resume_onto_an_annotation_file_is_refused_and_it_is_left_byte_for_byte(bench, ckpt, tmp_path, caplog):
    out = tmp_path / "annotations.json"
    shutil.copy(bench / "annotations.json", out)
    before = _sha(out)
    assert _analyze(bench, ckpt, out, "--resume") == 2
    assert "not a file nsnet analyze wrote" in _one_error_line(caplog)
    assert _sha(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations.json"]  # no run file, lock or temp file


def test_resume_onto_a_foreign_jsonl_with_a_copied_run_file_is_refused(bench, ckpt, run, tmp_path, caplog):
    out = tmp_path / "rows.jsonl"
    out.write_text('{"id": "a", "score": 1}\n{"id": "b", "score": 2}\n')
    shutil.copy(jsonl.run_path(run), jsonl.run_path(out))
    before = _sha(out)
    assert _analyze(bench, ckpt, out, "--resume") == 2
    assert "line 1 is not a row of this run" in _one_error_line(caplog)
    assert _sha(out) == before


def _shorten(row: dict, t: int) -> dict:
    """The row as a run with T = t would have written it (same keys, every per-preview field cut)."""
    row = dict(row)
    for key in ("timestamps_s", "frame_scores", "attention", "fused", "teacher", "frame_probs"):
        row[key] = row[key][:t]
    row["selected"] = [i for i in row["selected"] if i < t] or [0]
    return row


def test_resume_refuses_rows_of_other_settings_even_under_a_matching_run_file(bench, ckpt, run, tmp_path, caplog):
    out = tmp_path / "rows.jsonl"
    rows = [_shorten(r, 4) for r in _rows(run)[:2]]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(jsonl.run_path(run), jsonl.run_path(out))  # the run file says T=6, the rows have T=4
    before = _sha(out)
    assert _analyze(bench, ckpt, out, "--resume") == 2
    assert "4 values, not T = 6" in _one_error_line(caplog)
    assert _sha(out) == before


def test_resume_with_another_model_is_refused_naming_the_fingerprints(bench, ckpt, run, tmp_path, caplog):
    other = _tiny_checkpoint((bench / "classes.txt").read_text().split(), tmp_path / "other", seed=1)
    out = tmp_path / "rows.jsonl"
    shutil.copy(run, out)
    shutil.copy(jsonl.run_path(run), jsonl.run_path(out))
    before = _sha(out)
    assert _analyze(bench, other, out, "--resume") == 2
    line = _one_error_line(caplog)
    recorded = json.loads(jsonl.run_path(run).read_text())["fingerprint"]
    assert "other settings (fingerprint=" in line and recorded in line
    assert _sha(out) == before
    assert _analyze(bench, ckpt, out, "--resume") == 0  # its own model: nothing left to do, the rows kept
    assert [r["id"] for r in _rows(out)] == [r["id"] for r in _rows(run)]


def test_prepare_out_refuses_a_line_that_is_not_a_row_in_the_middle(run, tmp_path):
    out = tmp_path / "rows.jsonl"
    lines = run.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + "# a note\n" + "".join(lines[1:]) + lines[0][:30])  # + a torn last line
    shutil.copy(jsonl.run_path(run), jsonl.run_path(out))
    settings = json.loads(jsonl.run_path(run).read_text())
    with pytest.raises(jsonl.ResultFileError, match=r"rows.jsonl line 2 is not a row"):
        jsonl.prepare_out(out, settings, resume=True, num_classes=3)
    out.write_text("".join(lines) + lines[0][:30])  # only the torn last line: a killed run, resumable
    assert jsonl.prepare_out(out, settings, resume=True, num_classes=3) == {r["id"] for r in _rows(run)}
    with pytest.raises(jsonl.ResultFileError, match="keys"):  # a row of another schema
        bad = dict(_rows(run)[0], extra=1)
        out.write_text(json.dumps(bad) + "\n")
        jsonl.prepare_out(out, settings, resume=True, num_classes=3)
    with pytest.raises(jsonl.ResultFileError, match="already exists"):
        jsonl.prepare_out(out, settings, resume=False)


# ----------------------------------------------------------------------------- malformed rows (cause 5)
def _bad(row: dict, path: str, value) -> dict:
    row = json.loads(json.dumps(row))
    *parents, last = path.split(".")
    target = row
    for p in parents:
        target = target[p]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return row


DELETE = object()
MALFORMED = {  # the kinds the issue lists, and their neighbours
    "frame_probs a string": ("frame_probs", "0.1,0.2"),
    "frame_probs ragged": ("frame_probs", [[0.1, 0.2, 0.7]] * (T - 1) + [[0.5]]),
    "frame_probs of another T": ("frame_probs", [[0.1, 0.2, 0.7]] * (T - 1)),
    "frame_probs holding strings": ("frame_probs", [["0.1", "0.2", "0.7"]] * T),
    "timestamps_s a string": ("timestamps_s", "0 1 2 3 4 5"),
    "frame_scores a string": ("frame_scores", "0.5"),
    "frame_scores holding null": ("frame_scores", [0.5] * (T - 1) + [None]),
    "attention of the wrong length": ("attention", [0.5] * (T + 1)),
    "fused a dict": ("fused", {"a": 1}),
    "gt an int": ("gt", 3),
    "gt a list": ("gt", ["a"]),
    "a dict as a label": ("nsnet.label", {"name": "x"}),
    "score a string": ("dense.score", "high"),
    "correct a string": ("uniform.correct", "yes"),
    "a method a list": ("random", [1, 2]),
    "selected out of range": ("selected", [0, T]),
    "selected floats": ("selected", [0.0, 1.0]),
    "selected booleans": ("selected", [True, False]),
    "selected repeated": ("selected", [1, 1]),
    "segments a string": ("segments", "1-2"),
    "a segment of three numbers": ("segments", [[1, 2, 3]]),
    "duration_s a string": ("duration_s", "10 s"),
    "saliency_ap infinite": ("saliency_ap", 1e999),
    "class_scores ragged": ("class_scores.dense", [0.5, 0.5]),
    "class_scores a list": ("class_scores", [0.1, 0.2]),
    "gflops a list": ("gflops", [1, 2]),
    "timings_ms holding a string": ("timings_ms.decode", "fast"),
    "path a number": ("path", 7),
    "error a dict": ("error", {"why": "?"}),
    "id missing": ("id", DELETE),
    "id a list": ("id", ["a"]),
    "id a boolean": ("id", True),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_each_malformed_row_kind_is_refused(run, kind):
    good = _rows(run)[0]
    key, value = MALFORMED[kind]
    bad = _bad(good, key, value)
    assert jsonl.parse_row(json.dumps(bad)) is None, kind  # what the explorer's reader calls on each line
    assert jsonl.parse_row(json.dumps(good)) == good
    assert jsonl.validate_row(bad) is not None and jsonl.validate_row(good, t=T, k=K, num_classes=3) is None


@pytest.mark.parametrize("text", ['{"id": "a", "frame_scores": [0.5, NaN]}', '{"id": "a", "attention": [Infinity]}',
                                  '{"id": "a", "duration_s": -Infinity}', '{"id": "a", "frame_scores": [1e999]}',
                                  '["id", "a"]', '"a"', "{not json", '{"id": "a", "x": ' + DEEP + "}"])
def test_non_finite_numbers_non_objects_and_deep_lines_are_not_rows(text):
    assert jsonl.parse_row(text) is None


def test_rows_of_every_shape_a_run_writes_are_valid(run):
    rows = _rows(run)
    assert all(jsonl.validate_row(r, t=T, k=K, num_classes=3) is None for r in rows)
    err = dict(rows[0], error="x: empty file", timestamps_s=[], frame_scores=[], attention=[], fused=[], selected=[],
               teacher=[], nsnet=None, uniform=None, random=None, dense=None, class_scores=None, frame_probs=None,
               gflops=None, saliency_ap=None)
    assert jsonl.validate_row(err, t=T, k=K, num_classes=3) is None  # an error row of the same run
    old = {key: value for key, value in rows[0].items() if key not in ("class_scores", "frame_probs")}
    assert jsonl.validate_row(dict(old, id=7), id_types=(str, int)) is None  # an older file, an integer id
    assert jsonl.validate_row(rows[0], t=T + 1) == f"timestamps_s: {T} values, not T = {T + 1}"
    assert "not K = 3" in jsonl.validate_row(rows[0], k=3)
    assert "not 4" in jsonl.validate_row(rows[0], num_classes=4)


def test_read_rows_skips_each_bad_row_with_its_line_number(run, tmp_path):
    good = _rows(run)
    lines = [json.dumps(r) for r in good]
    bad_lines = {}
    for kind, (key, value) in MALFORMED.items():
        lines.append(json.dumps(_bad(good[len(lines) % len(good)], key, value)))
        bad_lines[len(lines)] = kind
    for text in ["{not json", '{"id": "n", "frame_scores": [NaN]}', '{"id": "d", "x": ' + DEEP + "}", ""]:
        lines.append(text)
        if text:
            bad_lines[len(lines)] = text[:20]
    deep = len(lines) - 1
    lines.append(json.dumps(dict(good[0], id=99)))  # an integer id: read, as a string
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(lines) + "\n" + lines[0][:40])  # and a torn last line
    found = jsonl.read_rows(path)
    assert [r["id"] for r in found.rows] == [r["id"] for r in good] + ["99"]
    torn = len(lines) + 1
    assert found.bad_lines == sorted(bad_lines) + [torn]
    assert found.skipped_count == len(bad_lines) + 1
    reasons = dict(found.skipped)
    assert reasons[deep] == "JSON nested deeper than 64 levels" and reasons[torn] == "unterminated last line"
    assert reasons[min(bad_lines)] == "frame_probs: not a list but str"
    message = jsonl.skipped_message("results.jsonl", found)
    assert "\n" not in message and f"skipped {found.skipped_count} malformed" in message
    assert found.skipped_count > 10 and message.count(",") >= 10
    capped = jsonl.read_rows(path, max_rows=2)
    assert len(capped.rows) == 2 and capped.truncated


def _in_thread(fn, timeout: float = 20.0):
    """fn() in a daemon thread: (finished, result or exception). A FIFO opened for reading would block."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["value"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), box.get("value")


def test_results_that_are_a_fifo_or_a_folder_are_refused_without_waiting(tmp_path):
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    finished, value = _in_thread(lambda: jsonl.read_rows(fifo))
    assert finished, "read_rows waited on a FIFO"
    assert isinstance(value, jsonl.ResultFileError) and "FIFO" in str(value)
    with pytest.raises(jsonl.ResultFileError, match="is a folder"):
        jsonl.check_regular(tmp_path, "--results", error=jsonl.ResultFileError)
    with pytest.raises(jsonsafe.InputError, match="a device"):
        jsonl.check_regular("/dev/null", "--results")
    with pytest.raises(jsonsafe.InputError, match="no such file"):
        jsonl.check_regular(tmp_path / "nope", "--results")
    assert jsonl.check_regular(tmp_path / "nope", "--results", must_exist=False) is None
    finished, value = _in_thread(lambda: jsonsafe.load_file(fifo, "run file", max_bytes=100))
    assert finished and isinstance(value, jsonsafe.InputError) and "FIFO" in str(value)


# ----------------------------------------------------------------------------- nested and huge JSON (cause 6)
def test_nesting_depth_ignores_brackets_in_strings_and_matches_a_naive_count():
    def naive(text: str) -> int:  # a character-by-character scanner
        depth = best = 0
        in_string = escaped = False
        for ch in text:
            if in_string:
                escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
            elif ch == '"':
                in_string = True
            elif ch in "[{":
                depth += 1
                best = max(best, depth)
            elif ch in "]}":
                depth -= 1
        return best

    samples = ['1', '[]', '{"a": [1, {"b": [[]]}]}', '["[[[", "\\"[[", "\\\\", [["]"]]]', '{"k\\\\": "{{"}',
               json.dumps({"a": ["x]\\\"[", [[["\\\\\\\""]]]]}), json.dumps([[1, 2], {"s": "}}}"}])]
    for text in samples:
        assert jsonsafe.nesting_depth(text) == naive(text), text
        json.loads(text)
    assert jsonsafe.nesting_depth(DEEP) == 100_000


def test_deep_or_huge_json_is_one_line_everywhere_it_is_read(bench, ckpt, run, tmp_path, caplog):
    # a results file: the deep row is skipped, the others read
    results = tmp_path / "results.jsonl"
    results.write_text(run.read_text() + DEEP + "\n")
    found = jsonl.read_rows(results)
    assert len(found.rows) == 4 and found.skipped == [(5, "JSON nested deeper than 64 levels")]
    # resume: a deep line in OUT, then a deep run file: exit 2, one line each, the files untouched
    out = tmp_path / "rows.jsonl"
    out.write_text(run.read_text() + DEEP + "\n")
    shutil.copy(jsonl.run_path(run), jsonl.run_path(out))
    before = _sha(out)
    assert _analyze(bench, ckpt, out, "--resume") == 2
    assert "line 5 is not a row of this run (JSON nested deeper than 64 levels)" in _one_error_line(caplog)
    caplog.clear()
    shutil.copy(run, out)
    jsonl.run_path(out).write_text(DEEP)
    assert _analyze(bench, ckpt, out, "--resume") == 2
    assert "rows.run.json: JSON nested deeper than 64 levels" in _one_error_line(caplog)
    assert _sha(out) == _sha(run) and before
    # a checkpoint's config.json
    deep_ckpt = tmp_path / "deep-ckpt"
    shutil.copytree(ckpt, deep_ckpt)
    (deep_ckpt / "config.json").write_text('{"meta": ' + DEEP + "}")
    with pytest.raises(ConfigError, match="nested deeper than 64 levels"):
        Pipeline.from_pretrained(deep_ckpt, device="cpu")
    clip = next((bench / "videos").glob("*.mp4"))
    done = _cli(["predict", str(clip), "--checkpoint", str(deep_ckpt), "--device", "cpu"])
    assert done.returncode == 2 and "RecursionError" not in done.stderr and "Traceback" not in done.stderr
    assert "nested deeper than 64 levels" in done.stderr
    # an annotation file
    ann = tmp_path / "deep.json"
    ann.write_text('{"database": ' + DEEP + "}")
    with pytest.raises(DatasetError, match="deep.json: not a readable JSON file: JSON nested deeper"):
        load_dataset(ann)
    caplog.clear()
    assert analyze_cli.main([str(ann), "--checkpoint", str(ckpt), "--out", str(tmp_path / "a.jsonl"),
                             "--device", "cpu"]) == 2
    assert "nested deeper" in _one_error_line(caplog)
    # and a size bound before anything is parsed
    with pytest.raises(jsonsafe.InputError, match="larger than 10 bytes"):
        jsonsafe.load_file(jsonl.run_path(run), "run file", max_bytes=10)
    with pytest.raises(jsonsafe.InputError, match="larger than 10 bytes"):
        jsonsafe.loads("[" + "1," * 20 + "1]", "row", max_bytes=10)


# ----------------------------------------------------------------------------- disk full, folder, FIFO (7, 9, 10)
def _limit_file_size(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_file_size_limit_while_writing_rows_is_one_line_and_resume_finishes(bench, ckpt, run, tmp_path):
    out = tmp_path / "rows.jsonl"
    row_bytes = len(run.read_text().splitlines()[0]) + 1
    limit = row_bytes + row_bytes // 2  # the run file and one row fit, the second row does not
    done = _cli(["analyze", *_argv(bench, ckpt, out)], preexec=_limit_file_size(limit))
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) == 1
    assert "file too large" in lines[0] and "--resume" in lines[0]
    assert out.stat().st_size == limit  # one row and a partial one: the rows before are kept
    assert _leftovers(tmp_path) == [] and not jsonl.lock_path(out).exists()
    again = _cli(["analyze", *_argv(bench, ckpt, out, "--resume")])
    assert again.returncode == 0, again.stderr[-2000:]
    rows, reference = _rows(out), _rows(run)  # every video once, in order (the reference ran in more threads)
    assert [r["id"] for r in rows] == [r["id"] for r in reference]
    for row, ref in zip(rows, reference):
        assert row["frame_scores"] == pytest.approx(ref["frame_scores"], abs=1e-4)


def test_eval_outputs_that_do_not_fit_are_one_line_and_leave_no_partial_file(bench, ckpt, tmp_path):
    """``eval --per-video`` / ``--json`` on a full disk (a file-size limit): exit 2 with one line naming the
    file, no traceback, no temp file, no half-written result; the earlier result file stays whole."""
    from nsnet.cli import evaluate as eval_cli

    cache = tmp_path / "cache"
    base = ["eval", "--data", str(bench / "annotations.json"), "--subset", "all", "--checkpoint", str(ckpt),
            "--device", "cpu", "--no-progress", "--cache-dir", str(cache)]
    out = tmp_path / "out"
    out.mkdir()
    old = out / "eval.json"
    # a first run fills the feature cache, so the limited runs below only write their outputs
    assert eval_cli.main(base[1:] + ["--json", str(old), "--per-video", str(out / "rows.jsonl")]) == 0
    before, rows_before = _sha(old), _sha(out / "rows.jsonl")
    row_bytes = len((out / "rows.jsonl").read_text().splitlines()[0]) + 1
    for flags in (["--per-video", str(out / "rows.jsonl")], ["--json", str(old)]):
        done = _cli(base + flags, preexec=_limit_file_size(row_bytes // 2))  # half a row, half a result
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-2000:]
        assert "file too large" in lines[0] and Path(flags[1]).name in lines[0], lines[0]
        assert _leftovers(out) == []
        assert _sha(old) == before and _sha(out / "rows.jsonl") == rows_before  # the earlier files stay whole


MERGE = """
import resource, sys
from nsnet.evaluation import jsonl
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
try:
    jsonl.merge(sys.argv[1], {})
except jsonl.ResultFileError as exc:
    print(exc)
"""


def test_a_merge_that_does_not_fit_leaves_no_temp_file_and_every_part(run, tmp_path):
    out = tmp_path / "rows.jsonl"
    lines = run.read_text().splitlines(keepends=True)
    jsonl.part_path(out, 0).write_text("".join(lines[0::2]))
    jsonl.part_path(out, 1).write_text("".join(lines[1::2]))
    parts = {p: _sha(p) for p in jsonl.part_files(out)}
    limit = max(p.stat().st_size for p in parts) + 10  # each part fits, the merged file does not
    done = subprocess.run([sys.executable, "-c", MERGE, str(out), str(limit)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "cannot write" in done.stdout and "file too large" in done.stdout and "--resume" in done.stdout
    assert not out.exists() and _leftovers(tmp_path) == []
    assert {p: _sha(p) for p in jsonl.part_files(out)} == parts


def test_a_full_disk_while_writing_rows_is_one_line(bench, ckpt, tmp_path, monkeypatch, caplog):
    out = tmp_path / "rows.jsonl"
    real_write = os.write

    def full(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}") == str(out):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    assert _analyze(bench, ckpt, out) == 2
    monkeypatch.undo()
    line = _one_error_line(caplog)
    assert line.startswith(f"cannot write {out}: no space left on the device") and "--resume" in line
    assert _leftovers(tmp_path) == [] and not jsonl.lock_path(out).exists()


def test_out_that_is_a_folder_is_one_line_and_leaves_nothing(bench, ckpt, tmp_path, caplog):
    out = tmp_path / "runs"
    out.mkdir()
    assert _analyze(bench, ckpt, out) == 2
    assert "runs: is a folder, not a regular file" in _one_error_line(caplog)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"] and not any(out.iterdir())


def test_out_that_is_a_fifo_is_refused_up_front(bench, ckpt, tmp_path):
    out = tmp_path / "rows.jsonl"
    os.mkfifo(out)
    done = _cli(["analyze", *_argv(bench, ckpt, out)], timeout=120)
    assert done.returncode == 2 and "is a FIFO (named pipe), not a regular file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_a_sidecar_that_is_a_folder_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "rows.jsonl"
    jsonl.run_path(out).mkdir()
    with pytest.raises(jsonl.ResultFileError, match=r"rows.run.json: is a folder"):
        jsonl.check_out(out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(jsonl.ResultFileError, match="is not a folder"):
        jsonl.check_out(tmp_path / "file" / "sub" / "rows.jsonl")


# ----------------------------------------------------------------------------- checkpoints (decisions)
def test_nan_or_infinite_weights_are_refused_naming_the_tensor(ckpt, tmp_path):
    from safetensors.torch import load_file, save_file

    for value in (math.nan, math.inf):
        bad = tmp_path / f"bad-{value}"
        shutil.copytree(ckpt, bad)
        state = load_file(str(bad / "model.safetensors"))
        name = sorted(k for k in state if k.startswith("recognizer.") and state[k].is_floating_point())[-1]
        state[name].view(-1)[0] = value
        save_file(state, str(bad / "model.safetensors"))
        with pytest.raises(CheckpointError, match=f"tensor {name} holds 1 NaN or infinite"):
            Pipeline.from_pretrained(bad, device="cpu")


def test_duplicate_class_names_are_refused_naming_one(ckpt, tmp_path):
    bad = tmp_path / "dup"
    shutil.copytree(ckpt, bad)
    config = json.loads((bad / "config.json").read_text())
    names = config["class_names"]
    config["class_names"] = [names[0], names[1], names[0]]
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"1 class name\\(s\\) appear more than once \\(e.g. '{names[0]}', 2 "):
        Pipeline.from_pretrained(bad, device="cpu")
    assert Pipeline.from_pretrained(ckpt, device="cpu").class_names == names  # the original loads
