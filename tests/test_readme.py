"""README.md stays short, its headline table equals metrics/evaluate.json, and the docs' links resolve."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from lmfusion.reporting import headline

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _between_markers(text: str) -> str:
    start, end = text.index(headline.BEGIN) + len(headline.BEGIN), text.index(headline.END)
    return text[start:end].strip("\n")


def _small_evaluate() -> dict:
    """A hand-made evaluate.json: two landmarks, three studies, every method of the headline."""
    def method(sdr8: float, mre: float, wrong: int, ident: float, n_ident: int, shifts: int) -> dict:
        return {"sdr": {"8mm": sdr8}, "mre_mm": mre, "wrong_level": wrong, "per_landmark": {"A": {}, "B": {}},
                "study_identification": ident, "studies_identified": n_ident, "level_shifts": shifts}
    test = {m: method(0.5, 4.0, 1, 1 / 3, 1, 1) for m in headline.LABELS}
    test.update(landmarks=6, fused_vs_direct={"radius_mm": 8.0})
    return {"test": test}


def test_readme_is_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= 200


def test_headline_table_matches_metrics() -> None:
    evaluate = json.loads((REPO / "metrics" / "evaluate.json").read_text())
    assert _between_markers(README.read_text()) == headline.table(evaluate), (
        "README.md's headline table is stale: run python -m lmfusion.reporting.headline")


def test_a_changed_figure_changes_the_table() -> None:
    evaluate = _small_evaluate()
    table = headline.table(evaluate)
    assert "50.0%" in table and "3 studies, 6 landmarks" in table and "all 2 within 8 mm" in table
    changed = copy.deepcopy(evaluate)
    changed["test"]["chain_subpixel"]["sdr"]["8mm"] = 1.0
    assert headline.table(changed) != table
    readme = f"intro\n{headline.BEGIN}\nold\n{headline.END}\nrest\n"
    expected = f"intro\n{headline.BEGIN}\n\n{headline.table(changed)}\n\n{headline.END}\nrest\n"
    assert headline.render(readme, changed) == expected


def test_missing_markers_or_method_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evaluate = _small_evaluate()
    (tmp_path / "evaluate.json").write_text(json.dumps(evaluate))
    (tmp_path / "README.md").write_text("no markers\n")
    args = [str(tmp_path / "README.md"), str(tmp_path / "evaluate.json")]
    assert headline.main(args) == 1
    assert "README.md" in capsys.readouterr().err
    del evaluate["test"]["gated"]
    (tmp_path / "evaluate.json").write_text(json.dumps(evaluate))
    (tmp_path / "README.md").write_text(f"{headline.BEGIN}\n{headline.END}\n")
    assert headline.main(args) == 1
    err = capsys.readouterr().err
    assert "evaluate.json" in err and "gated" in err and len(err.strip().splitlines()) == 1


def test_every_docs_page_is_linked_and_every_link_resolves() -> None:
    readme = README.read_text()
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ holds no page"
    linked = {(README.parent / target.split("#")[0]).resolve() for target in LINK.findall(readme)}
    assert [p.name for p in pages if p.resolve() not in linked] == []
    broken = []
    for doc in [README, *pages]:
        for target in LINK.findall(doc.read_text()):
            path = target.split("#")[0]
            if not path or re.match(r"[a-z]+:", path):  # an anchor on the same page, or a URL
                continue
            if not (doc.parent / path).exists():
                broken.append(f"{doc.name}: {target}")
    assert broken == []
