"""The package files a script or module runs: the one source of truth for each stage's code deps in dvc.yaml
(checked by tests/test_deps.py) and for the training code that a resume checkpoint must match.

The walk follows every `import` of a `lmfusion` module, at any depth of a module (a function-level import still runs
when the stage calls that function), skipping `if TYPE_CHECKING:` blocks (never executed). A package's
`__init__.py` runs whenever one of its modules is imported; only its module-level imports are followed, so a lazy
export (`lmfusion.LandmarkPredictor`) does not make every stage depend on torch's modules.

    python -m lmfusion.deps stages/evaluate.py      # the deps a stage's dvc.yaml entry must list
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "lmfusion"
ROOT = Path(__file__).resolve().parent  # the package folder


def _module_file(name: str) -> Path | None:
    """The file of module `lmfusion.a.b` (a module or a package's __init__), or None when there is none."""
    parts = name.split(".")[1:]
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.Module, top_level_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of lmfusion modules in a file, skipping `if TYPE_CHECKING:` blocks."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == PACKAGE for a in node.names):
            yield node
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == PACKAGE:
            yield node
        if not top_level_only or isinstance(node, (ast.If, ast.Try, ast.With)):
            stack.extend(ast.iter_child_nodes(node))


def _imported_names(tree: ast.Module, top_level_only: bool) -> set[str]:
    """Dotted names of the lmfusion modules (or module attributes) a file imports."""
    names: set[str] = set()
    for node in _import_nodes(tree, top_level_only):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        else:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
    return names


def _with_parents(name: str) -> list[str]:
    """`lmfusion.a.b` -> [lmfusion, lmfusion.a, lmfusion.a.b]: importing a module runs its packages first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def direct_imports(path: Path) -> set[Path]:
    """The lmfusion files that `path` itself imports, at any depth of it: the edges of the package's import graph.
    `from lmfusion.a import b` is an edge to module b where there is one, else to package a's __init__; the parents
    a dotted import runs on the way are not edges."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    found: set[Path | None] = set()
    for node in _import_nodes(tree, top_level_only=False):
        if isinstance(node, ast.Import):
            found.update(_module_file(a.name) for a in node.names if a.name.split(".")[0] == PACKAGE)
        else:
            found.update(_module_file(f"{node.module}.{a.name}") or _module_file(node.module) for a in node.names)
    return {f for f in found if f is not None} - {Path(path).resolve()}


def package_files(*entry_points: Path) -> list[Path]:
    """Every lmfusion file that running the given scripts or module files imports, transitively, sorted."""
    seen: set[Path] = set()
    todo = [Path(p).resolve() for p in entry_points]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in _imported_names(tree, top_level_only=path.name == "__init__.py"):
            for module in _with_parents(name):
                found = _module_file(module)
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(p for p in seen if p.is_relative_to(ROOT))


def stage_deps(script: Path, repo: Path) -> list[str]:
    """The code deps of a stage script as dvc.yaml lists them: the script and its package files, repo-relative."""
    files = [Path(script).resolve(), *package_files(script)]
    return [p.relative_to(repo.resolve()).as_posix() for p in files]


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}:")
        for dep in stage_deps(Path(arg), Path.cwd()):
            print(f"  - {dep}")
