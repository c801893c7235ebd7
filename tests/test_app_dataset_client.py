"""The ``/dataset`` and ``/compare`` endpoints through gradio_client, against a launched app in dataset
mode (a generated synthetic benchmark, a ``--results`` file with known outcomes, two tiny checkpoints)."""
from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402

from test_app_client import check_result  # noqa: E402
from test_app_dataset import K, PATTERN, T, serve_dataset  # noqa: E402

API_KEYS = ["id", "gt", "nsnet_label", "nsnet_correct", "dense_label", "dense_correct", "uniform_label",
            "uniform_correct", "saliency_ap", "duration_s"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, dataset records) of an app in dataset mode with a second checkpoint."""
    yield from serve_dataset(tmp_path_factory.mktemp("dataset-client"), max_frames=32)


@pytest.fixture(scope="module")
def client(served) -> Client:
    return Client(served[0], verbose=False)


def test_dataset_endpoint_rows_filters_and_sorting(client, served):
    _, records = served
    rows = client.predict(api_name="/dataset")  # every optional input at its default: all rows, dataset order
    assert [r["id"] for r in rows] == [r.video_id for r in records]
    assert all(list(r) == API_KEYS for r in rows)
    assert [r["nsnet_correct"] for r in rows] == [PATTERN[i % len(PATTERN)][0] for i in range(len(records))]
    assert all(r["gt"] == rec.label for r, rec in zip(rows, records))

    wrong = client.predict("", "NSNet wrong, dense right", "", "", False, api_name="/dataset")
    assert [r["id"] for r in wrong] == [records[0].video_id]
    cls = records[1].label
    by_class = client.predict(class_name=cls, api_name="/dataset")
    assert by_class and all(r["gt"] == cls for r in by_class)
    found = client.predict(text=records[4].video_id, api_name="/dataset")
    assert [r["id"] for r in found] == [records[4].video_id]
    desc = client.predict(sort_by="saliency_ap", descending=True, api_name="/dataset")
    aps = [r["saliency_ap"] for r in desc if r["saliency_ap"] is not None]
    assert aps == sorted(aps, reverse=True)
    failures = client.predict(outcome="all wrong", sort_by="duration_s", api_name="/dataset")
    assert all(not (r["nsnet_correct"] or r["dense_correct"] or r["uniform_correct"]) for r in failures)

    with pytest.raises(Exception) as err:
        client.predict(outcome="sometimes", api_name="/dataset")
    assert "unknown outcome 'sometimes'" in str(err.value)
    with pytest.raises(Exception) as err:
        client.predict(sort_by="colour", api_name="/dataset")
    assert "unknown sort column" in str(err.value)
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/dataset", "/compare", "/analyze"} <= set(info)


def test_compare_endpoint_returns_two_predict_json_objects(client, served):
    _, records = served
    clip = handle_file(str(records[0].path))
    a, b = client.predict(clip, "", "models/tiny-b", T, K, 0.5, api_name="/compare")
    check_result(a)
    check_result(b)
    assert a["timestamps_s"] == b["timestamps_s"]  # the same decoded previews
    assert a["video"] == b["video"] and a["video"]["path"] is None
    assert not np.allclose(a["frame_scores"], b["frame_scores"])  # two different checkpoints
    a2, b2 = client.predict(clip=clip, checkpoint_a="models/tiny-b", checkpoint_b="tiny-synthetic", num_frames=10,
                            k=2, lam=1.0, api_name="/compare")
    check_result(a2, t=10, k=2)
    check_result(b2, t=10, k=2)

    for args, message in (((clip, "", "", T, K, 0.5), "Pick a second checkpoint"),
                          ((clip, "", "tiny-synthetic", T, K, 0.5), "same checkpoint"),
                          ((clip, "", "models/nope", T, K, 0.5), "unknown checkpoint"),
                          ((clip, "", "models/tiny-b", T, T + 1, 0.5), f"k must be between 1 and T={T}"),
                          ((clip, "", "models/tiny-b", 2.5, K, 0.5), "whole number")):
        with pytest.raises(Exception) as err:
            client.predict(*args, api_name="/compare")
        assert message in str(err.value), str(err.value)
        assert "/tmp" not in str(err.value)  # no server paths in messages


# --------------------------------------------------------------------------- /dataset for a script (no page)
@pytest.fixture(scope="module")
def lazy_url(tmp_path_factory):
    """An app in dataset mode WITHOUT --results: every row is computed by the server itself."""
    from app.server.settings import AppSettings
    from app.shell import build_demo
    from app.state.models import CheckpointOption, ModelStore
    from test_app_client import launch
    from test_app_dataset import make_benchmark, synthetic_pipeline

    work = tmp_path_factory.mktemp("dataset-lazy")
    bench = make_benchmark(work / "bench", videos=3)
    store = ModelStore(synthetic_pipeline(), CheckpointOption("tiny-synthetic", ""))
    settings = AppSettings(examples_dir=work / "no-examples", data=bench, max_frames=32)
    demo = build_demo(store, settings, export_root=work / "exports")
    try:
        yield launch(demo, settings), bench
    finally:
        demo.close()


def test_dataset_endpoint_computes_missing_rows_and_waits_for_them(lazy_url):
    """A script that never opens the page: calling /dataset starts the rows; wait=True returns when all are in."""
    from nsnet.data.formats import load_dataset

    url, bench = lazy_url
    records, names = load_dataset(bench)
    client = Client(url, verbose=False)
    with pytest.raises(Exception) as err:
        client.predict(wait=True, timeout_s=-1, api_name="/dataset")
    assert "timeout_s must be between 0 and" in str(err.value)
    first = client.predict(api_name="/dataset")           # returns at once (rows may still be pending)
    assert [r["id"] for r in first] == [r.video_id for r in records]
    rows = client.predict(wait=True, timeout_s=600, api_name="/dataset")
    assert [r["id"] for r in rows] == [r.video_id for r in records]
    for row, record in zip(rows, records):
        assert row["nsnet_label"] in names and row["dense_label"] in names, row
        assert row["gt"] == record.label
        assert row["nsnet_correct"] == (row["nsnet_label"] == record.label)
        assert row["duration_s"] is not None
