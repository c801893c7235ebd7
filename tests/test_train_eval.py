"""Training, evaluation and prediction end to end on a tiny generated benchmark."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from nsnet.cli import evaluate, predict
from nsnet.cli import train as train_cli
from nsnet.training import TrainConfig, trainer
from nsnet.data.synthetic import main as make_synthetic
from nsnet.inference import Pipeline

ROOT = Path(__file__).resolve().parent.parent

TINY = dict(sampler_backbone="efficientnet_lite0", recognizer_backbone="efficientnet_lite0",
            backbones_pretrained=False, sampler_size=64, recognizer_size=64, hidden_dim=32,
            num_frames=6, k=2, batch_size=4, recognizer_epochs=12, sampler_epochs=12, lr=5e-3, progress=False,
            pseudo_rule="relative")  # a tiny random teacher is never 50% sure: threshold would mark no frame


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "data"
    assert make_synthetic([str(out), "--videos", "10", "--seed", "3", "--classes", "3", "--size", "96x72"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("train")
    cfg = TrainConfig.from_dict(dict(TINY, data=str(tiny_data), out=str(work / "ckpt"), cache_dir=str(work / "cache")))
    result = trainer.run(cfg)
    return cfg, result, result.checkpoint


def test_training_lowers_the_loss_and_writes_a_loadable_checkpoint(trained):
    cfg, result, out = trained
    for stage in ("recognizer", "sampler"):
        losses = result.history[stage]
        assert len(losses) == 12 and losses[-1] < losses[0], (stage, losses)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    pipe = Pipeline.from_pretrained(out, device="cpu")
    assert pipe.config.trained and pipe.config.meta["train"]["pseudo_rule"] == "relative"
    assert len(pipe.class_names) == 3 and pipe.config.num_frames == 6
    assert not cfg.state_path.exists()  # the resumable state is removed once the checkpoint is written
    # validated every epoch on the validation subset; the best sampler epoch is a checkpoint of its own
    val = pipe.config.meta["validation"]
    assert val["subset"] == "validation" and val["metric"] == "NSNet mAP@2" and 1 <= val["best_epoch"] <= 12
    assert len(result.validation["history"]["sampler"]) == len(result.validation["history"]["recognizer"]) == 12
    best = Pipeline.from_pretrained(cfg.best_path, device="cpu")
    assert best.config.trained and best.config.meta["validation"]["best_epoch"] == val["best_epoch"]
    assert str(cfg.best_path) == str(out) + ".best"


def test_resume_continues_from_saved_state(tiny_data, tmp_path, monkeypatch):
    cfg = TrainConfig.from_dict(dict(TINY, data=str(tiny_data), out=str(tmp_path / "ckpt"), cache_dir=str(tmp_path / "cache")))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_sampler", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg)
    state = torch.load(cfg.state_path, weights_only=True)
    assert state["stage"] == "recognizer" and state["epoch"] == 12  # epochs done, as the log counts them
    monkeypatch.undo()
    cfg.resume = True
    result = trainer.train(cfg)
    assert result.history["recognizer"] == state["history"]["recognizer"]  # not retrained
    assert len(result.history["sampler"]) == 12


def test_finetune_trains_the_backbones_resumes_and_round_trips(tiny_data, tmp_path, monkeypatch):
    """--finetune: backbones move, both losses fall, resume loads two param groups, the checkpoint reloads."""
    import numpy as np
    from safetensors.torch import load_file

    from nsnet.video import read_clip

    cfg = TrainConfig.from_dict(dict(TINY, data=str(tiny_data), out=str(tmp_path / "ckpt"),
                                     cache_dir=str(tmp_path / "cache"), finetune=True, recognizer_epochs=6,
                                     sampler_epochs=6, val_subset="none"))  # validation: test_train_scale
    torch.manual_seed(cfg.seed)  # the initial weights train() starts from
    init = Pipeline.build(cfg.pipeline_config(["a", "b", "c"]), device="cpu").trained_state_dict()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_sampler", interrupted)
    with pytest.raises(KeyboardInterrupt):  # stop after stage 1
        trainer.train(cfg)
    monkeypatch.undo()
    state = torch.load(cfg.state_path, weights_only=True)
    assert state["stage"] == "recognizer" and len(state["optim"]["param_groups"]) == 2  # heads, backbone
    cfg.resume = True
    result = trainer.run(cfg)
    assert result.history["recognizer"] == state["history"]["recognizer"]  # resumed, not retrained
    for stage in ("recognizer", "sampler"):
        losses = result.history[stage]
        assert len(losses) == 6 and losses[-1] < losses[0], (stage, losses)

    saved = load_file(str(result.checkpoint / "model.safetensors"))
    for name in ("sampler.backbone.stem.conv.weight", "recognizer.backbone.stem.conv.weight"):
        assert not torch.allclose(init[name], saved[name]), name  # fine-tuned, and stored
    loaded = Pipeline.from_pretrained(result.checkpoint, device="cpu")
    assert not loaded.config.sampler.freeze_backbone and not loaded.config.recognizer.freeze_backbone
    frames = read_clip(sorted(tiny_data.glob("**/*.mp4"))[0], num_frames=6, size=64).frames
    a, b = result.pipeline.to("cpu")(frames, dense=True), loaded(frames, dense=True)
    for field in ("frame_scores", "attention", "selected", "probs", "frame_probs"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=0, atol=1e-6, err_msg=field)


def test_eval_fills_every_field_with_numbers_recomputed_from_its_rows(trained, tiny_data, tmp_path, capsys):
    """At lam = 0.3, every number of ``eval --json`` is recomputed by a naive second implementation
    (tests/naive.py) from the per-frame outputs in its ``--per-video`` rows."""
    import naive

    _, _, out = trained
    js, plot, per_video = tmp_path / "eval.json", tmp_path / "curve.html", tmp_path / "rows.jsonl"
    code = evaluate.main(["--data", str(tiny_data), "--checkpoint", str(out), "--subset", "all",
                          "--cache-dir", str(tmp_path / "cache"), "--json", str(js), "--plot", str(plot),
                          "--per-video", str(per_video), "--lam", "0.3", "--no-progress", "--device", "cpu"])
    assert code == 0
    res = json.loads(js.read_text())
    assert res["t"] == 6 and res["k"] == 2 and res["num_videos"] == 10
    assert set(res["methods"]) == {"dense", "uniform", "random", "frame_only", "attention_only", "nsnet", "oracle"}
    rows = [json.loads(line) for line in per_video.read_text().splitlines()]
    names = Pipeline.from_pretrained(out).class_names
    assert len(rows) == 10 and all(r["error"] is None for r in rows)
    labels = [names.index(r["gt"]) for r in rows]
    kept = {  # each method's frames, from the row's own curves
        "nsnet": lambda r, y: naive.topk(naive.fuse(r["frame_scores"], r["attention"], 0.3), 2),
        "frame_only": lambda r, y: naive.topk(naive.fuse(r["frame_scores"], r["attention"], 1.0), 2),
        "attention_only": lambda r, y: naive.topk(naive.fuse(r["frame_scores"], r["attention"], 0.0), 2),
        "oracle": lambda r, y: naive.topk([p[y] for p in r["frame_probs"]], 2),
        "uniform": lambda r, y: naive.uniform(6, 2), "dense": lambda r, y: list(range(6))}
    for m, frames in kept.items():
        scores = [naive.mean_rows(r["frame_probs"], frames(r, y)) for r, y in zip(rows, labels)]
        assert res["methods"][m]["map"] == pytest.approx(naive.mean_average_precision(scores, labels), abs=1e-6), m
        assert res["methods"][m]["top1"] == pytest.approx(naive.top1(scores, labels)), m
    random_scores = [r["class_scores"]["random"] for r in rows]  # random-K: its frames are the library's draw
    assert res["methods"]["random"]["map"] == pytest.approx(naive.mean_average_precision(random_scores, labels),
                                                            abs=1e-6)
    for m, v in res["methods"].items():
        assert v["gflops"] > 0, m
    g = {m: v["gflops"] for m, v in res["methods"].items()}
    assert g["uniform"] == g["random"] == g["oracle"] < g["nsnet"]
    assert g["dense"] == pytest.approx(g["uniform"] * 6 / 2)  # T recognizer frames vs K
    assert g["nsnet"] == g["frame_only"] == g["attention_only"]  # T sampler previews + K frames
    # saliency AP: the fused score against the previews inside a ground-truth segment, videos with both kinds
    inside = [naive.inside(r["timestamps_s"], r["segments"]) for r in rows]
    aps = [naive.average_precision(r["fused"], m) for r, m in zip(rows, inside) if 0 < sum(m) < 6]
    assert aps and res["saliency_ap"] == pytest.approx(sum(aps) / len(aps), abs=1e-6)
    # pseudo labels (the checkpoint's rule: relative, gamma 0.8) against the same masks, pooled over videos
    pseudo = []
    for r, y in zip(rows, labels):
        conf = [p[y] for p in r["frame_probs"]]
        pseudo.append([c >= 0.8 * max(conf) for c in conf])
    pairs = [(a, b) for pl, m in zip(pseudo, inside) for a, b in zip(pl, m)]
    tp = sum(a and b for a, b in pairs)
    assert res["pseudo_labels"]["precision"] == pytest.approx(tp / sum(a for a, _ in pairs))
    assert res["pseudo_labels"]["recall"] == pytest.approx(tp / sum(b for _, b in pairs))
    assert res["unknown_labels"] == {}
    html = plot.read_text()
    assert len(html) < 100_000 and 'src="plotly.min.js"' in html  # plotly.js once, beside it
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert f"{out.name} on all: mAP vs GFLOPs" in html  # the title names the checkpoint
    second = tmp_path / "curve2.html"
    assert evaluate.main(["--data", str(tiny_data), "--checkpoint", str(out), "--subset", "all",
                          "--cache-dir", str(tmp_path / "cache"), "--plot", str(second), "--no-progress",
                          "--device", "cpu"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.js")) == ["plotly.min.js"] and len(second.read_text()) < 100_000


def test_eval_uses_the_checkpoints_classes_and_counts_unknown_labels(trained, tiny_data, tmp_path, monkeypatch,
                                                                     caplog):
    """A validation file missing a class (no classes.txt: its own class list is shorter) still
    evaluates, by class name; a label the checkpoint never saw is left out and counted."""
    cfg, _, out = trained
    ann = json.loads((tiny_data / "annotations.json").read_text())
    classes = (tiny_data / "classes.txt").read_text().split()
    db = {vid: e for vid, e in ann["database"].items() if e["annotations"][0]["label"] != classes[0]}
    mystery = next(iter(db))
    db[mystery] = dict(db[mystery], annotations=[dict(a, label="mystery") for a in db[mystery]["annotations"]])
    data = tmp_path / "data"
    data.mkdir()
    (data / "annotations.json").write_text(json.dumps(dict(ann, database=db)))
    for vid in db:
        (data / f"{vid}.mp4").symlink_to(next(tiny_data.glob(f"**/{vid}.mp4")))
    monkeypatch.setenv("NSNET_CACHE_DIR", cfg.cache_dir)  # the default cache: the user folder, shared with train
    js = tmp_path / "eval.json"
    caplog.clear()
    code = evaluate.main(["--data", str(data / "annotations.json"), "--checkpoint", str(out), "--subset", "all",
                          "--json", str(js), "--no-progress", "--device", "cpu"])
    assert code == 0
    res = json.loads(js.read_text())
    assert res["unknown_labels"] == {"mystery": 1} and res["num_videos"] == len(db) - 1
    assert {"t", "k", "num_videos", "methods", "saliency_ap", "pseudo_labels"} <= set(res)
    lines = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(lines) == 1 and "mystery (1)" in lines[0]
    assert not list(data.glob(".nsnet-cache"))  # nothing written beside the annotations


def test_predict_json_follows_the_contract(trained, tiny_data, capsys):
    _, _, out = trained
    video = sorted(tiny_data.glob("**/*.mp4"))[0]
    assert predict.main([str(video), "--checkpoint", str(out), "--json", "--k", "3", "--device", "cpu"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"video", "timestamps_s", "frame_scores", "attention", "fused", "selected", "labels",
                      "timings_ms", "gflops", "model"}
    assert set(d["video"]) >= {"path", "duration_s", "fps", "width", "height", "num_frames"}
    assert len(d["fused"]) == 6 and len(d["selected"]) == 3 and d["selected"] == sorted(d["selected"])
    assert d["timestamps_s"] == sorted(d["timestamps_s"]) and d["timestamps_s"][-1] <= d["video"]["duration_s"]
    assert d["labels"][0]["label"] in Pipeline.from_pretrained(out, device="cpu").class_names


def test_predict_bad_input_exits_2_with_one_line(trained, tmp_path):
    _, _, out = trained
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video at all" * 10)
    proc = subprocess.run([sys.executable, "-m", "nsnet", "predict", str(bad), "--checkpoint", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "clip.mp4" in lines[0], proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg_dict: dict, out_dir: str) -> None:
    from safetensors.torch import save_file

    from nsnet import distributed as dist_utils

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(cfg_dict)
    info = dist_utils.init(torch.device("cpu"))
    try:
        result = trainer.train(cfg, info)
        save_file(result.pipeline.trained_state_dict(), os.path.join(out_dir, f"rank{rank}.safetensors"))
    finally:
        dist_utils.shutdown(info)


def test_ddp_two_cpu_processes_end_with_the_same_weights(tiny_data, tmp_path):
    from safetensors.torch import load_file

    cfg = dict(TINY, data=str(tiny_data), out=str(tmp_path / "ckpt"), cache_dir=str(tmp_path / "cache"),
               recognizer_epochs=3, sampler_epochs=3)
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and they moved away from the (shared) initialisation
    torch.manual_seed(cfg.get("seed", 0))
    init = Pipeline.build(TrainConfig.from_dict(cfg).pipeline_config(["a", "b", "c"]), device="cpu")
    head = "recognizer.head.1.weight"
    assert not torch.allclose(init.trained_state_dict()[head], a[head])


def test_ablation_reports_every_variant(tiny_data, tmp_path):
    from nsnet.cli import ablate
    from nsnet.evaluation.ablate import VARIANTS

    cfg = tmp_path / "base.json"
    cfg.write_text(json.dumps({k: v for k, v in TINY.items() if k != "progress"}))
    md, js = tmp_path / "ablate.md", tmp_path / "ablate.json"
    code = ablate.main(["--data", str(tiny_data), "--val-subset", "all", "--seeds", "0", "--config", str(cfg),
                        "--cache-dir", str(tmp_path / "cache"), "--json", str(js), "--markdown", str(md)])
    assert code == 0
    res = json.loads(js.read_text())
    assert set(res["variants"]) == set(VARIANTS)
    for name, v in res["variants"].items():
        assert 0 <= v["map"]["nsnet"] <= 1, name
    lam = res["variants"]["default"]["lam"]
    assert set(lam) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    # lam = 1 is the frame branch alone, lam = 0 the attention alone
    assert lam["1.0"] == res["variants"]["default"]["map"]["frame_only"]
    assert lam["0.0"] == res["variants"]["default"]["map"]["attention_only"]
    # the 128-px variant costs more than the default sampler
    assert res["variants"]["sampler at 128 px"]["gflops_nsnet"] > res["variants"]["default"]["gflops_nsnet"]
    assert md.read_text().count("\n| ") >= len(VARIANTS) + 2


def test_predict_defaults_to_the_bundled_demo_model_and_it_finds_the_action(capsys):
    """The shipped checkpoint on the shipped examples: selected frames land in the ground truth."""
    from nsnet.data.records import segments_mask

    examples = ROOT / "assets" / "examples"
    database = json.loads((examples / "annotations.json").read_text())["database"]
    assert len(database) >= 3
    correct, inside, total = 0, 0, 0
    for vid, entry in database.items():
        assert predict.main([str(examples / f"{vid}.mp4"), "--json", "--device", "cpu"]) == 0
        d = json.loads(capsys.readouterr().out)
        segments = [a["segment"] for a in entry["annotations"]]
        mask = segments_mask(d["timestamps_s"], segments)
        inside += int(mask[d["selected"]].sum())
        total += len(d["selected"])
        correct += d["labels"][0]["label"] == entry["annotations"][0]["label"]
    assert inside / total >= 0.75, (inside, total)      # the sampler looks at the action
    assert correct >= len(database) - 1, correct        # and the recognizer names it


def test_cli_limits_and_bad_files_exit_2_with_one_line(tiny_data, tmp_path, capsys, caplog):
    video = sorted(tiny_data.glob("**/*.mp4"))[0]
    assert predict.main([str(video), "--frames", "100000", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "num_frames (T) must be between 1 and 256" in err[0], err
    assert predict.main([str(video), "--frames", "8", "--k", "9", "--device", "cpu"]) == 2
    assert "k must be between 1 and T=8" in capsys.readouterr().err

    bad = tmp_path / "ann.json"
    bad.write_text("{oops")
    caplog.clear()
    assert evaluate.main(["--data", str(bad), "--device", "cpu", "--no-progress"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "not a readable JSON file" in errors[0]

    base = ["--data", str(tiny_data), "--out", str(tmp_path / "ckpt"), "--cache-dir", str(tmp_path / "cache"),
            "--resume", "--no-progress", "--device", "cpu"] + [
        (f"--{k.replace('_', '-')}" if v else f"--no-{k.replace('_', '-')}") if isinstance(v, bool)
        else f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k != "progress"]
    state = tmp_path / "ckpt.train_state.pt"
    state.write_bytes(b"PK\x03\x04 truncated")
    caplog.clear()
    assert train_cli.main(base) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "unreadable training state" in errors[0] and "\n" not in errors[0]
    torch.save({"stage": "recognizer", "epoch": 0, "model": {"sampler.other.weight": torch.zeros(2)}}, state)
    caplog.clear()
    assert train_cli.main(base) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "saved by a different model" in errors[0]


def test_one_bad_video_never_ends_an_eval_run(trained, tiny_data, tmp_path, caplog):
    """A symlink loop and a truncated file are counted, logged once, skipped and listed."""
    _, _, out = trained
    data = tmp_path / "data"
    data.mkdir()
    ann = json.loads((tiny_data / "annotations.json").read_text())
    for path in tiny_data.glob("**/*.mp4"):
        (data / path.name).symlink_to(path)
    (data / "loopy.mp4").symlink_to(data / "loopy2.mp4")
    (data / "loopy2.mp4").symlink_to(data / "loopy.mp4")
    first = next(iter(ann["database"].values()))
    (data / "cut.mp4").write_bytes(next(tiny_data.glob("**/*.mp4")).read_bytes()[:2000])
    for vid in ("loopy", "cut"):
        ann["database"][vid] = dict(first, subset="validation")
    (data / "annotations.json").write_text(json.dumps(ann))
    (data / "classes.txt").write_text((tiny_data / "classes.txt").read_text())
    js = tmp_path / "out" / "eval.json"
    caplog.clear()
    code = evaluate.main(["--data", str(data / "annotations.json"), "--checkpoint", str(out), "--subset", "all",
                          "--cache-dir", str(tmp_path / "cache"), "--json", str(js), "--no-progress",
                          "--device", "cpu"])
    assert code == 0
    assert json.loads(js.read_text())["num_videos"] == 10
    summary = [r.getMessage() for r in caplog.records if "skipped 2 of 12" in r.getMessage()]
    assert len(summary) == 1
    rows = (js.with_suffix(".skipped.tsv")).read_text().splitlines()
    assert rows[0] == "video_id\tpath\treason" and sorted(r.split("\t")[0] for r in rows[1:]) == ["cut", "loopy"]
    assert all(len(r.split("\t")) == 3 for r in rows)
