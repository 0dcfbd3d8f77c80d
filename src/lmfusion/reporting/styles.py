"""The report's section on held-out synthetic styles (benchmarks/bench_styles.py's styles.json): plain formatting.

One row per pipeline and style: studies identified (all landmarks within the target radius), level-shifted studies
and the SDR at that radius for the pipeline's best method, then studies identified by chain, fused and argmax.
"""

from __future__ import annotations

from lmfusion.decoding.methods import DECODE_METHODS, SUBPIXEL

STYLE_NOTES = {"default": "as varied as real series", "target": "STIR-like, steep junctions",
               "randomized": "every contrast and acquisition drawn", "unseen": "T1-like, low resolution, thick slice, "
                                                                               "strong bias; never trained on"}
# the columns after the best method's: the heatmap methods without sub-pixel refinement, the registry's last first
# (chain, gated, fused, argmax)
OTHER_METHODS = tuple(m.name for m in reversed(DECODE_METHODS) if m.name != "direct" and not m.name.endswith(SUBPIXEL))


def _count(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "n/a"


def _radius(styles: dict) -> str:
    radii = {p["radius_mm"] for p in styles["pipelines"].values()}
    return f"{radii.pop():g} mm" if len(radii) == 1 else "the target radius"


def styles_table(styles: dict) -> list[str]:
    """The Markdown table (one line per row) of styles.json's figures."""
    n, r = styles["settings"]["n"], _radius(styles)
    header = ["pipeline", "style", "best method", f"studies identified (all within {r})", "level-shifted studies",
              f"SDR {r}", *[f"{m} identified" for m in OTHER_METHODS]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    shown = [m for m in OTHER_METHODS if all(m in methods for p in styles["pipelines"].values()
                                             for methods in p["styles"].values())]
    header = header[:6] + [f"{m} identified" for m in shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for label, p in styles["pipelines"].items():
        best = p["best_method"]
        for style, methods in p["styles"].items():
            b = methods[best]
            cells = [label, style, best, _count(b["identified"], n), str(b["level_shifted"]),
                     f"{100 * b['sdr']:.1f}%", *[_count(methods[m]["identified"], n) for m in shown]]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def styles_section(styles: dict) -> list[str]:
    """The report's lines (a heading, what was measured, the table) for styles.json's content."""
    st = styles["settings"]
    sets = ", ".join(f"`{s}` (seed {seed}: {STYLE_NOTES.get(s, 'a synthetic style')})" for s, seed in
                     st["seeds"].items())
    return ["## Held-out synthetic styles", "",
            (f"`benchmarks/bench_styles.py`: each trained pipeline decodes {st['n']} held-out studies of every "
             f"synthetic style, drawn with seeds no training set uses: {sets}. The `unseen` style is the yardstick: "
             "no training sees it. Study-level figures as in the evaluate stage."), "",
            *styles_table(styles), ""]
