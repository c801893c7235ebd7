"""Markdown as the docs tests read it: code blocks, headings and their GitHub anchors, links,
and the project's commands shown in shell code blocks (``tests/test_docs.py``)."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def fenced_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """``(language, first line number, lines)`` of every fenced code block."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start, body = m.group(1), m.group(2).lower(), i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append((lang, start + 1, body))
        i += 1
    return blocks


def prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` outside fenced code blocks."""
    out, fence = [], None
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*(```+|~~~+)", line)
        if m and (fence is None or line.strip().startswith(fence)):
            fence = None if fence else m.group(1)
            continue
        if fence is None:
            out.append((n, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: rendered text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("**", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen = set(), {}
    for _, line in prose_lines(page.read_text()):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return found


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*(?:href|src)=\"([^\"]+)\"")


def links(page: Path) -> list[tuple[int, str]]:
    out = []
    for n, line in prose_lines(page.read_text()):
        line = re.sub(r"`[^`]*`", "``", line)  # code spans hold no links
        out += [(n, target) for target in LINK.findall(line) + HTML_LINK.findall(line)]
    return out


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I))


def resolve(page: Path, target: str) -> tuple[Path, str]:
    path, _, anchor = target.partition("#")
    return ((page.parent / path).resolve() if path else page), anchor




@dataclass(frozen=True)
class Command:
    program: str          # "nsnet eval", "nsnet bench decode", "python app.py", "make run", "torchrun", ...
    flags: frozenset
    where: str = ""       # page:line


FLAG = re.compile(r"^\[*(--?[A-Za-z][\w-]*)")


def _flags(tokens: list[str]) -> frozenset:
    return frozenset(m.group(1) for t in tokens if (m := FLAG.match(t)))


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _nsnet(rest: list[str]) -> list[tuple[str, frozenset]]:
    if not rest or rest[0].startswith("-"):
        return [("nsnet", _flags(rest))]
    if rest[0] == "bench":
        kinds = rest[1].split("|") if len(rest) > 1 and not rest[1].startswith("-") else [""]
        return [(f"nsnet bench {k}".strip(), _flags(rest[2:])) for k in kinds]
    return [(f"nsnet {rest[0]}", _flags(rest[1:]))]


def parse_command(line: str) -> list[tuple[str, frozenset]]:
    """The programs and flags one shell line runs (only this project's commands; others: [])."""
    line = _strip_comment(line).strip().removeprefix("$ ")
    try:
        tokens = shlex.split(line)
    except ValueError:
        tokens = line.split()
    while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", tokens[0]):
        tokens.pop(0)  # VAR=value before the command
    if not tokens:
        return []
    head = tokens[0]
    if re.fullmatch(r"(?:\S*/)?python3?", head):
        if len(tokens) > 1 and tokens[1] == "app.py":
            return [("python app.py", _flags(tokens[2:]))]
        if len(tokens) > 2 and tokens[1] == "-m":
            return _nsnet(tokens[3:]) if tokens[2] == "nsnet" else [(f"python -m {tokens[2]}", _flags(tokens[3:]))]
        return []
    if re.fullmatch(r"(?:\S*/)?nsnet", head):
        return _nsnet(tokens[1:])
    if head == "make":
        targets = [t for t in tokens[1:] if not t.startswith("-") and "=" not in t]
        return [(f"make {t}", frozenset()) for t in targets or ["(default)"]]
    if head == "torchrun":
        i = tokens.index("-m") if "-m" in tokens else len(tokens)
        inner = _nsnet(tokens[i + 2:]) if tokens[i + 1:i + 2] == ["nsnet"] else []
        return [("torchrun", _flags(tokens[1:i]))] + inner
    return []


def shell_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, command)`` of the shell code blocks, continuation lines joined."""
    out = []
    for lang, start, body in fenced_blocks(text):
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        pending, first = "", 0
        for n, line in enumerate(body, start):
            if not pending:
                first = n
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            out.append((first, pending + line))
            pending = ""
    return out


def documented_commands() -> list[Command]:
    found = []
    for page in PAGES:
        for n, line in shell_lines(page.read_text()):
            for program, flags in parse_command(line):
                found.append(Command(program, flags, f"{page.relative_to(ROOT)}:{n}"))
    return found
