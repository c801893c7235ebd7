"""``nsnet analyze`` end to end on a tiny generated benchmark: rows, eval agreement, resume, torchrun.

The dataset: 8 generated videos plus an unlabelled copy of the testing subset, a missing
file and a damaged one. The model: a tiny pipeline (the packaged pretrained
EfficientNet-Lite0 at 64 px, random heads) saved as a checkpoint; with random backbones
every preview would score the same.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import naive
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from nsnet.cli import analyze as analyze_cli
from nsnet.cli import evaluate as eval_cli
from nsnet.config import PipelineConfig, RecognizerConfig, SamplerConfig
from nsnet.data.synthetic import main as make_synthetic
from nsnet.evaluation import jsonl
from nsnet.evaluation.analyze import resolve_inputs
from nsnet.evaluation.rows import ROW_KEYS, ROW_METHODS, summarize
from nsnet.inference import Pipeline
from nsnet.inference.methods import select, video_seed

ROOT = Path(__file__).resolve().parent.parent
T, K = 6, 2
VOLATILE = ("timings_ms",)  # wall times differ between runs; everything else must not


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """``mixed.json``: the 8 labelled videos, 2 unlabelled (ActivityNet testing style), a missing and a damaged one."""
    root = tmp_path_factory.mktemp("analyze") / "data"
    assert make_synthetic([str(root), "--videos", "8", "--seed", "5", "--classes", "3", "--size", "96x72"]) == 0
    doc = json.loads((root / "annotations.json").read_text())
    db = doc["database"]
    videos = sorted((root / "videos").glob("*.mp4"))
    for i, src in enumerate(videos[:2]):  # unlabelled copies: no annotations, as the official testing subset
        shutil.copy(src, root / "videos" / f"unlabelled_{i}.mp4")
        db[f"unlabelled_{i}"] = {"subset": "testing", "duration": db[src.stem]["duration"], "annotations": []}
    db["missing_video"] = {"subset": "validation", "duration": 10.0,
                           "annotations": [{"segment": [1.0, 4.0], "label": doc["taxonomy"][1]["nodeName"]}]}
    data = videos[2].read_bytes()
    (root / "videos" / "damaged.mp4").write_bytes(data[:48] + bytes(len(data) // 3))  # header kept, rest zeroed
    db["damaged"] = {"subset": "validation", "duration": db[videos[2].stem]["duration"],
                     "annotations": db[videos[2].stem]["annotations"]}
    (root / "mixed.json").write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def checkpoint(dataset, tmp_path_factory):
    names = (dataset / "classes.txt").read_text().split()
    cfg = PipelineConfig(class_names=names, num_frames=T, k=K, lam=0.5,
                         sampler=SamplerConfig(backbone="efficientnet_lite0", backbone_pretrained=True, input_size=64,
                                               hidden_dim=32, attention_dim=16),
                         recognizer=RecognizerConfig(backbone="efficientnet_lite0", backbone_pretrained=True,
                                                     input_size=64))
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    Pipeline.build(cfg, device="cpu").save_pretrained(folder)
    return folder


def _strict(path: Path) -> list[dict]:
    """Every line of a JSONL file, parsed as strict JSON (NaN / Infinity rejected)."""
    def reject(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return [json.loads(line, parse_constant=reject) for line in path.read_text().splitlines()]


def _stable(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in VOLATILE}


def _analyze(dataset, checkpoint, out, *extra) -> int:
    return analyze_cli.main([str(dataset / "mixed.json"), "--checkpoint", str(checkpoint), "--out", str(out),
                             "--device", "cpu", "--no-progress", "--batch-size", "3", *extra])


@pytest.fixture(scope="module")
def full_run(dataset, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "rows.jsonl"
    assert _analyze(dataset, checkpoint, out, "--workers", "1") == 0
    return out


# ----------------------------------------------------------------------------- rows
def test_rows_follow_the_schema(full_run, dataset):
    rows = _strict(full_run)
    records, _ = resolve_inputs([dataset / "mixed.json"])
    assert [r["id"] for r in rows] == [r.video_id for r in records]  # every video once, in input order
    for row in rows:
        assert tuple(row) == ROW_KEYS, row["id"]
    by_id = {r["id"]: r for r in rows}
    assert "no such file" in by_id["missing_video"]["error"] or "not found" in by_id["missing_video"]["error"]
    assert by_id["damaged"]["error"] and "damaged.mp4" in by_id["damaged"]["error"]
    for bad in ("missing_video", "damaged"):
        row = by_id[bad]
        assert "\n" not in row["error"] and row["selected"] == [] and row["nsnet"] is None
        assert row["gt"] is not None and row["segments"]  # what is known about the video is still there
    for i in range(2):
        row = by_id[f"unlabelled_{i}"]
        assert row["error"] is None and row["gt"] is None and row["segments"] == [] and row["saliency_ap"] is None
        assert all(row[m]["correct"] is None for m in ROW_METHODS)
    ok = [r for r in rows if r["error"] is None]
    assert len(ok) == 10
    # the tiny model (pretrained backbones, random heads) tells previews and videos apart: nothing here passes by ties
    # (the 2 unlabelled videos are copies of 2 labelled ones)
    assert len({tuple(r["frame_scores"]) for r in ok}) == 8 and all(len(set(r["fused"])) == T for r in ok)
    for row in ok:
        assert len(row["timestamps_s"]) == len(row["frame_scores"]) == len(row["attention"]) == T
        assert len(row["fused"]) == len(row["teacher"]) == T
        assert len(row["selected"]) == K and row["selected"] == sorted(row["selected"])
        assert row["duration_s"] > 0 and row["timestamps_s"][-1] <= row["duration_s"]
        assert set(row["gflops"]) == set(ROW_METHODS) and row["gflops"]["dense"] > row["gflops"]["uniform"]
        assert row["gflops"]["uniform"] == row["gflops"]["random"] < row["gflops"]["nsnet"]
        assert set(row["timings_ms"]) == {"decode", "sampler", "recognizer", "total"}
        for m in ROW_METHODS:
            scores = row["class_scores"][m]
            assert len(scores) == 3 and abs(sum(scores) - 1) < 1e-4
            assert row[m]["score"] == max(scores)
            if row["gt"] is not None:
                assert row[m]["correct"] == (row[m]["label"] == row["gt"])
        # the teacher is the recognizer's confidence in NSNet's predicted class on every preview
        top = row["class_scores"]["nsnet"].index(max(row["class_scores"]["nsnet"]))
        assert np.mean(row["teacher"]) == pytest.approx(row["class_scores"]["dense"][top], abs=1e-6)
        probs = np.asarray(row["frame_probs"], dtype=np.float32)  # (T, C): the recognizer on every preview
        assert probs.shape == (T, 3) and np.allclose(probs.sum(1), 1, atol=1e-4)
        assert np.allclose(probs[:, top], row["teacher"], atol=1e-7)
        assert np.allclose(probs.mean(0), row["class_scores"]["dense"], atol=1e-6)
        assert np.allclose(probs[row["selected"]].mean(0), row["class_scores"]["nsnet"], atol=1e-6)
        if row["gt"] is not None:  # the fused score's AP against the previews inside a segment, brute force
            inside = naive.inside(row["timestamps_s"], row["segments"])
            want = naive.average_precision(row["fused"], inside) if 0 < sum(inside) < T else None
            assert row["saliency_ap"] == (None if want is None else pytest.approx(want, abs=1e-9)), row["id"]
    summary = json.loads(jsonl.summary_path(full_run).read_text())
    assert summary["counts"] == {"videos": 12, "ok": 10, "errors": 2, "labelled": 8, "unlabelled": 2,
                                 "unknown_label": 0}
    assert summary["processed"] == 12 and summary["videos_per_s"] > 0 and summary["t"] == T and summary["k"] == K
    labelled = [r for r in ok if r["gt"] is not None]
    names = (dataset / "classes.txt").read_text().split()  # the checkpoint's classes, in its order
    for m in ROW_METHODS:  # mAP and top-1 from the rows by a naive second implementation
        scores, labels = [r["class_scores"][m] for r in labelled], [names.index(r["gt"]) for r in labelled]
        assert summary["methods"][m]["map"] == pytest.approx(naive.mean_average_precision(scores, labels), abs=1e-6)
        assert summary["methods"][m]["top1"] == pytest.approx(naive.top1(scores, labels)), m
    assert not jsonl.part_files(full_run)


def test_rows_give_the_explorer_its_accuracy_by_k(full_run, checkpoint):
    """The Dataset tab's accuracy-vs-K curve, from a results file alone, agrees with the rows' own methods at K."""
    from app.state.rows import read_results
    from nsnet.evaluation.stats import accuracy_by_k

    results = read_results(full_run)
    assert results.has_frame_probs
    labelled = [r for r in results.rows.values() if r["gt"] is not None and r["error"] is None]
    curve = accuracy_by_k(list(results.rows.values()), Pipeline.from_pretrained(checkpoint).class_names, lam=0.5)
    assert curve is not None and curve["t"] == T and curve["n"] == len(labelled) == 8
    for m in ("nsnet", "uniform", "random"):
        assert curve[m][K - 1] == pytest.approx(np.mean([r[m]["correct"] for r in labelled])), m
    assert curve["dense"] == pytest.approx(np.mean([r["dense"]["correct"] for r in labelled]))


def test_rows_match_the_pipeline_on_one_clip(full_run, checkpoint):
    """The engine (features of a batch, then heads) decides what Pipeline.analyze decides for one video."""
    pipe = Pipeline.from_pretrained(checkpoint, device="cpu")
    row = next(r for r in _strict(full_run) if r["error"] is None and r["gt"] is not None)
    res = pipe.analyze(row["path"], T, K, dense=True)
    assert row["selected"] == res.selected.tolist()
    assert row["nsnet"]["label"] == res.labels[0]["label"]
    np.testing.assert_allclose(row["frame_scores"], res.frame_scores, atol=1e-5)
    np.testing.assert_allclose(row["class_scores"]["dense"], res.frame_probs.mean(0), atol=1e-5)


def test_analyze_and_eval_agree_exactly(full_run, dataset, checkpoint, tmp_path):
    js, per_video = tmp_path / "eval.json", tmp_path / "eval_rows.jsonl"
    assert eval_cli.main(["--data", str(dataset / "mixed.json"), "--checkpoint", str(checkpoint), "--subset", "all",
                          "--cache-dir", str(tmp_path / "cache"), "--json", str(js), "--per-video", str(per_video),
                          "--no-progress", "--device", "cpu"]) == 0
    agg = json.loads(js.read_text())
    assert agg["num_videos"] == 8  # the labelled, readable ones
    analysed = json.loads(jsonl.summary_path(full_run).read_text())
    eval_rows = _strict(per_video)
    from_rows = summarize(eval_rows, (dataset / "classes.txt").read_text().split())
    for m in ROW_METHODS:
        for metric in ("map", "top1"):
            assert analysed["methods"][m][metric] == agg["methods"][m][metric], (m, metric)  # analyze == eval
            assert from_rows["methods"][m][metric] == agg["methods"][m][metric], (m, metric)  # eval rows == eval
    assert analysed["saliency_ap"] == pytest.approx(agg["saliency_ap"], abs=1e-12)
    # the rows themselves: every labelled, readable video has the same outputs in both
    ours = {r["id"]: r for r in _strict(full_run)}
    assert {r["id"] for r in eval_rows} == {i for i, r in ours.items() if r["gt"] is not None}
    for row in eval_rows:
        mine = ours[row["id"]]
        if row["error"]:
            assert mine["error"]
            continue
        for key in ("selected", "frame_scores", "attention", "fused", "teacher", "class_scores", "timestamps_s",
                    *ROW_METHODS, "saliency_ap", "gflops"):
            assert row[key] == mine[key], (row["id"], key)
        assert row["timings_ms"] is None


# ----------------------------------------------------------------------------- resume
def test_sigkill_then_resume_gives_every_video_once(dataset, checkpoint, full_run, tmp_path):
    out = tmp_path / "rows.jsonl"
    cmd = [sys.executable, "-m", "nsnet", "analyze", str(dataset / "mixed.json"), "--checkpoint", str(checkpoint),
           "--out", str(out), "--device", "cpu", "--no-progress", "--batch-size", "1", "--workers", "0"]
    # the reference rows were computed in this process: the same thread count gives the same bits
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), NSNET_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_file() and out.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert 3 <= len(before) < 12
    with open(out, "a") as f:  # and as if it had died in the middle of writing the next row
        f.write('{"id": "half-written", "path": "x", "frame_sc')
    again = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = _strict(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 12
    assert "half-written" not in ids
    assert json.loads(jsonl.summary_path(out).read_text())["processed"] == 12 - len(before)
    reference = {r["id"]: _stable(r) for r in _strict(full_run)}
    assert {r["id"]: _stable(r) for r in rows} == reference


def test_resume_picks_up_part_files_of_a_dead_rank(dataset, checkpoint, full_run, tmp_path, monkeypatch):
    """A torchrun job whose rank 1 died: its part file holds a few rows and half a line."""
    from nsnet.evaluation import engine

    real_run, handed = engine.run, []

    def counting_run(pipe, infos, *args, **kwargs):  # the real engine, counting the videos it analyses
        handed.extend(info.id for info in infos)
        return real_run(pipe, infos, *args, **kwargs)

    monkeypatch.setattr(engine, "run", counting_run)
    out = tmp_path / "rows.jsonl"
    lines = full_run.read_text().splitlines()
    jsonl.part_path(out, 0).write_text("\n".join(lines[0:6:2]) + "\n")
    jsonl.part_path(out, 1).write_text("\n".join(lines[1:6:2]) + "\n" + lines[7][:50])
    shutil.copy(jsonl.run_path(full_run), jsonl.run_path(out))
    assert _analyze(dataset, checkpoint, out) == 2  # not without --resume
    assert _analyze(dataset, checkpoint, out, "--resume") == 0
    rows = _strict(out)
    assert [_stable(r) for r in rows] == [_stable(json.loads(line)) for line in lines]
    assert handed == [json.loads(line)["id"] for line in lines[6:]]  # only the 6 missing videos ran again
    assert json.loads(jsonl.summary_path(out).read_text())["processed"] == 6
    assert not jsonl.part_files(out)


def test_rows_at_an_asymmetric_lam_follow_from_their_own_curves(dataset, checkpoint, tmp_path):
    """At lam = 0.3 (where curves fused the wrong way round would show; at 0.5 fusion is symmetric) every
    row's fused score, frames and class scores are recomputed by hand from the row's own frame_scores,
    attention and frame_probs (tests/naive.py)."""
    out = tmp_path / "lam.jsonl"
    assert _analyze(dataset, checkpoint, out, "--lam", "0.3", "--max-videos", "4", "--workers", "0") == 0
    rows = [r for r in _strict(out) if r["error"] is None]
    assert len(rows) == 4
    for row in rows:
        fused = naive.fuse(row["frame_scores"], row["attention"], 0.3)
        assert row["fused"] == pytest.approx(fused, abs=1e-6), row["id"]
        assert row["fused"] != pytest.approx(naive.fuse(row["attention"], row["frame_scores"], 0.3), abs=1e-3)
        assert row["selected"] == naive.topk(row["fused"], K), row["id"]
        for m, idx in (("nsnet", row["selected"]), ("uniform", naive.uniform(T, K)), ("dense", range(T))):
            assert row["class_scores"][m] == pytest.approx(naive.mean_rows(row["frame_probs"], idx), abs=1e-6), m
    assert json.loads(jsonl.summary_path(out).read_text())["lam"] == 0.3


def test_resume_refuses_other_settings(dataset, checkpoint, tmp_path):
    out = tmp_path / "rows.jsonl"
    assert _analyze(dataset, checkpoint, out, "--max-videos", "2", "--workers", "0") == 0
    assert _analyze(dataset, checkpoint, out, "--max-videos", "3", "--workers", "0") == 2  # exists: --resume?
    assert _analyze(dataset, checkpoint, out, "--resume", "--k", "3", "--workers", "0") == 2  # other K
    assert _analyze(dataset, checkpoint, out, "--resume", "--max-videos", "3", "--workers", "0") == 0
    assert len(_strict(out)) == 3


def test_bf16_precision_is_close_recorded_and_shared_with_eval(dataset, tmp_path):
    """``--precision bf16`` on CPU: autocast really runs (numbers move a little), the run
    records it, a resume in another precision is refused, and eval in bf16 (its own cache
    entries: the fp32 features cached first are not reused) agrees with it exactly.
    The bundled demo model (real backbones): a random tiny one scores every frame alike."""
    demo = ROOT / "assets" / "demo-model"
    fp32, bf16, cache = tmp_path / "fp32.jsonl", tmp_path / "bf16.jsonl", tmp_path / "cache"
    eval_args = ["--data", str(dataset / "mixed.json"), "--checkpoint", str(demo), "--subset", "all",
                 "--cache-dir", str(cache), "--no-progress", "--device", "cpu", "--max-videos", "4"]
    first4 = ("--max-videos", "4", "--workers", "0")  # the first 4 of mixed.json: labelled, decodable
    assert eval_cli.main([*eval_args, "--json", str(tmp_path / "fp32.json")]) == 0  # fills the cache in fp32
    assert _analyze(dataset, demo, fp32, *first4) == 0
    assert _analyze(dataset, demo, bf16, "--precision", "bf16", *first4) == 0
    assert json.loads(jsonl.run_path(fp32).read_text())["precision"] == "fp32"  # the default on CPU
    assert json.loads(jsonl.run_path(bf16).read_text())["precision"] == "bf16"
    assert json.loads(jsonl.summary_path(bf16).read_text())["precision"] == "bf16"
    ref = {r["id"]: r for r in _strict(fp32)}
    rows = [r for r in _strict(bf16) if r["error"] is None]
    assert len(rows) == 4
    for row in rows:
        for key in ("frame_probs", "frame_scores"):  # changed (bf16 ran), but only a little
            diff = np.abs(np.subtract(row[key], ref[row["id"]][key]))
            assert 0 < diff.max() < 0.25 and diff.mean() < 0.05, (row["id"], key, diff.max(), diff.mean())
    assert _analyze(dataset, demo, bf16, "--resume", "--precision", "fp32", *first4) == 2
    assert _analyze(dataset, demo, tmp_path / "fp16.jsonl", "--precision", "fp16") == 2  # CUDA only
    assert eval_cli.main([*eval_args, "--precision", "bf16", "--per-video", str(tmp_path / "eval.jsonl"),
                          "--json", str(tmp_path / "bf16.json")]) == 0
    assert json.loads((tmp_path / "fp32.json").read_text())["precision"] == "fp32"
    assert json.loads((tmp_path / "bf16.json").read_text())["precision"] == "bf16"
    ours = {r["id"]: r for r in rows}
    assert sorted(r["id"] for r in _strict(tmp_path / "eval.jsonl")) == sorted(ours)  # the same 4 videos
    for row in _strict(tmp_path / "eval.jsonl"):
        if row["error"] is None:
            for key in ("selected", "frame_scores", "attention", "class_scores", "frame_probs"):
                assert row[key] == ours[row["id"]][key], (row["id"], key)


def test_bench_analyze_times_the_loop_and_each_precision(dataset, tmp_path, capsys):
    from nsnet.benchmarks.analyze import main as bench_main

    out = tmp_path / "bench.json"
    assert bench_main(["--data", str(dataset), "--checkpoint", str(ROOT / "assets" / "demo-model"), "-T", "6",
                       "-K", "2", "--max-videos", "3", "--rounds", "2", "--workers", "0",
                       "--precision", "fp32", "bf16", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["videos"] == 3 and got["rounds"] == 2 and got["loop"]["videos_per_s"] > 0
    assert set(got["loop"]["median_ms"]) == {"decode", "sampler", "recognizer"}
    assert set(got["analyze"]) == {"fp32", "bf16"}
    for precision, entry in got["analyze"].items():
        assert entry["ratio"] == pytest.approx(got["loop"]["s"] / entry["s"])
        assert entry["counts"]["videos"] == 3 and entry["methods"]["nsnet"]["gflops"] > 0
    assert got["analyze"]["fp32"]["nsnet_label_agreement"] == "3/3"  # same model, same precision: same labels
    text = capsys.readouterr().out
    assert "nsnet analyze --precision bf16" in text and "ratio:" in text


# ----------------------------------------------------------------------------- torchrun
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, argv: list[str]) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    assert analyze_cli.main(argv) == 0


def test_two_processes_give_the_rows_of_one(dataset, checkpoint, tmp_path):
    base = [str(dataset / "mixed.json"), "--checkpoint", str(checkpoint), "--device", "cpu", "--no-progress",
            "--batch-size", "2", "--workers", "0"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each rank uses: the same bits
    try:
        assert analyze_cli.main(base + ["--out", str(one)]) == 0   # one process: this one (a spawn costs ~5 s)
    finally:
        torch.set_num_threads(threads)
    mp.spawn(_rank_main, args=(2, _free_port(), base + ["--out", str(two)]), nprocs=2, join=True)
    a, b = _strict(one), _strict(two)
    assert [r["id"] for r in a] == [r["id"] for r in b]  # merged in input order
    assert [_stable(r) for r in a] == [_stable(r) for r in b]
    assert not jsonl.part_files(two)
    s1, s2 = (json.loads(jsonl.summary_path(p).read_text()) for p in (one, two))
    assert s1["methods"] == s2["methods"] and s2["world_size"] == 2 and s2["processed"] == 12


# ----------------------------------------------------------------------------- pieces
def test_inputs_folders_files_and_missing_ones(dataset, tmp_path):
    nested = tmp_path / "clips" / "a" / "b"
    nested.mkdir(parents=True)
    src = sorted((dataset / "videos").glob("syn_*.mp4"))
    shutil.copy(src[0], nested / "one.mp4")
    shutil.copy(src[1], tmp_path / "clips" / "two.mkv")
    (tmp_path / "clips" / "notes.txt").write_text("not a video")
    records, names = resolve_inputs([tmp_path / "clips"])
    assert names is None and [r.video_id for r in records] == ["a/b/one", "two"]
    assert all(r.label is None and r.label_index == -1 for r in records)
    records, _ = resolve_inputs([src[0], tmp_path / "nope.mp4", src[0]])
    assert [r.video_id for r in records] == [src[0].stem, "nope"]  # listed twice: once
    records, names = resolve_inputs([dataset / "mixed.json"], subset="testing")
    assert {r.video_id for r in records} >= {"unlabelled_0", "unlabelled_1"} and len(names) == 3


def test_random_k_is_seeded_per_video():
    p = torch.rand(3, 16)
    seeds = [video_seed(0, v) for v in ("a", "b", "c")]
    together = select("random", p, p, 4, 0.5, seed=seeds)
    alone = torch.cat([select("random", p[i:i + 1], p[i:i + 1], 4, 0.5, seed=[s]) for i, s in enumerate(seeds)])
    assert torch.equal(together, alone)  # a video's frames do not depend on the others
    assert video_seed(0, "a") == video_seed(0, "a") != video_seed(1, "a")
    assert torch.equal(select("random", p, p, 4, 0.5, seed=7), select("random", p, p, 4, 0.5, seed=7))


def test_jsonl_repair_merge_and_order(tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text('{"id": "b", "v": 1}\n{"id": "a", "v": 2}\n{"id": "c", "v"')
    assert jsonl.done_ids(out) == {"a", "b"}
    assert jsonl.repair(out) > 0 and out.read_text().endswith("\n")
    jsonl.part_path(out, 3).write_text('{"id": "d", "v": 4}\nnot json\n{"id": "a", "v": 9}\n')
    assert jsonl.done_ids(out) == {"a", "b", "d"}
    assert jsonl.merge(out, {"a": 0, "b": 1, "c": 2, "d": 3}) == 3
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"id": "a", "v": 2}, {"id": "b", "v": 1}, {"id": "d", "v": 4}]
    assert not jsonl.part_files(out)
    with jsonl.RowWriter(out) as w:
        with pytest.raises(ValueError):
            w.write({"id": "e", "v": float("nan")})  # strict JSON only


def test_mixed_inputs_keep_the_labels_they_were_given(dataset, checkpoint, tmp_path, capsys):
    """``analyze ANNOTATED_FOLDER extra.mp4``: the folder's videos keep their labels, the extra clip is unlabelled."""
    doc = json.loads((dataset / "annotations.json").read_text())
    kept = sorted(doc["database"])[:2]
    folder = tmp_path / "annotated"
    (folder / "videos").mkdir(parents=True)
    for vid in kept:
        shutil.copy(dataset / "videos" / f"{vid}.mp4", folder / "videos" / f"{vid}.mp4")
    doc["database"] = {vid: doc["database"][vid] for vid in kept}
    (folder / "annotations.json").write_text(json.dumps(doc))
    extra = tmp_path / "extra.mp4"
    shutil.copy(dataset / "videos" / "unlabelled_0.mp4", extra)   # a copy of a benchmark video, without its label
    labels = {vid: doc["database"][vid]["annotations"][0]["label"] for vid in kept}

    records, names = resolve_inputs([folder, extra, folder / "videos" / f"{kept[0]}.mp4"])
    assert set(labels.values()) <= set(names)
    assert [(r.video_id, r.label) for r in records] == [(kept[0], labels[kept[0]]), (kept[1], labels[kept[1]]),
                                                        ("extra", None)]   # the labelled listing wins
    clash = tmp_path / "other" / f"{kept[1]}.mp4"   # a plain file whose stem is a dataset id: named by its path
    clash.parent.mkdir()
    shutil.copy(extra, clash)
    assert [r.video_id for r in resolve_inputs([folder, clash])[0]] == [*kept, str(clash)]

    out = tmp_path / "rows.jsonl"
    assert analyze_cli.main([str(folder), str(extra), "--checkpoint", str(checkpoint), "--out", str(out),
                             "--device", "cpu", "--no-progress"]) == 0
    rows = {r["id"]: r for r in _strict(out)}
    assert {vid: rows[vid]["gt"] for vid in rows} == {**labels, "extra": None}
    assert all(rows[vid]["nsnet"]["correct"] is not None for vid in kept) and rows["extra"]["nsnet"]["correct"] is None
    summary = json.loads(jsonl.summary_path(out).read_text())
    assert (summary["counts"]["labelled"], summary["counts"]["unlabelled"]) == (2, 1)
    assert "2 labelled" in capsys.readouterr().out


