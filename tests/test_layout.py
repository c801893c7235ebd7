"""The layout stays easy to follow: no import cycle, no private names across modules, small files.

And the explorer keeps its shape (``app/``: one room per tab): short chains of imports, each
layer importing only the ones below it (``server`` <- ``views`` <- ``state`` <- ``tabs`` <- ``shell``
<- ``bench``), pure views without Gradio, and a library that imports neither the app nor its
own command line. Reads the source with ``ast`` (imports nothing), so it checks the code as written.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nsnet", "app")
MAX_LINES = 650
MAX_APP_LINES = 400
MAX_APP_CHAIN = 6   # modules in the longest chain of the app's own imports


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


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the nodes under ``if TYPE_CHECKING:`` (annotations only: never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    return skip


def _imports(module: str, path: Path, runtime_only: bool = False) -> list[tuple[str, list[str], bool]]:
    """(imported module, names, at module level) for every import of a file (``runtime_only``: not
    those under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    skip = _type_checking_only(tree) if runtime_only else set()
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
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


def test_the_library_imports_no_command_line():
    """``nsnet.cli`` is the top of the library: nothing else in ``nsnet`` (benchmarks included) imports it."""
    bad = [f"{m}: {t}" for m, p in MODULES.items() if m.startswith("nsnet") and not m.startswith("nsnet.cli")
           and m != "nsnet.__main__"   # ``python -m nsnet``: the command line's own entry point
           for t, _, _ in _imports(m, p) if t == "nsnet.cli" or t.startswith("nsnet.cli.")]
    assert not bad, bad


# --------------------------------------------------------------------------- the explorer's shape
APP_LAYERS = ("app.server", "app.views", "app.state", "app.tabs", "app.shell", "app.bench",
              "app.screenshots")  # bottom to top (the screenshots drive the page like a benchmark)


def _layer(module: str) -> int | None:
    return next((i for i, name in enumerate(APP_LAYERS) if module == name or module.startswith(name + ".")), None)


SCRIPTS = ("app.py", "app.bench.__main__")  # entry points that only ever run (python app.py, python -m app.bench)


def _app_graph() -> dict[str, set[str]]:
    """The app's own imports that run (``if TYPE_CHECKING:`` ones left out), ``app.py`` included."""
    app_modules = {m: p for m, p in MODULES.items() if m == "app" or m.startswith("app.")}
    app_modules["app.py"] = ROOT / "app.py"
    graph: dict[str, set[str]] = {}
    for module, path in app_modules.items():
        graph[module] = {own for target, _, _ in _imports("app" if module == "app.py" else module, path, True)
                         if (own := _own(target)) and own.split(".")[0] == "app" and own != module}
    return graph


def _longest_chain(graph: dict[str, set[str]]) -> list[str]:
    memo: dict[str, list[str]] = {}

    def chain(m: str) -> list[str]:
        if m not in memo:
            memo[m] = [m] + max((chain(n) for n in graph.get(m, ())), key=len, default=[])
        return memo[m]

    return max((chain(m) for m in graph), key=len)


def test_the_app_imports_in_short_chains():
    """The longest chain of imports between the app's modules (the scripts on top, which nothing imports,
    each add one: ``app.py`` -> ``app.shell`` -> ...)."""
    graph = _app_graph()
    assert not [m for m, targets in graph.items() for t in targets if t in SCRIPTS], "a script is imported"
    chain = _longest_chain({m: t for m, t in graph.items() if m not in SCRIPTS})
    assert len(chain) <= MAX_APP_CHAIN, " -> ".join(chain)
    assert len(_longest_chain({"app.py": graph["app.py"], **{m: t for m, t in graph.items() if m not in SCRIPTS}})
               ) <= MAX_APP_CHAIN


def test_each_app_layer_imports_only_the_layers_below():
    """server <- views <- state <- tabs <- shell <- bench; the rooms (``app.tabs.analyze`` / ``compare`` /
    ``dataset``) never import one another; no runtime module imports the benchmarks; packages are empty."""
    rooms = {"app.tabs.analyze", "app.tabs.compare", "app.tabs.dataset"}
    bad = []
    for module, targets in _app_graph().items():
        here = _layer(module)
        for target in targets:
            there = _layer(target)
            if module in ("app.py",) and target in ("app.shell", "app.server.runtime"):
                continue
            if here is None or there is None or there > here or (module in rooms and target in rooms):
                bad.append(f"{module} -> {target}")
            if module in ("app.server",) or (module.startswith("app.server.") and there != 0):
                bad.append(f"{module} -> {target} (the server's plumbing imports no other layer)")
    for module, path in MODULES.items():
        if (module == "app" or module.startswith("app.")) and path.name == "__init__.py" and _imports(module, path):
            bad.append(f"{module}: a package's __init__ imports nothing (chains stay as they look)")
    assert not bad, "\n".join(sorted(set(bad)))


def test_views_never_import_gradio():
    bad = [f"{m}: {t}" for m, p in MODULES.items() if m.startswith("app.views")
           for t, _, _ in _imports(m, p) if t.split(".")[0] == "gradio"]
    assert not bad, bad


def test_no_app_module_is_too_long():
    long = {str(p.relative_to(ROOT)): n for m, p in MODULES.items() if m.split(".")[0] == "app"
            if (n := len(p.read_text().splitlines())) > MAX_APP_LINES}
    assert not long, long


def test_code_cites_nothing_outside_the_repository():
    for path in list(MODULES.values()) + [ROOT / "app.py"]:
        text = path.read_text()
        assert "NSNET.md" not in text and "shared/" not in text, path
    assert (ROOT / "docs" / "method.md").is_file()
