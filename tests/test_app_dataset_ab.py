"""Dataset mode, whole-dataset views: faithfulness curves, the per-class table and two result sets side by side
(``--compare-results``), on hand-made results files of known outcomes over a generated synthetic benchmark.
Expectations are written by hand or recomputed here naively (loops over videos), not by the app's code path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")

import gradio as gr  # noqa: E402

from test_app_dataset import K, T, context, make_benchmark, synthetic_pipeline  # noqa: E402

LAM = 0.3
# per record i (cycling): (A right, B right); B has no row for the last record
AB = [(True, False), (False, True), (True, True), (False, False), (True, False), (False, True)]
# the selections of A and B, and their IoU by hand
SEL_A = [[0, 1, 2], [1, 3, 5], [2, 4, 6], [0, 1, 2], [5, 6, 7], [0, 4, 7]]
SEL_B = [[0, 1, 2], [0, 2, 4], [2, 4, 7], [5, 6, 7], [5, 6, 7], [0, 1, 7]]
IOU = [1.0, 0.0, 2 / 4, 0.0, 1.0, 2 / 4]


def rich_rows(records, names, right: list[bool], selected: list[list[int]], seed: int) -> list[dict]:
    """``nsnet analyze``-style rows with every field the whole-dataset views read: ``fused``, ``frame_probs``
    (T x C), ``class_scores`` (each method's arg-max is its label) and the marks, NSNet right as ``right``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, r in enumerate(records):
        gt = names.index(r.label)
        wrong = (gt + 1) % len(names)
        probs = rng.dirichlet(np.ones(len(names)), size=T).astype(np.float32)
        fused = rng.permutation(T).astype(np.float32) / T

        def method(ok: bool) -> dict:
            return {"label": names[gt if ok else wrong], "score": 0.5, "correct": ok}

        def scores(ok: bool) -> list[float]:
            s = rng.random(len(names)) * 0.1
            s[gt if ok else wrong] = 1.0
            return [float(x) for x in s]

        ok = {"nsnet": right[i], "uniform": i % 2 == 0, "random": False, "dense": True}
        rows.append({
            "id": r.video_id, "path": str(r.path), "subset": r.subset, "gt": r.label, "segments": [],
            "duration_s": 4.0, "timestamps_s": [0.5 * t for t in range(T)], "frame_scores": fused.tolist(),
            "attention": fused.tolist(), "fused": fused.tolist(), "selected": selected[i], "teacher": [0.5] * T,
            **{m: method(v) for m, v in ok.items()}, "saliency_ap": None, "gflops": {}, "timings_ms": {},
            "error": None, "class_scores": {m: scores(v) for m, v in ok.items()},
            "frame_probs": probs.tolist()})
    return rows


def write_results(rows: list[dict], out: Path, names, k: int = K, lam: float = LAM, checkpoint="runs/a") -> Path:
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = {"t": T, "k": k, "lam": lam, "seed": 0, "precision": "fp32", "classes": list(names),
           "checkpoint": checkpoint}
    out.with_name(out.name[: -len(".jsonl")] + ".run.json").write_text(json.dumps(run))
    return out


def ab_files(bench: Path, work: Path) -> tuple[Path, Path, list, list]:
    """(A.jsonl, B.jsonl, records, class names): A right / B right as ``AB``; B lacks the last video."""
    from nsnet.data.formats import load_dataset

    records, names = load_dataset(bench)
    n = len(records)
    a = write_results(rich_rows(records, names, [AB[i % 6][0] for i in range(n)], [SEL_A[i % 6] for i in range(n)],
                                1), work / "A.jsonl", names)
    b_rows = rich_rows(records, names, [AB[i % 6][1] for i in range(n)], [SEL_B[i % 6] for i in range(n)], 2)[:-1]
    b = write_results(b_rows, work / "B.jsonl", names, k=K, lam=0.7, checkpoint="/srv/secret/runs/b")
    return a, b, records, names


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench-ab") / "tiny")


@pytest.fixture(scope="module")
def pipe():
    return synthetic_pipeline()


def ab_room(bench, pipe, tmp_path, compare=True):
    from app.state.dataset import DatasetStore
    from app.tabs.dataset import DatasetRoom

    a, b, records, names = ab_files(bench, tmp_path)
    store = DatasetStore.open(bench, results=a, compare=b if compare else None)
    return DatasetRoom(context(pipe, tmp_path, dataset=store)), store, records, names


# --------------------------------------------------------------------------- overlap and A/B filters
def test_overlap_is_intersection_over_union_by_hand():
    from app.state.rows import selection_overlap

    assert selection_overlap([0, 2, 5], [2, 5, 7]) == pytest.approx(2 / 4)
    assert selection_overlap([1, 2], [2, 1]) == 1.0 and selection_overlap([1], [2]) == 0.0
    assert selection_overlap([1, 2, 3, 4], [4]) == pytest.approx(1 / 4)
    assert selection_overlap([], [1]) is None and selection_overlap(None, [1]) is None


def test_joined_rows_carry_b_and_the_overlap(bench, pipe, tmp_path):
    _, store, records, names = ab_room(bench, pipe, tmp_path)
    joined = store.joined_rows()
    assert [r["id"] for r in joined] == [r.video_id for r in records]
    for i, row in enumerate(joined[:-1]):
        assert row["b_nsnet"]["correct"] is AB[i % 6][1]
        assert row["overlap"] == pytest.approx(IOU[i % 6])
    assert joined[-1]["b_nsnet"] is None and joined[-1]["overlap"] is None   # B has no row for it: blanks


def test_a_b_outcome_filters_on_crafted_rows():
    from app.views import dataset_table as ds

    def row(vid, a, b):
        return {"id": vid, "gt": "x", "nsnet": {"label": "x" if a else "y", "correct": a},
                "b_nsnet": None if b is None else {"label": "x" if b else "y", "correct": b}, "overlap": 0.5}

    rows = [row("tt", True, True), row("tf", True, False), row("ft", False, True), row("ff", False, False),
            row("t-", True, None), row("f-", False, None)]
    ids = lambda outcome: [r["id"] for r in ds.filter_rows(rows, outcome=outcome)]  # noqa: E731
    assert ids(ds.A_RIGHT_B_WRONG) == ["tf"]
    assert ids(ds.B_RIGHT_A_WRONG) == ["ft"]
    assert ids("A and B wrong") == ["ff"] and ids("not in B") == ["t-", "f-"]
    api = ds.api_row(rows[1], compare=True)
    assert (api["b_label"], api["b_correct"], api["overlap"]) == ("y", False, 0.5)
    assert list(ds.api_row(rows[1])) == list(ds.API_KEYS)   # without B: the /dataset contract as it was
    assert ds.table_row(rows[4], compare=True)[-3:] == ["", "", 0.5]   # missing from B: blank label and mark
    assert ds.headers(True)[-3:] == ["B: NSNet", "B ✓", "Overlap A∩B / A∪B"] and ds.headers() == ds.TABLE_HEADERS


def test_room_with_b_filters_sorts_and_summarises(bench, pipe, tmp_path):
    from app.views import dataset_table as ds

    room, store, records, _ = ab_room(bench, pipe, tmp_path)
    every = room.dataset_api("", "", "", "", False)["api_ds_result"]
    assert list(every[0])[-3:] == ["b_label", "b_correct", "overlap"]
    # A right, B wrong: records 0 and 4 of the pattern (record 5, the last, is not in B)
    want = [records[i].video_id for i in range(len(records) - 1) if AB[i % 6] == (True, False)]
    got = room.dataset_api("", ds.A_RIGHT_B_WRONG, "", "", False)["api_ds_result"]
    assert [r["id"] for r in got] == want == [records[0].video_id, records[4].video_id]
    got = room.dataset_api("", ds.B_RIGHT_A_WRONG, "", "", False)["api_ds_result"]
    assert [r["id"] for r in got] == [records[1].video_id]
    low = room.dataset_api("", "", "", "overlap", False)["api_ds_result"]
    assert [r["overlap"] for r in low] == [0.0, 0.0, 0.5, 1.0, 1.0, None]
    view = room.everything(None, ds.A_RIGHT_B_WRONG, "")
    assert [row[0] for row in view["ds_table"]["value"]] == want
    assert view["ds_table"]["headers"][-3:] == ["B: NSNet", "B ✓", "Overlap A∩B / A∪B"]
    # the summary: both top-1 on the 5 labelled videos both analysed (A right on 0, 2, 4; B on 1, 2)
    text = view["ds_compare"]
    assert "A: `A.jsonl`" in text and "B: `B.jsonl`" in text and "| NSNet top-1 | 60.0% | 40.0% |" in text
    assert "| right where the other is wrong | 2 | 1 |" in text and "/srv/secret" not in text + view["ds_status"]
    assert "B: rows from `B.jsonl` (checkpoint `b`, T=8, K=3, λ=0.70)" in view["ds_status"]
    assert "mean overlap of the selections (IoU) 0.50 over 5" in text and "1 analysed video not in B" in text
    with pytest.raises(gr.Error, match="unknown outcome"):
        room.dataset_api("", "B right, maybe", "", "", False)


def test_without_b_the_dataset_contract_is_unchanged(bench, pipe, tmp_path):
    from app.views import dataset_table as ds

    room, _, _, _ = ab_room(bench, pipe, tmp_path, compare=False)
    every = room.dataset_api("", "", "", "", False)["api_ds_result"]
    assert all(list(r) == list(ds.API_KEYS) for r in every)
    with pytest.raises(gr.Error, match="need --compare-results"):
        room.dataset_api("", ds.A_RIGHT_B_WRONG, "", "", False)
    view = room.everything(None, ds.ALL, "")
    assert view["ds_compare"] == "" and view["ds_table"]["headers"] == ds.TABLE_HEADERS


# --------------------------------------------------------------------------- faithfulness and per class
def naive_curve(rows, names, keep: bool) -> list[float]:
    """Top-1 at k = 1..T-1 keeping (or dropping) the k frames of highest fused score, video by video."""
    out = []
    for k in range(1, T):
        right = 0
        for r in rows:
            order = sorted(range(T), key=lambda t: (-r["fused"][t], t))
            frames = order[:k] if keep else order[k:]
            mean = np.mean([r["frame_probs"][t] for t in frames], axis=0)
            right += names[int(np.argmax(mean))] == r["gt"]
        out.append(right / len(rows))
    return out


def test_faithfulness_chart_from_the_rows(bench, pipe, tmp_path):
    from nsnet.evaluation import jsonl

    room, store, records, names = ab_room(bench, pipe, tmp_path)
    spec = room.everything(None, "", "")["ds_faith"]
    spec = spec.model_dump() if hasattr(spec, "model_dump") else spec
    plot = json.loads(spec["plot"]) if isinstance(spec, dict) and "plot" in spec else spec
    traces = {t["name"].split(" · ")[0]: t for t in plot["data"]}
    assert list(traces) == ["A: keep most salient", "A: keep least salient", "A: keep random",
                            "A: drop most salient", "A: drop least salient", "A: drop random",
                            "B: keep most salient", "B: drop most salient"]
    assert all("AUC" in t["name"] for t in plot["data"])
    a_rows = list(jsonl.iter_rows(tmp_path / "A.jsonl"))
    b_rows = list(jsonl.iter_rows(tmp_path / "B.jsonl"))
    assert traces["A: keep most salient"]["x"] == list(range(1, T))
    np.testing.assert_allclose(traces["A: keep most salient"]["y"], [100 * v for v in naive_curve(a_rows, names, True)])
    np.testing.assert_allclose(traces["A: drop most salient"]["y"],
                               [100 * v for v in naive_curve(a_rows, names, False)])
    np.testing.assert_allclose(traces["B: keep most salient"]["y"], [100 * v for v in naive_curve(b_rows, names, True)])
    keep = naive_curve(a_rows, names, True)
    auc = sum((keep[i] + keep[i + 1]) / 2 for i in range(len(keep) - 1)) / (len(keep) - 1)
    assert f"AUC {auc:.2f}" in traces["A: keep most salient"]["name"]


def test_faithfulness_says_why_it_is_empty():
    from app.state.dataset_stats import faithfulness_of
    from app.views.dataset_charts import faithfulness_spec

    row = {"id": "a", "gt": "x", "nsnet": {"label": "x", "correct": True}, "fused": [0.1, 0.2], "error": None}
    faith, note = faithfulness_of([row], ["x", "y"])
    assert faith is None and "frame_probs" in note
    assert "frame_probs" in json.dumps(faithfulness_spec(faith, note))
    assert faithfulness_of([dict(row, pending=True)], ["x", "y"])[1] == "no analysed video yet"


def test_per_class_table_counts_and_top1_by_hand(bench, pipe, tmp_path):
    from nsnet.evaluation import jsonl

    room, store, records, names = ab_room(bench, pipe, tmp_path)
    view = room.everything(None, "", "")
    heads, rows = view["ds_classes"]["headers"], view["ds_classes"]["value"]
    assert heads[:3] == ["Class", "n", "top-1 NSNet"] and heads[-2:] == ["top-1 B", "AP B"]
    assert sum(r[1] for r in rows) == len(records)                      # the counts add up
    a_rows = list(jsonl.iter_rows(tmp_path / "A.jsonl"))
    for r in rows:
        mine = [x for x in a_rows if x["gt"] == r[0]]
        assert r[1] == len(mine)
        hand = 100 * np.mean([names[int(np.argmax(x["class_scores"]["nsnet"]))] == x["gt"] for x in mine])
        assert r[2] == pytest.approx(round(hand, 1))
        dense_ap = heads.index("AP Dense")
        assert r[dense_ap] == 100.0   # dense is always right with its class scored highest: AP 1 for every class


def test_a_click_on_a_class_filters_the_table(bench, pipe, tmp_path):
    room, store, records, names = ab_room(bench, pipe, tmp_path)
    cls = records[1].label
    evt = gr.SelectData(None, {"index": [0, 0], "value": cls, "row_value": [cls, 2, 50.0]})
    assert room.pick_class(evt) == {"ds_class": cls}
    shown = room.filter(cls, "", "")["ds_table"]["value"]
    assert shown and {row[1] for row in shown} == {cls}
    assert [row[0] for row in shown] == [r.video_id for r in records if r.label == cls]
    with pytest.raises(gr.Error, match="not a class"):
        room.pick_class(gr.SelectData(None, {"index": [0, 0], "value": "x", "row_value": ["no-such-class"]}))


# --------------------------------------------------------------------------- settings and bad B files
def test_compare_results_flag_and_environment(tmp_path, capsys):
    from app.server.settings import parse_settings

    good = tmp_path / "B.jsonl"
    good.write_text(json.dumps({"id": "v", "error": "x"}) + "\n")
    s, _ = parse_settings(["--results", str(good), "--compare-results", str(good)], {})
    assert s.compare_results == good
    s, _ = parse_settings(["--results", str(good)], {"NSNET_COMPARE_RESULTS": str(good)})
    assert s.compare_results == good
    bad = tmp_path / "annotations.csv"
    bad.write_text("label,youtube_id\nx,y\n")
    for argv, message in ((["--results", str(good), "--compare-results", str(bad)], "not a results file"),
                          (["--results", str(good), "--compare-results", str(tmp_path / "none.jsonl")], "no such file"),
                          (["--results", str(good), "--compare-results", str(tmp_path)], "not a regular file"),
                          (["--compare-results", str(good)], "needs dataset mode")):
        with pytest.raises(SystemExit) as exit_:
            parse_settings(argv, {})
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and err.count("\n") == 1, (argv, err)


def test_b_rows_of_other_videos_are_refused(bench, tmp_path):
    from app.state.dataset import DatasetStore
    from nsnet.evaluation.jsonl import ResultFileError

    a, _, _, _ = ab_files(bench, tmp_path)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "not-a-video-here", "error": "x"}) + "\n")
    with pytest.raises(ResultFileError, match="none of its 1 rows is a video"):
        DatasetStore.open(bench, results=a, compare=other)


