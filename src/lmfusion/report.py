"""The ablation report: direct regression vs heatmap argmax vs fused prediction, a sigma sweep, heatmap models.

Everything here reads finished outputs (metrics JSON, cached predictions, MLflow runs) and writes Markdown.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lmfusion import metrics
from lmfusion.evaluation import SplitOutputs, decode_split
from lmfusion.predict import METHODS

LABELS = {
    "direct": "direct regression (Xception + FC)",
    "argmax": "heatmap argmax (U-Net)",
    "argmax_subpixel": "heatmap argmax + sub-pixel",
    "fused": "fused (the paper)",
    "fused_subpixel": "fused + sub-pixel",
}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def method_table(results: dict, radii: Sequence[float]) -> str:
    header = ["method", *[f"SDR {r:g} mm" for r in radii], "MRE ± SD (mm)", "wrong level"]
    rows = []
    for m in METHODS:
        r = results[m]
        rates = [pct(r["sdr"][metrics.radius_key(x)]) for x in radii]
        rows.append([LABELS[m], *rates, f"{r['mre_mm']:.2f} ± {r['sd_mm']:.2f}", r["wrong_level"]])
    return table(header, rows)


def per_landmark_table(results: dict, names: Sequence[str]) -> str:
    header = ["landmark", *[m for m in METHODS]]
    rows = [[n, *[f"{results[m]['per_landmark'][n]['mre_mm']:.2f}" for m in METHODS]] for n in names]
    return table(header, rows)


def sigma_sweep(val: SplitOutputs, test: SplitOutputs, sigmas: Sequence[float], auto_sigma_hm: np.ndarray | None,
                min_product: float, radius: float) -> list[dict]:
    """Fused success rate and mean radial error for each fixed sigma (and the fitted auto sigma), val and test."""
    k = test.coords_norm.shape[1]
    cases: list[tuple[str, np.ndarray]] = [(f"{s:g}", np.full(k, float(s))) for s in sigmas]
    if auto_sigma_hm is not None:
        cases.append(("auto", auto_sigma_hm))
    rows = []
    for label, sigma in cases:
        row: dict[str, Any] = {"sigma": label}
        for name, split in (("val", val), ("test", test)):
            decoded = decode_split(split, sigma, min_product)
            err = metrics.radial_errors(decoded.xy["fused"], split.truth, split.spacing)
            row[f"{name}_sdr"] = float((err <= radius).mean()) if err.size else float("nan")
            row[f"{name}_mre"] = float(err.mean()) if err.size else float("nan")
            row[f"{name}_fallbacks"] = int(decoded.fallback.sum())
        rows.append(row)
    return rows


def sweep_table(rows: list[dict], radius: float) -> str:
    header = ["prior sigma (heatmap px)", f"val SDR {radius:g} mm", "val MRE (mm)", f"test SDR {radius:g} mm",
              "test MRE (mm)", "test fallbacks"]
    return table(header, [[r["sigma"], pct(r["val_sdr"]), f"{r['val_mre']:.2f}", pct(r["test_sdr"]),
                           f"{r['test_mre']:.2f}", r["test_fallbacks"]] for r in rows])


def heatmap_model_table(runs: list[dict], radius: float) -> str:
    header = ["architecture", "encoder", "input (px)", f"argmax SDR {radius:g} mm", f"fused SDR {radius:g} mm",
              "best val loss", "s / epoch", "parameters (M)", "peak memory (MB)"]
    rows = []
    for r in runs:
        rows.append([r.get("arch", "?"), r.get("encoder", "?"), r.get("input_size", "?"), pct(r.get("argmax_sdr")),
                     pct(r.get("fused_sdr")), _fmt(r.get("best_val_loss"), ".4f"), _fmt(r.get("seconds_per_epoch"), ".1f"),
                     _fmt(None if r.get("parameters") is None else r["parameters"] / 1e6, ".2f"),
                     _fmt(r.get("peak_memory_mb"), ".0f")])
    return table(header, rows)


def _fmt(x: Any, spec: str) -> str:
    return "n/a" if x is None else format(float(x), spec)
