"""The JSONL files of ``nsnet analyze``: rows written as they finish, resumed, merged.

``OUT.jsonl`` holds one row a video. A single process appends to it directly; under
``torchrun`` rank ``r`` appends to ``OUT.rank{r}.jsonl`` and rank 0 merges the parts into
``OUT.jsonl`` at the end. Every row is flushed as it is written, so a killed run loses at
most the videos in flight, and its files stay readable: a partially written last line is
ignored when reading and cut off (:func:`repair`) before anything is appended again.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterator

__all__ = ["stem", "part_path", "summary_path", "run_path", "part_files", "iter_rows", "parse_row", "done_ids", "repair",
           "RowWriter", "write_rows", "merge"]

log = logging.getLogger(__name__)


def stem(out: str | os.PathLike) -> Path:
    """``OUT`` of ``OUT.jsonl`` (the path itself when it has another suffix)."""
    out = Path(out)
    return out.with_suffix("") if out.suffix == ".jsonl" else out


def part_path(out: str | os.PathLike, rank: int) -> Path:
    return stem(out).with_name(f"{stem(out).name}.rank{rank}.jsonl")


def summary_path(out: str | os.PathLike) -> Path:
    return stem(out).with_name(f"{stem(out).name}.summary.json")


def run_path(out: str | os.PathLike) -> Path:
    """Where a run records its settings (T, K, lam, seed, checkpoint) for ``--resume`` to check."""
    return stem(out).with_name(f"{stem(out).name}.run.json")


def part_files(out: str | os.PathLike) -> list[Path]:
    """Every rank's part file next to ``out`` (from this run or an earlier one, any world size)."""
    base = stem(out)
    pattern = re.compile(re.escape(base.name) + r"\.rank\d+\.jsonl")
    if not base.parent.is_dir():
        return []
    return sorted(p for p in base.parent.iterdir() if pattern.fullmatch(p.name))


def _lines(path: Path) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(line, parsed row or None) for every complete line of ``path``."""
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                return  # partially written last line (a killed run): not a row
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if not line.strip():
                continue
            yield line, parse_row(line)


def parse_row(line: str, id_types: tuple[type, ...] = (str,)) -> dict[str, Any] | None:
    """One JSONL line as a row (a JSON object whose ``id`` is one of ``id_types``), else None."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("id"), id_types) else None


def iter_rows(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The valid rows of a JSONL file, in file order (bad or partial lines skipped, logged once)."""
    path, bad = Path(path), 0
    if not path.is_file():
        return
    for _, row in _lines(path):
        if row is None:
            bad += 1
        else:
            yield row
    if bad:
        log.warning("%s: skipped %d lines that are not rows", path, bad)


def done_ids(out: str | os.PathLike) -> set[str]:
    """Ids of the videos already in ``OUT.jsonl`` or any part file (what ``--resume`` skips)."""
    done: set[str] = set()
    for path in [Path(out), *part_files(out)]:
        done.update(row["id"] for row in iter_rows(path))
    return done


def repair(path: str | os.PathLike) -> int:
    """Cut off a partially written last line (a run killed mid-write); returns the bytes removed."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            log.warning("%s: removed a partially written last line (%d bytes)", path, size - keep)
        return size - keep


class RowWriter:
    """Appends rows to a JSONL file, one flushed line each (strict JSON: no NaN or Infinity)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair(self.path)
        self.file = open(self.path, "a", encoding="utf-8")
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        self.file.write(json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n")
        self.file.flush()
        self.count += 1

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_rows(path: str | os.PathLike, rows) -> Path:
    """Write ``rows`` as a JSONL file at once (atomically: a temp file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n")
    os.replace(tmp, path)
    return path


def merge(out: str | os.PathLike, order: dict[str, int]) -> int:
    """Rewrite ``OUT.jsonl`` with every row of it and of the part files, once each, in input order.

    Rows are ordered by ``order`` (video id -> position in the input; unknown ids last, in
    file order); the first row of an id wins. The new file replaces the old atomically,
    then the part files are removed. Returns the number of rows.
    """
    out = Path(out)
    parts = part_files(out)
    seen: set[str] = set()
    keyed: list[tuple[int, int, str]] = []
    for path in [out, *parts]:
        if not path.is_file():
            continue
        for line, row in _lines(path):
            if row is None or row["id"] in seen:
                continue
            seen.add(row["id"])
            keyed.append((order.get(row["id"], len(order)), len(keyed), line))
    keyed.sort()
    tmp = out.with_name(f".{out.name}.merge")
    with open(tmp, "w", encoding="utf-8") as f:
        for _, _, line in keyed:
            f.write(line + "\n")
    os.replace(tmp, out)
    for path in parts:
        path.unlink(missing_ok=True)
    return len(keyed)
