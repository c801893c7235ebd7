"""``nsnet export``: the PNG/SVG chart, the highlight clip and the JSON of one video; bad input leaves nothing.

The test clip's frames are flat colours that spell the frame index (red: i mod 10, green:
i div 10, in steps of 25 levels), so the highlight clip's pixels say which source frame
each of its frames shows, through lossy coding.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from nsnet.cli import export as export_cli
from nsnet.cli import predict as predict_cli
from nsnet.cli.common import BUNDLED_CHECKPOINT

FPS, FRAMES, W, H = 10, 80, 160, 120

pytestmark = pytest.mark.skipif(
    not (os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("google-chrome")),
    reason="the figure export needs Chrome or Chromium (CI installs Debian's chromium)")


def _ramp_clip(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast", "g": "20"}
        for i in range(FRAMES):
            colour = (10 + 25 * (i % 10), 10 + 25 * (i // 10), 128)
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), colour, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _source_index(frame: np.ndarray) -> int:
    """The source frame a decoded frame shows, read from the centre (away from the drawn label and timeline)."""
    h, w, _ = frame.shape
    r, g, _ = frame[h // 3: 2 * h // 3, w // 4: 3 * w // 4].reshape(-1, 3).mean(0)
    return int(round((r - 10) / 25)) + 10 * int(round((g - 10) / 25))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _ramp_clip(tmp_path_factory.mktemp("clip") / "ramp clip.mp4")


@pytest.fixture(scope="module")
def exported(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "figures"
    assert export_cli.main([str(clip), "--out", str(out), "--device", "cpu", "--lam", "0.3", "--window-s", "0.8"]) == 0
    return out


def test_writes_exactly_the_four_files(exported):
    assert sorted(p.name for p in exported.iterdir()) == ["ramp clip.highlights.mp4", "ramp clip.json",
                                                         "ramp clip.png", "ramp clip.svg"]


def test_png_and_svg_are_the_chart(exported):
    with Image.open(exported / "ramp clip.png") as img:
        img.load()
        assert img.format == "PNG" and img.size == (3000, 1320)
        assert len(img.getcolors(1 << 20) or []) > 50  # a drawn chart, not a blank page
    svg = ET.parse(exported / "ramp clip.svg").getroot()
    assert svg.tag.endswith("svg")
    text = (exported / "ramp clip.svg").read_text()
    for expected in ("ramp clip.mp4", "selected (K=4)", "#1", "#4", "λ = 0.30"):
        assert expected in text, expected


def test_json_is_the_predict_json_of_the_same_clip(exported, clip, capsys):
    assert predict_cli.main([str(clip), "--json", "--device", "cpu", "--lam", "0.3"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    got = json.loads((exported / "ramp clip.json").read_text())
    assert set(got) == set(predicted)
    for key in predicted:
        if key == "timings_ms":
            assert set(got[key]) == set(predicted[key])
        elif key in ("frame_scores", "attention", "fused"):
            assert got[key] == pytest.approx(predicted[key], rel=1e-5, abs=1e-7)
        elif key == "labels":
            assert [d["label"] for d in got[key]] == [d["label"] for d in predicted[key]]
            assert [d["score"] for d in got[key]] == pytest.approx([d["score"] for d in predicted[key]], rel=1e-5)
        else:
            assert got[key] == predicted[key], key


def test_highlight_clip_has_one_segment_per_selected_frame_in_time_order(exported):
    meta = json.loads((exported / "ramp clip.json").read_text())
    times = [meta["timestamps_s"][i] for i in meta["selected"]]  # ascending: selected is in time order
    by_rank = sorted(meta["selected"], key=lambda i: (-meta["fused"][i], i))
    ranks = [by_rank.index(i) + 1 for i in meta["selected"]]
    duration = FRAMES / FPS
    spans = [(max(0.0, t - 0.8), min(duration, t + 0.8)) for t in times]
    counts = [max(1, round((e - s) * FPS)) for s, e in spans]
    with av.open(str(exported / "ramp clip.highlights.mp4")) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (W, H)
        chapters = video.chapters()
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(chapters) == len(meta["selected"]) == 4
    assert [c["metadata"]["title"].split(" ")[0] for c in chapters] == [f"#{r}" for r in ranks]
    assert len(frames) == sum(counts)
    starts = np.cumsum([0] + counts[:-1])
    for (s, _), n, first, chapter in zip(spans, counts, starts, chapters):
        assert float(chapter["start"] * chapter["time_base"]) == pytest.approx(first / FPS, abs=1e-3)
        for j in (0, n // 2, n - 1):  # the source frame on screen at s + j / FPS
            expected = math.floor((s + j / FPS) * FPS + 1e-6)
            assert _source_index(frames[first + j]) == expected, (s, j)


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, clip, capsys):
    out = tmp_path / "out"
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    cases = [[str(tmp_path / "missing.mp4")], [str(not_video)], [str(clip), "--window-s", "0"],
             [str(clip), "--k", "99"], [str(clip), "--clip-size", "5000"]]
    for argv in cases:
        assert export_cli.main(argv + ["--out", str(out), "--device", "cpu"]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, (argv, err)
        assert not out.exists(), argv
    from nsnet.cli import main as nsnet_main  # registered as `nsnet export`
    assert nsnet_main(["export", str(tmp_path / "missing.mp4"), "--out", str(out)]) == 2 and not out.exists()
    assert "missing.mp4" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert export_cli.main([str(clip), "--out", str(a_file), "--device", "cpu"]) == 2
    assert "not a folder" in capsys.readouterr().err and a_file.read_text() == "mine"


def test_existing_files_are_kept_without_overwrite(tmp_path, clip, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "ramp clip.json").write_text("mine")
    assert export_cli.main([str(clip), "--out", str(out), "--device", "cpu", "--no-svg"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["ramp clip.json"] and (out / "ramp clip.json").read_text() == "mine"


def test_a_failure_midway_leaves_no_partial_file(tmp_path, clip, monkeypatch):
    import nsnet.export as export_lib
    from nsnet.inference import Pipeline
    from nsnet.video import VideoError

    def broken(path, *args, **kwargs):
        Path(path).write_bytes(b"half a clip")
        raise VideoError(str(clip), "the disk went away")

    monkeypatch.setattr(export_lib, "write_highlights", broken)
    pipe = Pipeline.from_pretrained(BUNDLED_CHECKPOINT, device="cpu")
    fresh = tmp_path / "new" / "figures"
    with pytest.raises(VideoError, match="disk went away"):
        export_lib.export_video(pipe, clip, fresh, figure_formats=("png",))
    assert not fresh.exists()  # the folder this call made is gone again
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(VideoError):
        export_lib.export_video(pipe, clip, mine, figure_formats=())
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]  # no temp folder, no partial file
