"""The JSONL files of ``nsnet analyze``: rows written as they finish, resumed, merged, read back.

``OUT.jsonl`` holds one row a video. A single process appends to it directly; under
``torchrun`` rank ``r`` appends to ``OUT.rank{r}.jsonl`` and rank 0 merges the parts into
``OUT.jsonl`` at the end. Every row is written with one ``write`` as it finishes, so a
killed run loses at most the videos in flight, and its files stay readable: a partially
written last line is ignored when reading and cut off (:func:`repair`) before anything is
appended again.

The files are owned: a run holds :class:`OutLock` (an ``fcntl`` lock on ``OUT.lock``) for
its whole length, so a second writer is refused; :func:`prepare_out` lets ``--resume``
append only to a file whose run file (``OUT.run.json``) records the same settings and whose
first rows are rows of those settings, and refuses anything else without touching it. The
merge and the run and summary files are written to a temp file and renamed; a temp file
never outlives a failed write.

Reading results back (the explorer's ``--results``): :func:`read_rows` returns the rows
that pass :func:`validate_row` (types, lengths against ``T``, finite numbers) and the line
numbers it skipped, so one malformed row is a warning, never a crash. Every line and run
file is parsed with :mod:`nsnet.jsonsafe` (size and nesting bounds).
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .. import jsonsafe
from ..jsonsafe import check_regular
from .rowcheck import MAX_ROW_BYTES, validate_row
from .rows import ROW_KEYS

__all__ = ["MAX_ROW_BYTES", "MAX_RUN_BYTES", "FIRST_ROWS", "SETTINGS_KEYS", "ResultFileError", "ResultRows",
           "stem", "part_path", "summary_path", "run_path", "lock_path", "part_files", "check_regular",
           "check_out", "parse_line", "parse_row", "validate_row", "read_rows", "skipped_message", "iter_rows",
           "done_ids", "read_run", "prepare_out", "repair", "OutLock", "RowWriter", "write_rows",
           "atomic_write_text", "merge"]

log = logging.getLogger(__name__)

#: Largest ``OUT.run.json`` read (a few hundred bytes in practice).
MAX_RUN_BYTES = 1 << 20
#: Rows of an existing file checked field by field (against T, K, C) before ``--resume`` appends to it.
FIRST_ROWS = 8
#: The settings a resumed run must share with the run that wrote the file (``OUT.run.json``).
SETTINGS_KEYS = ("fingerprint", "t", "k", "lam", "seed", "precision")
_REQUIRED_RUN_KEYS = {"t": int, "k": int, "lam": (int, float), "seed": int, "precision": str}


class ResultFileError(ValueError):
    """An output or results file refused (one line): not ours, locked, not a regular file, or not writable."""


def stem(out: str | os.PathLike) -> Path:
    """``OUT`` of ``OUT.jsonl`` (the path itself when it has another suffix)."""
    out = Path(out)
    return out.with_suffix("") if out.suffix == ".jsonl" else out


def _sidecar(out: str | os.PathLike, suffix: str) -> Path:
    return stem(out).with_name(f"{stem(out).name}{suffix}")


def part_path(out: str | os.PathLike, rank: int) -> Path:
    return _sidecar(out, f".rank{rank}.jsonl")


def summary_path(out: str | os.PathLike) -> Path:
    return _sidecar(out, ".summary.json")


def run_path(out: str | os.PathLike) -> Path:
    """Where a run records its settings (model fingerprint, T, K, lam, seed, precision) for ``--resume``."""
    return _sidecar(out, ".run.json")


def lock_path(out: str | os.PathLike) -> Path:
    """The file a running ``analyze`` holds locked (``OUT.lock``: pid, host and start of the holder)."""
    return _sidecar(out, ".lock")


def part_files(out: str | os.PathLike) -> list[Path]:
    """Every rank's part file next to ``out`` (from this run or an earlier one, any world size)."""
    base = stem(out)
    pattern = re.compile(re.escape(base.name) + r"\.rank\d+\.jsonl")
    if not base.parent.is_dir():
        return []
    return sorted(p for p in base.parent.iterdir() if pattern.fullmatch(p.name))


def check_out(out: str | os.PathLike) -> None:
    """Refuse an ``--out`` that cannot be a rows file, before anything is created: ``OUT`` or one of
    its sidecars (run, summary, lock, part files) that exists and is a folder, a FIFO or a device,
    or a parent that is not a folder."""
    out = Path(out)
    parent = out.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ResultFileError(f"{out}: {parent} is not a folder")
    for path in (out, run_path(out), summary_path(out), lock_path(out), *part_files(out)):
        check_regular(path, str(path), must_exist=False, error=ResultFileError)


