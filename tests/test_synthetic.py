"""The synthetic benchmark: spec statistics, determinism, class-agnostic distractors, CLI."""
from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter

import av
import numpy as np
import pytest

from nsnet.data.synthetic import CLASS_NAMES, SynthConfig, sample_spec
from nsnet.data.synthetic.classes import ACTORS
from nsnet.data.synthetic.generate import generate, main
from nsnet.data.synthetic.render import Renderer
from nsnet.data.synthetic.spec import NON_SALIENT_KINDS, SUBSETS
from nsnet.data.synthetic.sprites import Pose, render_sprite

TINY = SynthConfig(num_classes=4, width=64, height=48, fps=6, min_duration_s=3.0, max_duration_s=5.0)


def first_frame(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


# ------------------------------------------------------------------------ spec statistics
def test_segment_statistics_over_200_specs():
    cfg = SynthConfig()
    specs = [sample_spec(0, i, cfg) for i in range(200)]
    coverages, counts = [], Counter()
    for s in specs:
        assert 5.0 - 1 / cfg.fps <= s.duration <= 30.0 + 1 / cfg.fps
        assert 1 <= len(s.segments) <= 3
        counts[len(s.segments)] += 1
        flat = [x for seg in s.segments for x in seg]
        assert flat == sorted(flat) and flat[0] >= 0 and flat[-1] <= s.duration  # sorted, disjoint
        sal = s.salient_frames()
        coverages.append(sal.mean())
        assert 0.10 <= sal.mean() <= 0.50
        # scenes tile the video in order
        assert s.scenes[0].start == 0 and s.scenes[-1].end == s.num_frames
        assert all(a.end == b.start for a, b in itertools.pairwise(s.scenes))
        # annotation seconds agree with the rendered salient frames, frame times far from boundaries
        t = np.arange(s.num_frames) / s.fps
        inside = np.zeros(s.num_frames, bool)
        for a, b in s.segments:
            inside |= (t >= a) & (t <= b)
        assert (inside == sal).all()
        for a, b in s.segments:
            for edge in (a, b):
                if 0 < edge < s.duration:
                    assert np.abs(t - edge).min() >= 0.49 / s.fps
    assert 0.29 <= float(np.mean(coverages)) <= 0.38  # mean about one third
    assert set(counts) == {1, 2, 3}
    classes = Counter(s.class_index for s in specs)
    assert set(classes) == set(range(12)) and max(classes.values()) - min(classes.values()) <= 1
    subsets = Counter(s.subset for s in specs)
    assert subsets["training"] == 120 and subsets["validation"] == 40 and subsets["testing"] == 40
    kinds = Counter(sc.kind for s in specs for sc in s.scenes)
    assert set(kinds) == {"action", *NON_SALIENT_KINDS}


def test_spec_is_deterministic_per_seed():
    assert sample_spec(3, 7) == sample_spec(3, 7)
    assert sample_spec(3, 7).segments != sample_spec(4, 7).segments


def test_non_salient_content_does_not_depend_on_the_class():
    """Distractors, backgrounds, titles... are pixel-identical whatever the class; action frames differ."""
    actorless = {"background", "distractors", "title", "blur", "black"}
    checked = {"action": 0, "actorless": 0}
    for s in [sample_spec(5, i, TINY) for i in range(6)]:
        other = dataclasses.replace(s, class_index=(s.class_index + 1) % 4)
        a, b = Renderer(s), Renderer(other)
        for sc in s.scenes:
            i = (sc.start + sc.end) // 2
            if sc.kind in actorless:
                assert np.array_equal(a.frame(i), b.frame(i)), sc.kind
                checked["actorless"] += 1
            elif sc.kind == "action":
                assert not np.array_equal(a.frame(i), b.frame(i))
                checked["action"] += 1
    assert checked["action"] >= 6 and checked["actorless"] >= 3


def test_class_shapes_are_distinct():
    """Same pose and colours: silhouettes of any two classes overlap by less than 80 % IoU."""
    masks = []
    colours = (np.array([200.0, 50, 50]), np.array([20.0, 20, 120]))
    for actor in ACTORS:
        _, alpha, _, _ = render_sprite(actor.shape(0.0), actor.texture(0.0), Pose(60, 60, 40), colours, extent=1.35)
        masks.append(alpha > 127)
    for i, j in itertools.combinations(range(len(masks)), 2):
        iou = (masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum()
        assert iou < 0.8, (ACTORS[i].name, ACTORS[j].name, iou)
    assert len(CLASS_NAMES) >= 10


# ----------------------------------------------------------------------------- generation
@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    for name, seed, workers in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1)):
        generate(root / name, 4, seed, TINY, workers=workers, progress=False)
    return root


