"""The package's import graph has no cycle: every module can be read after the modules it imports (function-level
imports included, as a lazy import still runs when its function is called)."""

from __future__ import annotations

from pathlib import Path

from lmfusion import deps


def import_cycles(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """The cycles of a directed graph (one per strongly connected part with more than one node, or a self-loop),
    each as the list of its nodes, by Tarjan's algorithm."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    cycles: list[list[Path]] = []

    def visit(node: Path) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.append(top)
                if top == node:
                    break
            if len(part) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_package_has_no_import_cycle() -> None:
    graph = {p: deps.direct_imports(p) for p in sorted(deps.ROOT.rglob("*.py"))}
    cycles = [[p.relative_to(deps.ROOT).as_posix() for p in c] for c in import_cycles(graph)]
    assert cycles == []


def test_a_cycle_is_found(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("a.py", "b.py", "c.py"))
    assert import_cycles({a: {b}, b: {c}, c: {a}}) == [sorted([a, b, c])]
    assert import_cycles({a: {b}, b: {c}, c: set()}) == []


def test_a_function_level_import_is_an_edge() -> None:
    study = deps.ROOT / "synth" / "styles.py"
    assert deps.ROOT / "synth" / "randomize.py" in deps.direct_imports(study)
    assert deps.ROOT / "synth" / "__init__.py" not in deps.direct_imports(study)  # `from lmfusion.synth import x`