# --------------------------------------------------------------------------- through a launched app
def serve_ab(work: Path):
    """Launch an app in dataset mode with A (``--results``) and B (``--compare-results``); yields
    ``(url, records)``. Shared with the browser test."""
    from app.server.settings import AppSettings
    from app.shell import build_demo
    from app.state.models import CheckpointOption, ModelStore
    from test_app_client import launch

    bench = make_benchmark(work / "bench")
    a, b, records, _ = ab_files(bench, work)
    settings = AppSettings(examples_dir=work / "no-examples", data=bench, results=a, compare_results=b)
    demo = build_demo(ModelStore(synthetic_pipeline(), CheckpointOption("tiny-synthetic", "")), settings,
                      export_root=work / "exports")
    url = launch(demo, settings)
    try:
        yield url, records
    finally:
        demo.close()


@pytest.fixture(scope="module")
def served_ab(tmp_path_factory):
    yield from serve_ab(tmp_path_factory.mktemp("dataset-ab-client"))


def test_dataset_endpoint_gains_b_columns(served_ab):
    pytest.importorskip("gradio_client")
    from gradio_client import Client

    from app.views import dataset_table as ds

    url, records = served_ab
    client = Client(url, verbose=False)
    rows = client.predict(api_name="/dataset")
    assert [r["id"] for r in rows] == [r.video_id for r in records]
    assert all(list(r) == [*ds.API_KEYS, "b_label", "b_correct", "overlap"] for r in rows)
    assert [r["b_correct"] for r in rows] == [AB[i % 6][1] for i in range(len(records) - 1)] + [None]
    assert [r["overlap"] for r in rows] == pytest.approx([IOU[i % 6] for i in range(len(records) - 1)] + [None])
    assert rows[-1]["b_label"] is None and rows[0]["b_label"] != rows[0]["gt"]   # B wrong on record 0
    a_only = client.predict(outcome=ds.A_RIGHT_B_WRONG, api_name="/dataset")
    assert [r["id"] for r in a_only] == [records[0].video_id, records[4].video_id]
    assert all(r["nsnet_correct"] is True and r["b_correct"] is False for r in a_only)
