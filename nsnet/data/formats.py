"""Readers for the datasets' own annotation formats, all returning :class:`VideoRecord` lists.

``load_dataset(path, video_root=None, subset=None, fmt="auto")`` picks the reader:

* **ActivityNet v1.3 JSON** (``fmt="activitynet"``; a ``.json`` file, or a folder holding
  ``annotations.json`` such as ``make-synthetic`` output)::

      {"version": ..., "taxonomy": [...], "database": {id: {"subset": "training",
       "duration": 123.4, "url": ..., "resolution": "WxH",
       "annotations": [{"segment": [start_s, end_s], "label": "Long jump"}, ...]}}}

  Video files: ``{video_root}/{id}.{ext}`` or ``{video_root}/v_{id}.{ext}`` (any video
  extension, found anywhere under ``video_root``). ``video_root`` defaults to
  ``<json folder>/videos`` when it exists, else the JSON's folder. The label of a video
  is its annotations' label (the one covering the most time if several); segments from
  every annotation form its ground truth. Entries without annotations (the official
  ``testing`` subset) are kept unlabelled (``label_index = -1``, ``segments = None``).
  Segment ends past ``duration`` are clipped to it.
* **Kinetics-style CSV** (``fmt="kinetics"``; a ``.csv`` file) with a header containing
  ``label,youtube_id,time_start,time_end[,split]`` (other columns ignored; ``label`` may be
  missing or empty for test rows; without ``split`` the subset comes from the file name,
  ``train.csv`` / ``validate.csv`` / ``test.csv``). Video files, searched anywhere under
  ``video_root`` (default: the CSV's folder), in this order:

  1. ``{youtube_id}_{time_start:06d}_{time_end:06d}.{ext}``: the usual *trimmed* clip;
     it is all action, so ``segments = None``;
  2. ``{youtube_id}.{ext}``: the full, *untrimmed* YouTube video; then the row's
     ``[time_start, time_end]`` is its ground-truth segment.
* **Folder per class** (``fmt="folder"``; any other folder): ``root/class_name/**/*.mp4``
  (also mkv, webm, avi, mov, ...); classes are the sorted folder names. An optional split
  file (``split_file=``, or ``root/splits.txt`` when present) has lines
  ``relative/path.mp4 subset`` (blank lines and ``#`` comments ignored); videos it does not
  list get ``subset = None``. No temporal ground truth (``segments = None``).

Class names: ``class_names=`` if given, else a ``classes.txt`` next to the annotation file
(one per line, the label-index order), else the sorted set of labels. Malformed entries
(bad segments, missing fields, labels outside ``class_names``...) are counted, logged in
one summary warning per file and skipped; they never raise. Records whose video file is
missing are kept (so evaluation can report them) and counted in one warning.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from collections import defaultdict
from pathlib import Path

from .. import jsonsafe
from .records import VIDEO_EXTENSIONS, DatasetError, Problems, VideoRecord, normalise_subset

__all__ = ["load_dataset", "read_activitynet", "read_kinetics_csv", "read_folder_tree", "index_videos",
           "read_class_names", "detect_format", "read_plain_folder"]

log = logging.getLogger(__name__)

#: Largest annotation JSON read (ActivityNet v1.3's is about 10 MB).
MAX_ANNOTATION_BYTES = 256 << 20


# ------------------------------------------------------------------------------ helpers
def index_videos(root: Path) -> dict[str, Path]:
    """Map each video file's name without extension to its path, searching ``root`` recursively.

    Hidden files and folders (``.nsnet-cache``, ``.x.mp4.part``) are skipped. When two files
    share a stem, the first in sorted order wins.
    """
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                found.setdefault(stem, Path(dirpath) / name)
    return found


def read_class_names(path: Path) -> list[str]:
    """Class names from a ``classes.txt``: one per line, blank lines ignored."""
    return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def _class_list(explicit, near: Path, labels) -> list[str]:
    if explicit is not None:
        return list(explicit)
    txt = near / "classes.txt"
    if txt.is_file():
        return read_class_names(txt)
    return sorted({lab for lab in labels if lab})


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------------------- ActivityNet
def _parse_activitynet_entry(entry) -> tuple | str:
    """``(label, subset, duration, segments, n_labels)`` of one database entry, or a reason string."""
    if not isinstance(entry, dict):
        return "entry is not an object"
    duration = entry.get("duration")
    if duration is not None:
        duration = _num(duration)
        if duration is None or duration <= 0:
            return "bad duration"
    anns = entry.get("annotations", [])
    if not isinstance(anns, list):
        return "annotations is not a list"
    segments, per_label = [], defaultdict(float)
    for ann in anns:
        seg = ann.get("segment") if isinstance(ann, dict) else None
        label = ann.get("label") if isinstance(ann, dict) else None
        if not isinstance(label, str) or not label.strip():
            return "annotation without a label"
        if not isinstance(seg, (list, tuple)) or len(seg) != 2:
            return "bad segment"
        s, e = _num(seg[0]), _num(seg[1])
        if s is None or e is None:
            return "bad segment"
        s = max(0.0, s)
        if duration is not None:
            e = min(e, duration)
        if e <= s:
            return "empty or reversed segment"
        segments.append((s, e))
        per_label[label.strip()] += e - s
    label = max(per_label, key=per_label.get) if per_label else None
    return label, normalise_subset(entry.get("subset")), duration, sorted(segments), len(per_label)


def read_activitynet(ann_file: str | os.PathLike, video_root: str | os.PathLike | None = None,
                     class_names: list[str] | None = None) -> tuple[list[VideoRecord], list[str]]:
    """Read an ActivityNet v1.3 JSON (see the module docstring)."""
    ann_file = Path(ann_file)
    if not ann_file.exists():
        raise DatasetError(f"{ann_file}: no such annotation file")
    doc = jsonsafe.load_file(ann_file, f"{ann_file}: not a readable JSON file", max_bytes=MAX_ANNOTATION_BYTES,
                             error=DatasetError)  # a regular file, size and nesting bounded
    db = doc.get("database") if isinstance(doc, dict) else None
    if not isinstance(db, dict):
        raise DatasetError(f"{ann_file}: no 'database' object (not the ActivityNet v1.3 layout)")
    problems = Problems(str(ann_file), log)
    parsed = {}
    for vid, entry in db.items():
        res = _parse_activitynet_entry(entry)
        if isinstance(res, str):
            problems.add(res, f"id {vid!r}")
        else:
            parsed[str(vid)] = res
    names = _class_list(class_names, ann_file.parent, (p[0] for p in parsed.values()))
    index_of = {c: i for i, c in enumerate(names)}
    if video_root is None:
        video_root = ann_file.parent / "videos" if (ann_file.parent / "videos").is_dir() else ann_file.parent
    files = index_videos(Path(video_root))
    records, multi, unlabelled = [], 0, 0
    for vid, (label, subset, duration, segments, n_labels) in parsed.items():
        if label is not None and label not in index_of:
            problems.add("label not in the class list", f"id {vid!r} label {label!r}")
            continue
        multi += n_labels > 1
        unlabelled += label is None
        path = files.get(vid) or files.get(f"v_{vid}") or Path(video_root) / f"{vid}.mp4"
        records.append(VideoRecord(vid, path, label, index_of.get(label, -1), subset, duration,
                                   tuple(segments) if label is not None else None))
    problems.report(len(db))
    if multi:
        log.info("%s: %d videos have several labels; each takes the one covering the most time", ann_file, multi)
    if unlabelled:
        log.info("%s: %d videos have no annotations (kept unlabelled, label_index -1)", ann_file, unlabelled)
    return records, names


# ------------------------------------------------------------------------------ Kinetics
def _subset_from_filename(path: Path) -> str | None:
    stem = path.stem.lower()
    for key in ("train", "val", "test"):
        if key in stem:
            return normalise_subset(key)
    return None


def read_kinetics_csv(csv_file: str | os.PathLike, video_root: str | os.PathLike | None = None,
                      class_names: list[str] | None = None) -> tuple[list[VideoRecord], list[str]]:
    """Read a Kinetics-style CSV (see the module docstring)."""
    csv_file = Path(csv_file)
    try:
        with open(csv_file, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = list(reader)
    except FileNotFoundError:
        raise DatasetError(f"{csv_file}: no such annotation file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{csv_file}: not a readable CSV file ({e})") from None
    missing = {"youtube_id", "time_start", "time_end"} - set(header)
    if missing:
        raise DatasetError(f"{csv_file}: header lacks {', '.join(sorted(missing))} "
                           "(expected label,youtube_id,time_start,time_end,split)")
    default_subset = _subset_from_filename(csv_file)
    problems = Problems(str(csv_file), log)
    parsed = []
    for lineno, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in raw.items()}
        if None in raw or any(v is None for k, v in raw.items() if k in ("youtube_id", "time_start", "time_end")):
            problems.add("wrong number of columns", f"line {lineno}")
            continue
        yid, s, e = row.get("youtube_id", ""), _num(row.get("time_start")), _num(row.get("time_end"))
        if not yid:
            problems.add("missing youtube_id", f"line {lineno}")
            continue
        if s is None or e is None or s < 0 or e <= s:
            problems.add("bad time_start / time_end", f"line {lineno}")
            continue
        subset = normalise_subset(row.get("split")) if row.get("split") else default_subset
        parsed.append((lineno, yid, s, e, row.get("label") or None, subset))
    names = _class_list(class_names, csv_file.parent, (p[4] for p in parsed))
    index_of = {c: i for i, c in enumerate(names)}
    root = Path(video_root) if video_root is not None else csv_file.parent
    files = index_videos(root)
    records, seen = [], set()
    for lineno, yid, s, e, label, subset in parsed:
        if label is not None and label not in index_of:
            problems.add("label not in the class list", f"line {lineno} label {label!r}")
            continue
        vid = f"{yid}_{int(round(s)):06d}_{int(round(e)):06d}"
        if vid in seen:
            problems.add("duplicate clip", f"line {lineno}")
            continue
        seen.add(vid)
        if vid in files:
            path, segments = files[vid], None
        elif yid in files:
            path, segments = files[yid], ((s, e),)
        else:
            path, segments = root / f"{vid}.mp4", None
        records.append(VideoRecord(vid, path, label, index_of.get(label, -1), subset, None, segments))
    problems.report(len(rows), "rows")
    return records, names


# ------------------------------------------------------------------------- folder tree
def _read_split_file(split_file: Path, problems: Problems) -> dict[str, str]:
    subsets = {}
    for lineno, line in enumerate(split_file.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            problems.add("split line without a subset", f"{split_file.name}:{lineno}")
            continue
        subsets[Path(parts[0]).as_posix()] = normalise_subset(parts[1])
    return subsets


def read_plain_folder(root: str | os.PathLike) -> list[VideoRecord]:
    """The video files directly in ``root`` (not in sub-folders; hidden files skipped), unlabelled, in name
    order: id = the file name without extension (``nsnet analyze FOLDER``'s ids for these files)."""
    root = Path(root)
    files = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS
                   and not p.is_dir())
    return [VideoRecord(p.stem, p, None, -1, None) for p in files]


