"""Mutation testing of the modules that define the numbers NSNet reports (``make mutate``).

Uses mutmut (requirements-dev.txt). mutmut writes every mutant into a copy of the sources
(``mutants/``) and switches between them at run time, so the working tree is never
modified, and it runs for each mutant only the tests that reached the mutated function.
Each group below is mutated in a scratch folder of its own with only its few fast test
files, so the whole run takes minutes on two cores, not hours:

    python tests/mutate.py                    # every group, one worker (make mutate)
    python tests/mutate.py --only metrics rows --show
    python tests/mutate.py --json mutation.json --keep /tmp/mut   # keep the scratch folders

It prints, per module, the mutants killed / survived / timeout / no tests, the score
(killed + timeout over all mutants) and every survivor with its diff. The exit code is 1
when a group scores below ``--min-score`` (default 85%), else 0. Not part of ``make test``.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Group:
    files: tuple[str, ...]              # modules to mutate
    tests: tuple[str, ...]              # the fast test files (or test ids) that cover them
    functions: tuple[str, ...] = ()     # only these functions' mutants (mutmut name globs); empty: all
    copy: tuple[str, ...] = field(default=())  # extra folders the tests read (copied next to them)


GROUPS: dict[str, Group] = {
    "selection": Group(("nsnet/models/selection.py",), ("tests/test_selection.py", "tests/test_methods.py")),
    "methods": Group(("nsnet/inference/methods.py",), ("tests/test_methods.py", "tests/test_selection.py")),
    "metrics": Group(("nsnet/metrics.py",), ("tests/test_metrics.py",)),
    "rows": Group(("nsnet/evaluation/rows.py",), ("tests/test_rows.py",)),
    # analyze's resume and merge logic, not the rest of jsonl.py (locks, result reading: other tests)
    "analyze-resume": Group(
        ("nsnet/evaluation/jsonl.py", "nsnet/evaluation/analyze.py"),
        ("tests/test_analyze_resume.py",),
        functions=tuple(f"nsnet.evaluation.jsonl.x_{f}*" for f in
                        ("part_files", "done_ids", "prepare_out", "repair", "merge"))
        + tuple(f"nsnet.evaluation.analyze.x_{f}*" for f in ("_prepare_out", "_analyze_locked"))),
    # what decides which frames and when to give up: sample points, output size, nearest frame, runs for
    # parallel decoders, merging them, coverage. Unit tests without decoding, so each mutant takes a second.
    "sampling": Group(
        ("nsnet/video/sampling.py",),
        ("tests/test_mutation_targets.py", "tests/test_video.py::test_segment_centres_are_tsn"),
        functions=tuple(f"nsnet.video.sampling.x_{f}*" for f in
                        ("segment_centres", "output_size", "_nearest", "split", "check_coverage"))
        + ("nsnet.video.sampling.x\u01c1Workers\u01c1merge*", "nsnet.video.sampling.x\u01c1Workers\u01c1__init__*")),
    # the rules and the teacher's confidences; not health_warning (the text of a training warning)
    "pseudo_labels": Group(
        ("nsnet/training/pseudo_labels.py",), ("tests/test_pseudo_labels.py", "tests/test_mutation_targets.py"),
        functions=("nsnet.training.pseudo_labels.x_teacher_confidences*",
                   "nsnet.training.pseudo_labels.x_make_pseudo_labels*",
                   "nsnet.training.pseudo_labels.x\u01c1PseudoLabelRule\u01c1*")),
    "losses": Group(("nsnet/training/losses.py",), ("tests/test_losses.py", "tests/test_mutation_targets.py")),
}
#: Not in the default run: the decode loop of sampling.py (Sampler, Workers.run, sample) against the whole video
#: suite, ~10 s of CPU a mutant (hours on two cores). ``--only sampling-decode`` runs it.
EXTRA: dict[str, Group] = {
    "sampling-decode": Group(("nsnet/video/sampling.py",), ("tests/test_video.py", "tests/test_video_hostile.py",
                                                            "tests/test_video_previews.py")),
}

KILLED = {"killed", "timeout", "caught by type check"}


def _setup_cfg(group: Group) -> str:
    lines = ["[mutmut]", "source_paths=nsnet", "only_mutate=" + "\n    ".join(group.files),
             "pytest_add_cli_args_test_selection=" + "\n    ".join(group.tests),
             "pytest_add_cli_args=\n    -p\n    no:randomly\n    -p\n    no:cacheprovider\n    -q",
             "use_git_change_detection=false",
             "process_isolation=forkserver"]  # fork after torch ran ops can hang in OpenMP (backward passes)
    if group.copy:
        lines.append("also_copy=" + "\n    ".join(group.copy))
    return "\n".join(lines) + "\n"


def _prepare(name: str, group: Group, work: Path) -> Path:
    """A scratch folder holding a copy of the package and the tests, and mutmut's config."""
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "nsnet", folder / "nsnet", ignore=ignore)
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=ignore)
    for extra in group.copy:
        src = ROOT / extra
        (shutil.copytree(src, folder / extra, ignore=ignore) if src.is_dir() else shutil.copy2(src, folder / extra))
    shutil.copy2(ROOT / "pyproject.toml", folder / "pyproject.toml")  # pytest's settings (no [tool.mutmut])
    (folder / "setup.cfg").write_text(_setup_cfg(group))
    return folder


