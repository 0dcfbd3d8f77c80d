"""The decode methods' table (lmfusion.decoding.methods): every method once, with a label and a colour, in one order;
the report, the held-out styles table and the figures take their labels, columns and colours from it."""

from __future__ import annotations

import re

from lmfusion import decoding
from lmfusion.decoding.methods import COLOURS, DECODE_METHODS, LABELS, METHODS, SUBPIXEL
from lmfusion.figures import charts, evaluation
from lmfusion.figures.drawing import COLORS, bgr
from lmfusion.reporting import headline, report, styles


def test_every_method_has_one_name_a_label_and_a_colour() -> None:
    names = [m.name for m in DECODE_METHODS]
    assert tuple(names) == METHODS == decoding.METHODS and len(set(names)) == len(names)
    assert list(LABELS) == list(COLOURS) == names
    for m in DECODE_METHODS:
        assert m.label.strip() and re.fullmatch(r"#[0-9a-f]{6}", m.colour), m
    assert len(set(LABELS.values())) == len(LABELS)


def test_a_subpixel_variant_comes_after_its_base_in_its_colour() -> None:
    for i, m in enumerate(DECODE_METHODS):
        base = m.name.removesuffix(SUBPIXEL)
        if base != m.name:
            assert base in METHODS[:i] and COLOURS[base] == m.colour, m.name


def _result(i: int) -> dict:
    return {"sdr": {"2mm": 0.1 * i, "8mm": 0.1 * i}, "mre_mm": float(i), "sd_mm": 0.5, "wrong_level": i,
            "study_identification": 0.05 * i, "level_shifts": i, "per_landmark": {"L1": {"mre_mm": float(i)}}}


def test_the_report_method_table_rows_follow_the_registry() -> None:
    results = {m: _result(i) for i, m in enumerate(reversed(METHODS))}  # the results' own order does not count
    rows = report.method_table(results, [2.0, 8.0], 8.0).splitlines()[2:]
    assert [r.split(" | ")[0].removeprefix("| ") for r in rows] == [m.label for m in DECODE_METHODS]
    header = report.per_landmark_table(results, ["L1"]).splitlines()[0]
    assert header == "| " + " | ".join(["landmark", *METHODS]) + " |"


def test_the_readme_headline_rows_are_the_registrys_with_a_headline_label() -> None:
    shown = [m for m in DECODE_METHODS if m.headline is not None]
    test = {m: {**_result(i), "studies_identified": i} for i, m in enumerate(METHODS)}
    rows = headline.table({"test": {**test, "landmarks": 3}}).splitlines()[2:]
    assert [r.split(" | ")[0].removeprefix("| ") for r in rows] == [m.headline for m in shown]


def test_the_styles_table_shows_the_registrys_heatmap_methods() -> None:
    assert styles.OTHER_METHODS == ("chain", "gated", "fused", "argmax")
    assert set(styles.OTHER_METHODS) <= set(METHODS)


def test_figures_draw_each_method_in_its_registry_colour() -> None:
    assert bgr("#28a0ff") == (255, 160, 40)
    for i, m in enumerate(DECODE_METHODS):
        assert charts._style(m.name, i) == {"color": m.colour, "linestyle": "--" if SUBPIXEL in m.name else "-"}
    bar = evaluation._legend(600)  # (22, 600, 3): a dot per drawn name at x + 5, the next at x + 24 + 9 * len(name)
    x = 6
    for name in ("truth", *evaluation.SHOWN):
        expected = COLORS["truth"] if name == "truth" else bgr(COLOURS[name])
        assert tuple(bar[11, x + 5]) == expected, name
        x += 24 + 9 * len(name)