# ------------------------------------------------------------------------------ reading
def _lines(path: Path, max_bytes: int = MAX_ROW_BYTES) -> Iterator[tuple[int, int, bytes | None]]:
    """(line number, byte offset, raw line or None when longer than ``max_bytes``) for every line;
    only the last line may lack its newline (a partially written row)."""
    with open(path, "rb") as f:
        lineno, offset = 0, 0
        while True:
            raw = f.readline(max_bytes + 1)
            if not raw:
                return
            lineno += 1
            start, offset = offset, offset + len(raw)
            if len(raw) > max_bytes and not raw.endswith(b"\n"):  # too long: skip to its end
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(1 << 20)
                    offset += len(raw)
                yield lineno, start, None
                continue
            yield lineno, start, raw


def _parse(raw: bytes | str, id_types: tuple[type, ...] = (str,)) -> tuple[dict[str, Any] | None, str]:
    """(row, "") for a JSON object whose ``id`` is one of ``id_types``, else (None, the reason)."""
    if isinstance(raw, bytes) and not raw.strip():
        return None, "blank line"
    try:
        row = jsonsafe.loads(raw, "row", max_bytes=MAX_ROW_BYTES, strict=True)
    except jsonsafe.InputError as exc:
        return None, str(exc)[len("row: "):]
    if not isinstance(row, dict):
        return None, "not a JSON object"
    vid = row.get("id")
    if not isinstance(vid, id_types) or isinstance(vid, bool):
        return None, "no string id"
    return row, ""


def parse_line(line: str | bytes, id_types: tuple[type, ...] = (str,)) -> dict[str, Any] | None:
    """One JSONL line as a JSON object with an ``id`` (no field checks), else None; never raises."""
    return _parse(line, id_types)[0]


def parse_row(line: str | bytes, id_types: tuple[type, ...] = (str,)) -> dict[str, Any] | None:
    """One JSONL line as a valid row (:func:`validate_row`: types, lengths, finite numbers), else None."""
    row = parse_line(line, id_types)
    return row if row is not None and validate_row(row, id_types=id_types) is None else None


@dataclass
class ResultRows:
    """What :func:`read_rows` found: the valid rows in file order and the lines it skipped."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason), first 1000 kept
    skipped_count: int = 0
    truncated: bool = False  # stopped at max_rows

    @property
    def bad_lines(self) -> list[int]:
        return [n for n, _ in self.skipped]


def read_rows(path: str | os.PathLike, *, id_types: tuple[type, ...] = (str, int), max_rows: int | None = None,
              what: str | None = None) -> ResultRows:
    """The valid rows of a results file (``nsnet analyze`` / ``eval --per-video``) and the lines skipped.

    Raises :class:`ResultFileError` (one line) when ``path`` is missing or is not a regular file
    (a FIFO, a folder, a device: refused before it is opened). Every other problem is per line:
    a line that is not JSON, nested too deep, longer than :data:`MAX_ROW_BYTES`, or a row that
    fails :func:`validate_row` is skipped and recorded with its line number; an unterminated
    last line (a run still writing, or killed) too. Integer ids become strings. ``what`` names
    the file in errors (default: the path).
    """
    what = str(path) if what is None else what
    check_regular(path, what, error=ResultFileError)
    found = ResultRows()

    def skip(lineno: int, reason: str) -> None:
        found.skipped_count += 1
        if len(found.skipped) < 1000:
            found.skipped.append((lineno, reason))

    try:
        for lineno, _, raw in _lines(Path(path)):
            if raw is None:
                skip(lineno, f"longer than {MAX_ROW_BYTES} bytes")
                continue
            if not raw.strip():
                continue
            if not raw.endswith(b"\n"):
                skip(lineno, "unterminated last line")
                continue
            row, reason = _parse(raw, id_types)
            reason = reason or validate_row(row, id_types=id_types)
            if reason:
                skip(lineno, reason)
                continue
            row["id"] = str(row["id"])
            if max_rows is not None and len(found.rows) >= max_rows:
                found.truncated = True
                break
            found.rows.append(row)
    except OSError as exc:
        raise ResultFileError(f"{what}: cannot read ({exc.strerror or type(exc).__name__})") from None
    return found


def skipped_message(what: str, found: ResultRows, limit: int = 10) -> str | None:
    """One warning line for the lines :func:`read_rows` skipped (None when none was)."""
    if not found.skipped_count:
        return None
    shown = ", ".join(str(n) for n in found.bad_lines[:limit]) + (", ..." if found.skipped_count > limit else "")
    first = found.skipped[0]
    return (f"{what}: skipped {found.skipped_count} malformed line(s) (line {shown}; line {first[0]}: {first[1]})")


def iter_rows(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The rows of one of our own JSONL files, in file order (lines that are not rows skipped, logged once)."""
    path, bad = Path(path), 0
    if not path.is_file():
        return
    for _, _, raw in _lines(path):
        if raw is None or not raw.endswith(b"\n"):
            bad += raw is None
            continue
        row, reason = _parse(raw)
        if row is None:
            bad += reason != "blank line"
        else:
            yield row
    if bad:
        log.warning("%s: skipped %d lines that are not rows", path, bad)


