"""The README's headline table: each decode method on the test split, generated from metrics/evaluate.json.

The table sits in README.md between BEGIN and END, so it cannot drift from the committed metrics:

    python -m lmfusion.reporting.headline [README.md [metrics/evaluate.json]]

rewrites it in place (paths relative to the current directory unless given) and exits 1 with one line naming the
file when the markers or a method are missing. Reading the metrics needs no torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lmfusion.decoding.methods import DECODE_METHODS

# method in evaluate.json -> its label here, in the table's order: the registry's methods that have a headline label
LABELS: dict[str, str] = {m.name: m.headline for m in DECODE_METHODS if m.headline is not None}
BEGIN = "<!-- headline: generated from metrics/evaluate.json by python -m lmfusion.reporting.headline -->"
END = "<!-- /headline -->"
SPLIT = "test"


class HeadlineError(ValueError):
    """The metrics or the README lack what the table needs; the message is one line."""


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _bold_best(cells: list[str], values: list[float | None]) -> list[str]:
    known = [v for v in values if v is not None]
    best = max(known) if known else None
    return [f"**{c}**" if v is not None and v == best else c for c, v in zip(cells, values)]


def table(evaluate: dict[str, Any]) -> str:
    """The Markdown table of every method in LABELS on the test split of a parsed metrics/evaluate.json."""
    split = evaluate.get(SPLIT)
    if not isinstance(split, dict):
        raise HeadlineError(f"no '{SPLIT}' split")
    missing = [m for m in LABELS if not isinstance(split.get(m), dict)]
    if missing:
        raise HeadlineError(f"method '{missing[0]}' missing from the '{SPLIT}' split")
    radius = float(split.get("fused_vs_direct", {}).get("radius_mm", 8.0))
    key, r = f"{radius:g}mm", f"{radius:g} mm"
    k = len(split["direct"].get("per_landmark", {})) or 1
    n_landmarks = int(split.get("landmarks", 0))
    n_studies = n_landmarks // k
    rows = [split[m] for m in LABELS]
    sdr = [row["sdr"].get(key) for row in rows]
    ident = [row.get("study_identification") for row in rows]
    sdr_cells = _bold_best([_pct(v) for v in sdr], sdr)
    ident_cells = _bold_best([f"{_pct(v)} ({row.get('studies_identified', 0)}/{n_studies})"
                              for v, row in zip(ident, rows)], ident)
    header = [f"method ({SPLIT} split, {n_studies} studies, {n_landmarks} landmarks)", f"SDR {r}", "MRE (mm)",
              "wrong level", f"studies with all {k} within {r}", "level-shifted studies"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row, s, i in zip(LABELS.values(), rows, sdr_cells, ident_cells):
        mre = "n/a" if row.get("mre_mm") is None else f"{row['mre_mm']:.2f}"
        cells = [label, s, mre, str(row.get("wrong_level", "n/a")), i, str(row.get("level_shifts", "n/a"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(readme_text: str, evaluate: dict[str, Any]) -> str:
    """`readme_text` with the table between BEGIN and END replaced by `table(evaluate)`."""
    start = readme_text.find(BEGIN)
    end = readme_text.find(END, max(start, 0))
    if start < 0 or end < 0:
        raise HeadlineError(f"markers {BEGIN} ... {END} missing")
    # blank lines around the table: a Markdown table must not touch the HTML comments
    return readme_text[:start + len(BEGIN)] + "\n\n" + table(evaluate) + "\n\n" + readme_text[end:]


def main(argv: list[str] | None = None) -> int:
    """Rewrite README.md's headline table from metrics/evaluate.json; 1 with one line on stderr when it cannot."""
    args = sys.argv[1:] if argv is None else argv
    readme = Path(args[0] if args else "README.md")
    metrics = Path(args[1] if len(args) > 1 else "metrics/evaluate.json")
    try:
        evaluate = json.loads(metrics.read_text())
        text = readme.read_text()
    except (OSError, ValueError) as e:
        print(f"headline: {getattr(e, 'filename', None) or metrics}: {e}", file=sys.stderr)
        return 1
    start = text.find(BEGIN)
    if start < 0 or text.find(END, start) < 0:
        print(f"headline: {readme}: the markers {BEGIN} ... {END} are missing", file=sys.stderr)
        return 1
    try:
        new = render(text, evaluate)
    except (HeadlineError, KeyError, TypeError, AttributeError) as e:
        print(f"headline: {metrics}: {e}", file=sys.stderr)
        return 1
    if new != text:
        readme.write_text(new)
    print(f"headline: {readme} {'updated' if new != text else 'unchanged'} from {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
