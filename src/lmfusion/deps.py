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


def _imported_names(tree: ast.Module, top_level_only: bool) -> set[str]:
    """Dotted names of the lmfusion modules (or module attributes) a file imports."""
    names: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == PACKAGE:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
        if not top_level_only or isinstance(node, (ast.If, ast.Try, ast.With)):
            stack.extend(ast.iter_child_nodes(node))
    return names


def _with_parents(name: str) -> list[str]:
    """`lmfusion.a.b` -> [lmfusion, lmfusion.a, lmfusion.a.b]: importing a module runs its packages first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


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