def done_ids(out: str | os.PathLike) -> set[str]:
    """Ids of the videos already in ``OUT.jsonl`` or any part file."""
    done: set[str] = set()
    for path in [Path(out), *part_files(out)]:
        done.update(row["id"] for row in iter_rows(path))
    return done


def read_run(path: str | os.PathLike) -> dict[str, Any]:
    """An ``OUT.run.json`` (checked: a JSON object with ``t``, ``k``, ``lam``, ``seed``, ``precision``);
    raises :class:`ResultFileError` (one line) for anything else."""
    data = jsonsafe.load_file(path, str(path), max_bytes=MAX_RUN_BYTES, error=ResultFileError)
    wrong = [key for key, kind in _REQUIRED_RUN_KEYS.items()
             if not isinstance(data, dict) or not isinstance(data.get(key), kind) or isinstance(data.get(key), bool)]
    if wrong:
        raise ResultFileError(f"{path}: not a run file of nsnet analyze (no valid {wrong[0]!r})")
    return data


# ------------------------------------------------------------------------------ ownership
def prepare_out(out: str | os.PathLike, settings: dict[str, Any], *, resume: bool,
                num_classes: int | None = None) -> set[str]:
    """Check ``OUT`` before a run writes to it; the ids already done. Reads only, writes nothing.

    Without ``resume`` an existing non-empty ``OUT`` (or part file) is refused. With it,
    rows are only appended to files this command wrote with the same settings: ``OUT.run.json``
    must exist and record the same :data:`SETTINGS_KEYS` as ``settings``, every complete line
    must be a row, and the first :data:`FIRST_ROWS` rows of each file must be valid rows of
    this T, K and ``num_classes`` with exactly the row keys. Anything else (an annotation
    file, a foreign JSONL, other settings) raises :class:`ResultFileError` and is left as it was.
    """
    out = Path(out)
    files = [p for p in [out, *part_files(out)] if p.is_file() and p.stat().st_size > 0]
    run = run_path(out)
    before = read_run(run) if run.exists() else None
    if not resume:
        if files:
            raise ResultFileError(f"{files[0]} already exists: pass --resume to finish that run, or remove it")
        return set()
    if before is not None:
        changed = [key for key in SETTINGS_KEYS if key in before and before[key] != settings.get(key)]
        if changed:
            raise ResultFileError(
                f"{out} was written with other settings ({', '.join(f'{c}={before[c]}' for c in changed)}; this "
                f"run: {', '.join(f'{c}={settings.get(c)}' for c in changed)}): resume with the same ones, or write "
                "to another --out")
        if "fingerprint" not in before and files:
            log.warning("%s records no model fingerprint (an older nsnet): the model cannot be checked", run)
    if not files:
        return set()
    if before is None:
        raise ResultFileError(f"{files[0]}: not resuming onto it: there is no {run.name} beside it, so it is not "
                              "a file nsnet analyze wrote (it is left as it is); write to another --out")
    done: set[str] = set()
    for path in files:
        checked = 0
        for lineno, _, raw in _lines(path):
            if raw is not None and not raw.endswith(b"\n"):
                continue  # a partially written last row: cut off before appending
            row, reason = _parse(raw) if raw is not None else (None, f"longer than {MAX_ROW_BYTES} bytes")
            if reason == "blank line":
                continue
            if row is not None and checked < FIRST_ROWS:
                checked += 1
                keys = set(row) ^ set(ROW_KEYS)
                reason = (validate_row(row, t=settings.get("t"), k=settings.get("k"), num_classes=num_classes)
                          or (f"keys {sorted(keys)[:3]} differ from the row keys" if keys else ""))
            if reason:
                raise ResultFileError(f"{path} line {lineno} is not a row of this run ({reason}): not resuming "
                                      "onto it (it is left as it is); write to another --out")
            done.add(row["id"])
    return done