def test_one_clip_comparison_draws_random_k_by_the_rows_rule(full_run, dataset, checkpoint):
    """``compare`` seeds random-K per video: by the row id it gives the row's frames; without one, by the
    clip's content (a renamed copy gets the same frames, other clips their own)."""
    from nsnet.inference.methods import compare
    from nsnet.models.selection import random_indices

    pipe = Pipeline.from_pretrained(checkpoint, device="cpu")
    rows = {r["id"]: r for r in _strict(full_run) if r["error"] is None}
    drawn = {}
    for vid, row in rows.items():
        res = pipe.analyze(row["path"], T, K, dense=True)
        by_id = {r["method"]: r for r in compare(res, video_id=vid)}["random"]
        assert by_id["frames"] == random_indices(T, K, torch.Generator().manual_seed(video_seed(0, vid))), vid
        assert by_id["label"] == row["random"]["label"], vid
        assert by_id["score"] == pytest.approx(row["random"]["score"], abs=1e-5), vid
        np.testing.assert_allclose(row["class_scores"]["random"], res.frame_probs[by_id["frames"]].mean(0), atol=1e-5)
        drawn[vid] = {r["method"]: r for r in compare(res)}["random"]["frames"]
        assert {r["method"]: r for r in compare(res)}["random"]["frames"] == drawn[vid]   # the same clip: the same
    copies = {f"unlabelled_{i}": src for i, src in enumerate(sorted((dataset / "videos").glob("syn_*.mp4"))[:2])}
    for copy, src in copies.items():   # byte copies under another name: the same content, the same frames
        assert drawn[copy] == drawn[src.stem]
    distinct = [drawn[v] for v in rows if v not in copies]
    assert len(distinct) >= 8 and len({tuple(f) for f in distinct}) >= 3   # not one draw for every clip


def test_run_file_says_what_the_model_knows_and_names_the_classes(full_run, checkpoint):
    run = json.loads(jsonl.run_path(full_run).read_text())
    config = json.loads((checkpoint / "config.json").read_text())
    # by hand: the tiny checkpoint "tiny" is untrained, its 3 classes come from the synthetic benchmark
    assert config["trained"] is False and len(config["class_names"]) == 3
    assert run["model"] == {"name": "tiny", "num_classes": 3, "trained_on": None, "synthetic": True}
    assert run["classes"] == config["class_names"]   # the order of class_scores / frame_probs
    row = next(r for r in _strict(full_run) if r["error"] is None)
    assert len(row["class_scores"]["nsnet"]) == len(row["frame_probs"][0]) == len(run["classes"])
