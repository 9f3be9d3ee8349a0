"""The layering of docs/ARCHITECTURE.md, checked on the source: cli → stages → library → models.

Every ``import``/``from … import`` of a ``maa`` module is counted, at module level and inside
functions alike, so a lazy import cannot hide a circle or an arrow pointing upwards.
"""

from __future__ import annotations

import ast
import keyword
from pathlib import Path

import maa

ROOT = Path(maa.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """``module → maa modules it imports`` (``from maa.x import y`` counts ``maa.x.y`` when that
    is a module, else ``maa.x``)."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "maa")
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.split(".")[0] != "maa":
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    deps.add(sub if sub in paths else base)
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def _layer(module: str) -> int:
    if module.startswith("maa.cli"):
        return 3
    if module.startswith("maa.stages"):
        return 2
    return 1  # the library: core, loaders and models


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{m} → {d}"
        for m, deps in _imports().items()
        if m != "maa"  # the package root re-exports the public API lazily
        for d in deps
        if _layer(d) > _layer(m)
    ]
    assert not upward, "imports pointing up the layers: " + ", ".join(sorted(upward))


def test_no_import_circles():
    graph = {m: d - {"maa"} for m, d in _imports().items() if m != "maa"}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, set())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import circles: " + "; ".join(" → ".join(c) for c in cycles)


def test_each_command_lives_in_a_file_named_after_it():
    from maa.cli.app import COMMANDS, GROUPS

    for name, func in COMMANDS:
        expected = f"maa.cli.{name.replace('-', '_')}"
        if keyword.iskeyword(name):  # `maa continue` lives in continue_.py
            expected += "_"
        if name == "distill-merge":  # the merge step of `maa distill --shard i/n`
            expected = "maa.cli.distill"
        assert func.__module__ == expected, (name, func.__module__)
    for name, group in GROUPS:
        callback_modules = {c.callback.__module__ for c in group.registered_commands}
        module = name + "_" if keyword.iskeyword(name) else name  # `maa import`: import_.py
        assert callback_modules == {f"maa.cli.{module}"}, (name, callback_modules)
