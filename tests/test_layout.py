"""The layout stays easy to follow: no import cycle, no private names across modules, small files.

Reads the source with ``ast`` (imports nothing), so it checks the code as written.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nsnet", "app")
MAX_LINES = 650


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> list[tuple[str, list[str], bool]]:
    """(imported module, names, at module level) for every import of a file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            names = [a.name for a in node.names]
            # ``from pkg import sub`` imports a module, not a name
            subs = [n for n in names if f"{target}.{n}" in MODULES]
            out += [(f"{target}.{n}", [], id(node) in top) for n in subs]
            rest = [n for n in names if n not in subs]
            if rest:
                out.append((target, rest, id(node) in top))
    return out


def _own(name: str) -> str | None:
    """The project module an import refers to (the longest known prefix), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in MODULES:
            return ".".join(parts[:i])
    return None


def _graph() -> dict[str, set[str]]:
    """Imports between project modules, lazy ones inside functions included."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, _, top in _imports(module, path):
            own = _own(target)
            if own and own != module:
                graph[module].add(own)
                parent = own.rsplit(".", 1)[0]
                while parent in MODULES and parent != module and not module.startswith(parent + "."):
                    graph[module].add(parent)  # importing a.b.c runs a/__init__ and a/b/__init__ first
                    parent = parent.rsplit(".", 1)[0] if "." in parent else ""
    return graph


def test_the_import_graph_has_no_cycle():
    graph, state, stack = _graph(), {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_module_imports_another_modules_private_names():
    bad = []
    for module, path in MODULES.items():
        for target, names, _ in _imports(module, path):
            if _own(target) is None:
                continue
            bad += [f"{module}: from {target} import {n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, "\n".join(bad)


def test_library_never_imports_the_app_or_gradio():
    bad = [f"{m}: {t}" for m, p in MODULES.items() if m.startswith("nsnet")
           for t, _, _ in _imports(m, p) if t.split(".")[0] in ("app", "gradio")]
    assert not bad, bad


def test_no_source_file_is_too_long():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_code_cites_nothing_outside_the_repository():
    for path in list(MODULES.values()) + [ROOT / "app.py"]:
        text = path.read_text()
        assert "NSNET.md" not in text and "shared/" not in text, path
    assert (ROOT / "docs" / "method.md").is_file()
