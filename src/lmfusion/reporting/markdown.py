"""Markdown building blocks of the report: tables and number formats."""

from __future__ import annotations

from typing import Any, Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float | None) -> str:
    """A share as a percentage with one decimal; n/a for None."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def fmt(x: Any, spec: str) -> str:
    """A number in format `spec`; n/a for None."""
    return "n/a" if x is None else format(float(x), spec)