def _mutmut(folder: Path, *args: str, log=None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "mutmut"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([str(exe), *args], cwd=folder, env=env, text=True,
                          stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT if log else subprocess.PIPE)


def _results(folder: Path, group: Group) -> dict[str, dict[str, str]]:
    """{module file: {mutant name: status}} from mutmut's meta files (the group's functions only)."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for file in group.files:
        meta = json.loads((folder / "mutants" / (file + ".meta")).read_text())
        out[file] = {key: status_by_exit_code[code] for key, code in meta["exit_code_by_key"].items()
                     if not group.functions or any(fnmatch.fnmatch(key, f) for f in group.functions)}
    return out


def _functions(path: Path) -> dict[str, list[str]]:
    """Source lines of every function in mutmut's copy of a module (original and mutants), by name."""
    text = path.read_text()
    lines = text.splitlines()
    return {node.name: lines[node.lineno - 1:node.end_lineno] for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _diff(functions: dict[str, list[str]], mutant: str) -> str:
    """The changed lines of one mutant, as ``- old`` / ``+ new`` (what ``mutmut show`` prints, faster)."""
    name = mutant.rpartition(".")[2]
    orig = functions.get(name.partition("__mutmut_")[0] + "__mutmut_orig")
    new = functions.get(name)
    if orig is None or new is None:
        return "(source not found)"
    new = [new[0].replace(name, name.partition("__mutmut_")[0] + "__mutmut_orig", 1), *new[1:]]
    diff = difflib.unified_diff(orig, new, lineterm="", n=0)
    return "\n".join(line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---")))


def run_group(name: str, group: Group, work: Path, children: int, show: bool, report_only: bool = False) -> dict:
    folder, wall = work / name, None
    if not report_only:
        folder = _prepare(name, group, work)
        start = time.monotonic()
        with open(folder / "mutmut.log", "w") as log:
            done = _mutmut(folder, "run", "--max-children", str(children), *group.functions, log=log)
        wall = round(time.monotonic() - start, 1)
        if done.returncode != 0 or not (folder / "mutants").is_dir():
            tail = (folder / "mutmut.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"mutmut failed on {name} (exit {done.returncode}):\n{tail}")
    report = {"wall_s": wall, "modules": {}}
    for file, statuses in _results(folder, group).items():
        functions = _functions(folder / "mutants" / file) if show else {}
        counts = Counter(statuses.values())
        total = len(statuses)
        killed = sum(counts[s] for s in KILLED)
        survivors = sorted(k for k, s in statuses.items() if s not in KILLED)
        report["modules"][file] = {
            "total": total, "killed": counts["killed"], "timeout": counts["timeout"],
            "survived": counts["survived"], "no_tests": counts["no tests"],
            "other": total - killed - counts["survived"] - counts["no tests"],
            "score": round(100 * killed / total, 1) if total else None,
            "survivors": {k: (_diff(functions, k) if show else statuses[k]) for k in survivors}}
    return report


def _print(name: str, report: dict) -> None:
    for file, m in report["modules"].items():
        print(f"{name:15s} {file:35s} {m['total']:4d} mutants  killed {m['killed']:4d}  survived {m['survived']:3d}"
              f"  timeout {m['timeout']:2d}  no tests {m['no_tests']:2d}  score {m['score']}%", flush=True)
        for key, what in m["survivors"].items():
            print(f"    {key}: " + ("\n        " + what.replace("\n", "\n        ") if "\n" in what or what.startswith(
                ("-", "+")) else what))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=sorted(GROUPS) + sorted(EXTRA),
                    help=f"groups to run (default: {', '.join(GROUPS)})")
    ap.add_argument("--max-children", type=int, default=1, help="parallel mutant runs (default 1)")
    ap.add_argument("--keep", metavar="DIR", help="run in DIR and keep it (default: a temp folder, removed)")
    ap.add_argument("--json", metavar="OUT", help="write the per-module report here")
    ap.add_argument("--show", action="store_true", help="print each survivor's diff")
    ap.add_argument("--report", action="store_true", help="only report the results kept in --keep DIR (no run)")
    ap.add_argument("--min-score", type=float, default=85.0)
    args = ap.parse_args(argv)
    if args.report and not args.keep:
        ap.error("--report reads the results of an earlier run with --keep DIR: give that DIR")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nsnet-mutate-"))
    reports = {}
    try:
        for name in args.only or list(GROUPS):
            group = GROUPS.get(name) or EXTRA[name]
            reports[name] = run_group(name, group, work, args.max_children, args.show, args.report)
            _print(name, reports[name])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1) + "\n")
    low = [f for r in reports.values() for f, m in r["modules"].items()
           if m["score"] is not None and m["score"] < args.min_score]
    if low:
        print(f"below {args.min_score:g}%: {', '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
