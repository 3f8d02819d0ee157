"""The house has no import circle: every module's imports (module level, inside functions, and for type checking)
form a graph without cycles, so each stage sits above what it uses. Extensions and built-ins register through
ragtune.plugins, which names its modules as strings and imports none of them statically."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            # the most specific module the name is, or is inside of
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("ragtune"):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (SRC / "ragtune").rglob("*.py")}
    modules = set(files)
    edges = {m: imports(p, modules) - {m} for m, p in files.items()}
    # a package's __init__ re-exporting its own modules is not a dependency of those modules on it
    for m in edges:
        edges[m] = {d for d in edges[m] if not (m.startswith(d + ".") and files[d].name == "__init__.py")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle() -> None:
    found = cycles(graph())
    assert found == [], "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_plugins_load_built_ins_first_then_entry_points_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from ragtune import plugins

    fake = [
        EntryPoint(name="20-second", value="json", group=plugins.GROUP),
        EntryPoint(name="10-first", value="csv", group=plugins.GROUP),
    ]
    monkeypatch.setattr(plugins, "entry_points", lambda group: fake if group == plugins.GROUP else [])
    monkeypatch.setattr(plugins, "_loaded", {})
    assert plugins.load_plugins() == [*plugins.BUILTIN_PLUGINS, "csv", "json"]
    assert plugins.load_plugins() == [*plugins.BUILTIN_PLUGINS, "csv", "json"]  # once per process


def stage(module: str) -> str:
    """The stage a module belongs to: its folder under ragtune, or the module itself at the top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_stage_folder_sits_above_what_it_uses() -> None:
    edges: dict[str, set[str]] = {}
    for module, used in graph().items():
        for other in used:
            if stage(other) != stage(module):
                edges.setdefault(stage(module), set()).add(stage(other))
    found = cycles(edges)
    assert found == [], "stage folders that use each other: " + "; ".join(" <-> ".join(c) for c in found)