def test_generation_is_deterministic(tiny_sets):
    a, b, c = (tiny_sets / n for n in "abc")
    assert (a / "annotations.json").read_bytes() == (b / "annotations.json").read_bytes()
    assert (a / "annotations.json").read_bytes() != (c / "annotations.json").read_bytes()
    for vid in ("syn_00000", "syn_00003"):
        fa, fb = a / "videos" / f"{vid}.mp4", b / "videos" / f"{vid}.mp4"
        assert fa.read_bytes() == fb.read_bytes()  # 1 worker vs 2 workers
        assert np.array_equal(first_frame(fa), first_frame(fb))
        assert not np.array_equal(first_frame(fa), first_frame(c / "videos" / f"{vid}.mp4"))


def test_annotation_schema_and_videos(tiny_sets):
    out = tiny_sets / "a"
    doc = json.loads((out / "annotations.json").read_text())
    classes = (out / "classes.txt").read_text().splitlines()
    assert classes == list(CLASS_NAMES[:4])
    assert doc["version"].startswith("VERSION 1.3")
    assert {n["nodeName"] for n in doc["taxonomy"]} >= set(classes)
    assert len(doc["database"]) == 4
    for vid, e in doc["database"].items():
        assert set(e) == {"subset", "duration", "url", "resolution", "annotations"}
        assert e["subset"] in SUBSETS and e["resolution"] == "64x48" and e["url"] == ""
        assert 1 <= len(e["annotations"]) <= 3
        labels = {a["label"] for a in e["annotations"]}
        assert len(labels) == 1 and labels <= set(classes)
        for a in e["annotations"]:
            s, t = a["segment"]
            assert 0 <= s < t <= e["duration"]
        with av.open(str(out / "videos" / f"{vid}.mp4")) as c:
            st = c.streams.video[0]
            assert st.codec_context.name == "h264" and (st.width, st.height) == (64, 48)
            n = sum(1 for _ in c.decode(video=0))
        assert n == round(e["duration"] * TINY.fps)
    scenes = json.loads((out / "scenes.json").read_text())
    assert set(scenes) == set(doc["database"])


def test_rerun_keeps_finished_videos_and_cleans_partial_files(tmp_path):
    out = tmp_path / "syn"
    first = generate(out, 3, 0, TINY, workers=1, progress=False)
    assert first["rendered"] == 3
    keep = (out / "videos" / "syn_00001.mp4").stat().st_mtime_ns
    (out / "videos" / "syn_00002.mp4").unlink()
    (out / "videos" / ".syn_00002.mp4.part").write_bytes(b"half a video")
    again = generate(out, 3, 0, TINY, workers=1, progress=False)
    assert again["rendered"] == 1 and again["kept"] == 2
    assert (out / "videos" / "syn_00001.mp4").stat().st_mtime_ns == keep
    assert not list((out / "videos").glob(".*.part"))
    assert (out / "annotations.json").is_file()
    # another seed in the same folder renders everything again
    assert generate(out, 3, 1, TINY, workers=1, progress=False)["rendered"] == 3


def test_cli_writes_everything_and_the_contact_sheet(tmp_path, capsys):
    from PIL import Image

    sheet = tmp_path / "sheet.png"
    rc = main([str(tmp_path / "out"), "--videos", "2", "--seed", "2", "--classes", "3", "--size", "64x48",
               "--fps", "4", "--workers", "1", "--no-progress", "--contact-sheet", str(sheet),
               "--sheet-frames", "4"])
    assert rc == 0
    assert "wrote 2 videos" in capsys.readouterr().out
    assert len(list((tmp_path / "out" / "videos").glob("*.mp4"))) == 2
    img = Image.open(sheet)
    assert img.size[0] > 4 * 64 and img.size[1] > 3 * 48
    with pytest.raises(SystemExit):
        main([str(tmp_path / "bad"), "--size", "64by48"])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "bad"), "--classes", "99"])


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_is_a_bar_only_on_a_terminal(tmp_path, capsys, caplog, monkeypatch, terminal):
    """The CLI's rule (nsnet.progress): a tqdm bar on a terminal, log lines in a log file, and the
    generated files carry the generator's tag either way."""
    import logging
    import sys

    from nsnet.data.synthetic.encode import GENERATOR_TAG

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)   # capsys's stderr, asked by show_bar
    with caplog.at_level(logging.INFO, logger="nsnet.data.synthetic.generate"):
        generate(tmp_path / "d", 2, 0, TINY, workers=1, progress=True)
    err = capsys.readouterr().err
    assert ("\r" in err and "rendering" in err) == terminal   # tqdm redraws a line with \r
    assert ("rendering: 1/2 videos" in caplog.text and "rendering: 2 videos in" in caplog.text) == (not terminal)
    generate(tmp_path / "e", 2, 0, TINY, workers=1, progress=False)
    assert "rendering" not in capsys.readouterr().err
    for video in (tmp_path / "d" / "videos").glob("*.mp4"):
        with av.open(str(video)) as c:
            assert c.metadata.get("comment") == GENERATOR_TAG
