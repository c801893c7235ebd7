"""``analyze``'s own bookkeeping (resume, part files, merge, the summary's counts), fast.

The per-video work (:func:`nsnet.evaluation.engine.run`) is replaced by a stand-in that
records which videos it was handed and writes a row from made-up per-frame outputs, so
these tests can count the video passes: a resumed run must not analyse again what the
first run wrote, and the summary's ``processed`` must be the number of videos this run
actually analysed. The real engine runs end to end in tests/test_analyze.py.
"""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import naive
from nsnet.data.records import VideoRecord
from nsnet.evaluation import analyze as analyze_mod
from nsnet.evaluation import engine, jsonl
from nsnet.evaluation.analyze import AnalyzeOptions, analyze
from nsnet.evaluation.rows import ROW_METHODS, VideoOutputs, error_row, make_row

NAMES = ["run", "jump", "swim"]
T, K, LAM = 6, 2, 0.3
IDS = ["v0", "v1", "v2", "v3", "v4", "broken"]
COST = {"sampler": 1.0, "recognizer": 2.0, "total": 3.0, "dense": 6.0}


def _records(ids=IDS) -> list[VideoRecord]:
    return [VideoRecord(v, Path(f"/videos/{v}.mp4"), NAMES[i % 3], i % 3, "validation", 6.0,
                        ((1.0, 2.5),)) for i, v in enumerate(ids)]


def _outputs(video_id: str) -> VideoOutputs:
    """Made-up but fixed per-frame outputs of one video (a function of its id only)."""
    gen = torch.Generator().manual_seed(sum(map(ord, video_id)))
    probs = torch.softmax(3 * torch.randn(T, len(NAMES), generator=gen), -1)
    return VideoOutputs(torch.rand(T, generator=gen), torch.rand(T, generator=gen), probs)