def read_folder_tree(root: str | os.PathLike, split_file: str | os.PathLike | None = None,
                     class_names: list[str] | None = None, *, unlabelled_ok: bool = False
                     ) -> tuple[list[VideoRecord], list[str]]:
    """Read a ``root/class_name/*.mp4`` tree with an optional split file (module docstring). With
    ``unlabelled_ok``, a folder without class folders but with video files of its own is read as
    an unlabelled dataset (``read_plain_folder``; no class names)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    problems = Problems(str(root), log)
    if split_file is None and (root / "splits.txt").is_file():
        split_file = root / "splits.txt"
    subsets = _read_split_file(Path(split_file), problems) if split_file is not None else {}
    dirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    per_class = {d: sorted(p for p in index_videos(root / d).values()) for d in dirs}
    names = list(class_names) if class_names is not None else [d for d in dirs if per_class[d]]
    index_of = {c: i for i, c in enumerate(names)}
    records, listed = [], set()
    for d in dirs:
        if d not in index_of:
            if per_class[d]:
                problems.add("folder not in the class list", f"{d}/")
            continue
        for path in per_class[d]:
            rel = path.relative_to(root).as_posix()
            listed.add(rel)
            records.append(VideoRecord(os.path.splitext(rel)[0], path, d, index_of[d], subsets.get(rel)))
    unknown = [r for r in subsets if r not in listed]
    for rel in unknown:
        problems.add("split entry without a video", rel)
    problems.report(len(records) + len(unknown) + sum(1 for d in dirs if d not in index_of and per_class[d]),
                    "videos / split lines")
    if not records and unlabelled_ok and split_file is None and class_names is None:
        plain = read_plain_folder(root)
        if plain:
            log.info("%s: no class folders; %d video files read as an unlabelled dataset", root, len(plain))
            return plain, []
    if not records:
        raise DatasetError(f"{root}: no videos found in class folders (root/class_name/*.mp4)"
                           + (" nor in the folder itself" if unlabelled_ok else ""))
    return records, names


# ----------------------------------------------------------------------------- dispatch
def detect_format(path: Path) -> tuple[str, Path]:
    """``(fmt, annotation_path)`` for ``load_dataset(..., fmt="auto")``."""
    if path.is_file():
        ext = path.suffix.lower()
        if ext == ".json":
            return "activitynet", path
        if ext == ".csv":
            return "kinetics", path
        raise DatasetError(f"{path}: unknown annotation format (expected .json or .csv, or a folder)")
    if path.is_dir():
        if (path / "annotations.json").is_file():
            return "activitynet", path / "annotations.json"
        if (path / "generator.json").is_file():
            raise DatasetError(f"{path}: incomplete synthetic benchmark (no annotations.json yet); "
                               "run make-synthetic again to finish it")
        return "folder", path
    raise DatasetError(f"{path}: no such file or folder")


def load_dataset(
    path: str | os.PathLike,
    video_root: str | os.PathLike | None = None,
    subset: str | None = None,
    fmt: str = "auto",
    *,
    class_names: list[str] | None = None,
    split_file: str | os.PathLike | None = None,
    unlabelled_ok: bool = False,
) -> tuple[list[VideoRecord], list[str]]:
    """Records (optionally of one ``subset``) and the class names of a dataset.

    ``path`` is an annotation file or a dataset folder; ``fmt`` is ``"auto"``,
    ``"activitynet"``, ``"kinetics"`` or ``"folder"``. ``subset`` accepts the aliases
    ``train`` / ``val`` / ``test``; ``None`` or ``"all"`` keeps every record. Label indices
    always refer to the full class list, whatever the subset. ``unlabelled_ok``: a folder of plain
    videos (no class folders) is read as an unlabelled dataset (the explorer's ``--data FOLDER``).
    """
    path = Path(path)
    if fmt == "auto":
        fmt, path = detect_format(path)
    elif fmt == "activitynet" and path.is_dir():
        path = path / "annotations.json"
    if fmt == "activitynet":
        records, names = read_activitynet(path, video_root, class_names)
    elif fmt == "kinetics":
        records, names = read_kinetics_csv(path, video_root, class_names)
    elif fmt == "folder":
        records, names = read_folder_tree(video_root or path, split_file, class_names, unlabelled_ok=unlabelled_ok)
    else:
        raise DatasetError(f"unknown dataset format {fmt!r} (auto, activitynet, kinetics, folder)")
    if subset not in (None, "all"):
        want = normalise_subset(subset)
        records = [r for r in records if r.subset == want]
    missing = [r for r in records if not r.path.is_file()]
    if missing:
        log.warning("%s: %d of %d videos not found (first expected at %s); they will be skipped",
                    path, len(missing), len(records), missing[0].path)
    return records, names