def _holder() -> dict[str, Any]:
    return {"nsnet": "analyze", "pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


class OutLock:
    """An exclusive ``fcntl.flock`` on ``OUT.lock`` for a whole run (re-entrant it is not).

    :meth:`acquire` never waits: when another process holds the lock it raises
    :class:`ResultFileError` naming the holder (pid, host, start). The lock file holds the
    holder's record while locked and is removed on :meth:`release`; one left by a killed run
    holds no lock (the kernel released it) and is taken over. A file of that name that is
    not a lock file of ``nsnet analyze`` is refused, not overwritten. On NFS, Linux maps
    ``flock`` to POSIX locks, which the server arbitrates across hosts.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out, self.path, self.fd = Path(out), lock_path(out), None

    def _read(self, fd: int) -> str:
        try:
            return os.pread(fd, 4096, 0).decode("utf-8", "replace")
        except OSError:
            return ""

    def acquire(self) -> "OutLock":
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o644)
            try:
                text = self._read(fd)
                if text.strip() and '"nsnet": "analyze"' not in text:
                    raise ResultFileError(f"{self.path} exists and is not a lock file of nsnet analyze: not "
                                          "touching it; write to another --out")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held = self._read(fd)
                    try:
                        who = json.loads(held)
                        who = f"pid {who['pid']} on {who['host']}, since {who['since']}"
                    except (ValueError, KeyError, TypeError):
                        who = "another process"
                    raise ResultFileError(f"{self.out} is being written by another nsnet analyze ({who}): wait for "
                                          "it to end, or write to another --out") from None
                st, now = os.fstat(fd), None
                try:
                    now = os.stat(self.path)
                except FileNotFoundError:
                    pass
                if now is not None and (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, (json.dumps(_holder()) + "\n").encode(), 0)
                    self.fd, fd = fd, None
                    return self
                # the holder released and removed the file between our open and our lock: again
            finally:
                if fd is not None:
                    os.close(fd)
        raise ResultFileError(f"{self.path}: could not take the lock (the file keeps being replaced)")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: a waiter re-checks the inode
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "OutLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------ writing
def _write_error(path: Path, exc: OSError, after: str) -> ResultFileError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the device"
    elif exc.errno == errno.EFBIG:
        reason = "file too large for the file-size limit"
    return ResultFileError(f"cannot write {path}: {reason}; {after}")


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


def _dumps(row: dict[str, Any]) -> bytes:
    return (json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")


class RowWriter:
    """Appends rows to a JSONL file, each one line written at once (strict JSON: no NaN or Infinity).

    No user-space buffer: a row is on its way to the disk when :meth:`write` returns. A failed
    write (disk full, a file-size limit) raises :class:`ResultFileError` in one line; the rows
    before it are kept and a partial line is cut off by the next :func:`repair`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair(self.path)
        self.fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        data = memoryview(_dumps(row))
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as exc:
            raise _write_error(self.path, exc, "the rows written before are kept: make room, then run the same "
                                               "command with --resume") from None
        self.count += 1

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _atomic(path: Path, fill, after: str) -> Path:
    """Write ``path`` through ``.NAME.tmp`` (``fill(binary file)``) and a rename; the temp file is
    removed whatever happens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            fill(f)
        os.replace(tmp, path)
    except OSError as exc:
        raise _write_error(path, exc, after) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, after: str = "nothing was changed") -> Path:
    """Replace ``path`` by ``text`` atomically (temp file + rename; no temp file left on failure)."""
    return _atomic(Path(path), lambda f: f.write(text.encode("utf-8")), after)


def write_rows(path: str | os.PathLike, rows) -> Path:
    """Write ``rows`` as a JSONL file at once (atomically: a temp file, then a rename)."""
    def fill(f) -> None:
        for row in rows:
            f.write(_dumps(row))
    return _atomic(Path(path), fill, "nothing was changed")


def merge(out: str | os.PathLike, order: dict[str, int]) -> int:
    """Rewrite ``OUT.jsonl`` with every row of it and of the part files, once each, in input order.

    Rows are ordered by ``order`` (video id -> position in the input; unknown ids last, in
    file order); the first row of an id wins. Lines are copied byte for byte (only their
    offsets are held in memory). The new file replaces the old atomically, then the part
    files are removed; if writing fails (disk full), the temp file is removed and ``OUT`` and
    the parts stay as they were. Returns the number of rows.
    """
    out = Path(out)
    sources = [p for p in [out, *part_files(out)] if p.is_file()]
    parts = [p for p in sources if p != out]
    seen: set[str] = set()
    keyed: list[tuple[int, int, int, int, int]] = []  # (order, seq, source, offset, length)
    for s, path in enumerate(sources):
        for _, offset, raw in _lines(path):
            if raw is None or not raw.endswith(b"\n"):
                continue
            row, _ = _parse(raw)
            if row is None or row["id"] in seen:
                continue
            seen.add(row["id"])
            keyed.append((order.get(row["id"], len(order)), len(keyed), s, offset, len(raw)))
    keyed.sort()

    def fill(f) -> None:
        handles = [open(p, "rb") for p in sources]
        try:
            for _, _, s, offset, length in keyed:
                handles[s].seek(offset)
                f.write(handles[s].read(length))
        finally:
            for h in handles:
                h.close()

    _atomic(out, fill, f"the rows are kept in {out.name} and its part files: make room, then run the same "
                       "command with --resume")
    for path in parts:
        path.unlink(missing_ok=True)
    return len(keyed)