class Engine:
    """Stands in for ``engine.run``: records each video it is handed, marks its rows with the pass number."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.kwargs: list[dict] = []

    def __call__(self, pipe, infos, write, *, num_frames, k, lam, seed=0, **kwargs):
        self.calls.append([info.id for info in infos])
        self.kwargs.append(dict(kwargs, num_frames=num_frames, k=k, lam=lam, seed=seed))
        mark = float(len(self.calls))
        for info in infos:
            times = {"decode": mark, "sampler": 0.0, "recognizer": 0.0, "total": mark}
            if info.id == "broken":
                write(error_row(info, "cannot decode", times))
            else:
                ts = naive.tsn_centres(6.0, num_frames)
                write(make_row(info, _outputs(info.id), ts, 6.0, k=k, lam=lam, seed=seed, cost=COST,
                               class_names=pipe.class_names, timings_ms=times))
        return len(infos)

    @property
    def passes(self) -> list[str]:
        return [v for call in self.calls for v in call]


@pytest.fixture
def fake(monkeypatch):
    run = Engine()
    monkeypatch.setattr(engine, "run", run)
    return run


@pytest.fixture(scope="module")
def pipe():
    """What analyze reads of a pipeline (config, class names, device, precision; weights for the fingerprint).

    A stand-in: no network runs here, and building a real one for each of the mutation run's
    mutants would cost seconds each."""
    from nsnet.config import PipelineConfig, RecognizerConfig, SamplerConfig

    torch.manual_seed(0)
    cfg = PipelineConfig(class_names=NAMES, num_frames=T, k=K, lam=0.5,
                         sampler=SamplerConfig(backbone="efficientnet_lite0", backbone_pretrained=False, input_size=64,
                                               hidden_dim=16, attention_dim=8),
                         recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=False,
                                                     input_size=64))
    return SimpleNamespace(config=cfg, sampler=nn.Linear(2, 2), recognizer=nn.Linear(2, 3), class_names=NAMES,
                           device=torch.device("cpu"), compute_precision="fp32")


def _opts(out, **kw) -> AnalyzeOptions:
    return AnalyzeOptions(out=str(out), num_frames=T, k=K, lam=LAM, progress=False, **kw)


def _rows(out) -> list[dict]:
    return [json.loads(line) for line in Path(out).read_text().splitlines()]


def test_a_run_analyses_each_video_once_and_counts_what_it_did(fake, pipe, tmp_path):
    out = tmp_path / "rows.jsonl"
    summary = analyze(pipe, _records(), _opts(out))
    assert fake.passes == IDS
    rows = _rows(out)
    assert [r["id"] for r in rows] == IDS
    assert summary["processed"] == 6 and summary["num_videos"] == 6
    assert summary["counts"]["videos"] == 6 and summary["counts"]["errors"] == 1 and summary["counts"]["ok"] == 5
    assert summary["t"] == T and summary["k"] == K and summary["lam"] == LAM and summary["seed"] == 0
    # the summary's numbers, from the rows by a naive second implementation
    ok = [r for r in rows if r["error"] is None]
    labels = [NAMES.index(r["gt"]) for r in ok]
    for m in ROW_METHODS:
        scores = [r["class_scores"][m] for r in ok]
        assert summary["methods"][m]["map"] == pytest.approx(naive.mean_average_precision(scores, labels), abs=1e-7)
        assert summary["methods"][m]["top1"] == pytest.approx(naive.top1(scores, labels))
    for r in ok:  # every row at lam = 0.3 from its own curves
        assert r["fused"] == pytest.approx(naive.fuse(r["frame_scores"], r["attention"], LAM), abs=1e-6)
        assert r["selected"] == naive.topk(r["fused"], K)
    assert json.loads(jsonl.summary_path(out).read_text())["processed"] == 6
    assert not jsonl.part_files(out)


def test_processed_counts_the_rows_this_run_wrote_not_what_was_asked(fake, pipe, tmp_path, monkeypatch):
    """``processed`` is counted (rows written), not derived from the inputs: an engine that writes no row
    for one video makes it 5 of 6, and the summary still names 6 inputs."""
    def lossy(pipe_, infos, write, **kw):
        kept = []
        fake(pipe_, infos, lambda row: kept.append(row) if row["id"] == "v2" else write(row), **kw)
        return len(infos)

    monkeypatch.setattr(engine, "run", lossy)
    out = tmp_path / "rows.jsonl"
    summary = analyze(pipe, _records(), _opts(out))
    assert fake.passes == IDS
    assert [r["id"] for r in _rows(out)] == [v for v in IDS if v != "v2"]
    assert summary["processed"] == 5 and summary["num_videos"] == 5


def test_the_seed_reaches_the_engine_and_the_wall_time_is_this_runs(fake, pipe, tmp_path):
    import time

    start = time.perf_counter()
    summary = analyze(pipe, _records(), _opts(tmp_path / "rows.jsonl", seed=3))
    elapsed = time.perf_counter() - start
    assert [kw["seed"] for kw in fake.kwargs] == [3] and summary["seed"] == 3
    assert 0 <= summary["wall_s"] <= elapsed + 0.01


def test_resume_analyses_only_the_missing_videos_and_keeps_the_first_rows(fake, pipe, tmp_path):
    out = tmp_path / "rows.jsonl"
    analyze(pipe, _records(IDS[:2]), _opts(out))          # pass 1: v0, v1
    first = out.read_bytes()
    summary = analyze(pipe, _records(), _opts(out, resume=True))  # pass 2: the rest only
    assert fake.calls == [IDS[:2], IDS[2:]]
    assert summary["processed"] == 4 == len(fake.calls[1]) and summary["num_videos"] == 6
    rows = _rows(out)
    assert [r["id"] for r in rows] == IDS
    assert out.read_bytes().startswith(first)  # the first run's rows, byte for byte
    assert [r["timings_ms"]["decode"] for r in rows] == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    # nothing left to do: a third resume analyses nothing and says so
    again = analyze(pipe, _records(), _opts(out, resume=True))
    assert fake.calls[2:] in ([[]], []) and again["processed"] == 0 and again["num_videos"] == 6
    assert [r["id"] for r in _rows(out)] == IDS


def test_resume_takes_the_part_files_of_a_dead_rank(fake, pipe, tmp_path):
    out = tmp_path / "rows.jsonl"
    analyze(pipe, _records(["v0"]), _opts(out))  # OUT.jsonl with v0 and the run file
    ts = naive.tsn_centres(6.0, T)

    def row(vid, mark):
        info = analyze_mod.VideoInfo.from_record(_records(IDS)[IDS.index(vid)])
        return make_row(info, _outputs(vid), ts, 6.0, k=K, lam=LAM, seed=0, cost=COST, class_names=NAMES,
                        timings_ms={"decode": mark, "sampler": 0.0, "recognizer": 0.0, "total": mark})

    part = jsonl.part_path(out, 1)
    lines = [json.dumps(row(v, 7.0)) for v in ("v3", "v1", "v0")]  # v0 again: the copy in OUT.jsonl wins
    part.write_text("\n".join(lines) + "\n" + lines[0][:40])  # and half a row: the rank died writing it
    summary = analyze(pipe, _records(), _opts(out, resume=True))
    assert fake.calls == [["v0"], ["v2", "v4", "broken"]]
    rows = _rows(out)
    assert [r["id"] for r in rows] == IDS  # merged in input order, each once
    assert {r["id"]: r["timings_ms"]["decode"] for r in rows} == {"v0": 1.0, "v1": 7.0, "v2": 2.0, "v3": 7.0,
                                                                   "v4": 2.0, "broken": 2.0}
    assert summary["processed"] == 3 and summary["num_videos"] == 6
    assert not jsonl.part_files(out)


def test_without_resume_an_existing_file_is_refused_and_kept(fake, pipe, tmp_path):
    out = tmp_path / "rows.jsonl"
    analyze(pipe, _records(IDS[:2]), _opts(out))
    before = out.read_bytes()
    with pytest.raises(ValueError, match="--resume"):
        analyze(pipe, _records(), _opts(out))
    assert out.read_bytes() == before and fake.calls == [IDS[:2]]


@pytest.mark.parametrize("change", [dict(k=3), dict(lam=0.7), dict(seed=1), dict(num_frames=8)])
def test_resume_with_other_settings_is_refused(fake, pipe, tmp_path, change):
    out = tmp_path / "rows.jsonl"
    analyze(pipe, _records(IDS[:2]), _opts(out))
    before = out.read_bytes()
    opts = _opts(out, resume=True)
    for key, value in change.items():
        setattr(opts, key, value)
    with pytest.raises(ValueError, match="other settings"):
        analyze(pipe, _records(), opts)
    assert out.read_bytes() == before and fake.calls == [IDS[:2]]


def test_done_ids_merge_and_repair(tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text('{"id": "b", "v": 1}\n{"id": "a", "v": 2}\n{"id": "c", "v"')
    assert jsonl.done_ids(out) == {"a", "b"}
    assert jsonl.repair(out) == len('{"id": "c", "v"') and out.read_text().endswith('"v": 2}\n')
    assert jsonl.repair(out) == 0  # nothing more to cut
    jsonl.part_path(out, 3).write_text('{"id": "d", "v": 4}\nnot json\n{"id": "a", "v": 9}\n')
    jsonl.part_path(out, 0).write_text('{"id": "e", "v": 5}\n')
    assert jsonl.done_ids(out) == {"a", "b", "d", "e"}
    assert jsonl.merge(out, {"e": 0, "a": 1, "b": 2, "c": 3}) == 4
    got = [json.loads(line) for line in out.read_text().splitlines()]
    # in input order; ids the order does not know ("d") last; the first copy of "a" (OUT's) wins
    assert got == [{"id": "e", "v": 5}, {"id": "a", "v": 2}, {"id": "b", "v": 1}, {"id": "d", "v": 4}]
    assert not jsonl.part_files(out)


def test_repair_of_a_file_that_is_one_half_line(tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text('{"id": "a", "v"')
    assert jsonl.repair(out) == 15 and out.read_bytes() == b""
    assert jsonl.repair(tmp_path / "missing.jsonl") == 0
    big = tmp_path / "big.jsonl"  # a row longer than the 64 KiB block repair reads backwards in
    good = json.dumps({"id": "a", "pad": "x" * 100_000}) + "\n"
    big.write_text(good + '{"id": "b", "pad": "' + "y" * 70_000)
    assert jsonl.repair(big) == 70_000 + len('{"id": "b", "pad": "') and big.read_text() == good
    assert jsonl.done_ids(big) == {"a"}


def test_merge_orders_rows_by_input_then_file_order(tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text("".join(json.dumps({"id": v}) + "\n" for v in ("z", "b", "y", "a")))
    assert jsonl.merge(out, {"a": 0, "b": 1}) == 4
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "b", "z", "y"]
    assert np.array_equal(sorted(jsonl.done_ids(out)), ["a", "b", "y", "z"])


def test_the_run_passes_its_options_on_and_records_them(fake, pipe, tmp_path, caplog):
    out = tmp_path / "rows.jsonl"
    analyze(pipe, _records(IDS[:2]), _opts(out))
    opts = _opts(out, resume=True, seed=0, batch_size=3, workers=2, time_budget_s=12.5)
    with caplog.at_level("INFO", logger="nsnet.evaluation.analyze"):
        summary = analyze(pipe, _records(), opts)
    assert fake.kwargs[1] == dict(num_frames=T, k=K, lam=LAM, seed=0, batch_size=3, workers=2, time_budget_s=12.5,
                                  progress=False, is_main=True, scale=1)
    assert "6 videos: 2 done before, 4 to analyse on 1 process(es)" in caplog.messages
    assert (summary["world_size"], summary["batch_size"], summary["workers"]) == (1, 3, 2)
    assert summary["device"] == "cpu" and summary["out"] == str(out)
    assert summary["wall_s"] == round(summary["wall_s"], 2) and summary["wall_s"] >= 0
    assert summary["videos_per_s"] == round(summary["videos_per_s"], 3) > 0
    assert summary["videos_per_s"] >= 4 / max(summary["wall_s"] + 0.005, 1e-9) * 0.99  # 4 videos over the wall time
    assert "faithfulness" in summary and summary["faithfulness"] is not None  # summarize ran on the rows
    run = jsonl.run_path(out).read_text()
    assert run.startswith('{\n "') and json.loads(run)["k"] == K  # indented one space, as written
    assert jsonl.summary_path(out).read_text().startswith('{\n  "')
    assert json.loads(jsonl.summary_path(out).read_text()) == summary


def test_resume_refuses_files_that_are_not_rows_of_this_run(fake, pipe, tmp_path):
    out = tmp_path / "rows.jsonl"
    analyze(pipe, _records(IDS[:2]), _opts(out))
    good = out.read_text().splitlines()
    row = json.loads(good[0])
    cases = {  # what OUT holds -> what the refusal says
        "short": (json.dumps(dict(row, fused=row["fused"][:-1])) + "\n", "line 1 is not a row of this run"),
        "keys": (json.dumps(dict(row, extra=1)) + "\n", r"\(keys \['extra'\] differ from the row keys\): not resuming "
                                                         r"onto it \(it is left as it is\); write to another --out$"),
        "k": (json.dumps(dict(row, selected=row["selected"][:1])) + "\n", "line 1 is not a row of this run"),
        "classes": (json.dumps(dict(row, frame_probs=[p[:2] for p in row["frame_probs"]])) + "\n",
                    "line 1 is not a row of this run"),
        "not json": (good[0] + "\nnot a row\n", "line 2 is not a row of this run"),
    }
    for name, (text, message) in cases.items():
        out.write_text(text)
        with pytest.raises(ValueError, match=message):
            analyze(pipe, _records(), _opts(out, resume=True))
        assert out.read_text() == text, name  # left as it was
    assert fake.calls == [IDS[:2]]
    # only the first rows are checked field by field; blank lines are not rows
    bad = json.dumps(dict(row, fused=row["fused"][:-1], id="late"))
    out.write_text("\n".join([json.dumps(dict(row, id=f"x{i}")) for i in range(8)] + ["", bad]) + "\n")
    analyze(pipe, _records(), _opts(out, resume=True))
    assert fake.calls[-1] == IDS  # none of ours was done


def test_resume_without_a_run_file_or_with_an_old_one(fake, pipe, tmp_path, caplog):
    out = tmp_path / "rows.jsonl"
    analyze(pipe, _records(IDS[:2]), _opts(out))
    run = json.loads(jsonl.run_path(out).read_text())
    jsonl.run_path(out).unlink()
    with pytest.raises(ValueError, match=r"rows.jsonl: not resuming onto it: there is no rows.run.json beside it"):
        analyze(pipe, _records(), _opts(out, resume=True))
    run.pop("fingerprint")  # a file from before fingerprints: resumed, with a warning
    jsonl.run_path(out).write_text(json.dumps(run))
    with caplog.at_level("WARNING", logger="nsnet.evaluation.jsonl"):
        analyze(pipe, _records(), _opts(out, resume=True))
    assert any("rows.run.json records no model fingerprint (an older nsnet): the model cannot be checked" in m
               for m in caplog.messages)
    assert fake.calls[-1] == IDS[2:]
    # an empty OUT is no run to resume, nor one to refuse
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    analyze(pipe, _records(IDS[:1]), _opts(empty))
    assert fake.calls[-1] == IDS[:1]


def test_the_settings_refusal_names_both_values(fake, pipe, tmp_path):
    out = tmp_path / "rows.jsonl"
    analyze(pipe, _records(IDS[:2]), _opts(out))
    opts = _opts(out, resume=True)
    opts.k, opts.seed = 3, 4
    with pytest.raises(ValueError, match=r"rows.jsonl was written with other settings \(k=2, seed=0; this run: k=3, "
                                         r"seed=4\): resume with the same ones, or write to another --out$"):
        analyze(pipe, _records(), opts)


def test_merge_skips_partial_and_bad_lines_but_not_the_rows_after_them(tmp_path, caplog):
    out = tmp_path / "x.jsonl"
    out.write_text('{"id": "a"}\n')
    jsonl.part_path(out, 0).write_text('not json\n{"id": "a"}\n{"id": "b"}\n{"id": "c"}\n')
    jsonl.part_path(out, 1).write_text('{"id": "d"}\n{"id": "e", "v"')
    assert jsonl.merge(out, {}) == 4
    assert out.read_text() == '{"id": "a"}\n{"id": "b"}\n{"id": "c"}\n{"id": "d"}\n'
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"id": "a"}\n')
    with caplog.at_level("WARNING", logger="nsnet.evaluation.jsonl"):
        assert jsonl.repair(clean) == 0
        newline_first = tmp_path / "n.jsonl"
        newline_first.write_text('\n{"id": "a", "v"')
        assert jsonl.repair(newline_first) == 15 and newline_first.read_text() == "\n"
    assert caplog.messages == [f"{newline_first}: removed a partially written last line (15 bytes)"]
