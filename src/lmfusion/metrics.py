"""Accuracy in mm: radial errors, success detection rate (SDR), mean radial error (MRE), wrong-level predictions.

Legend: N images, K landmarks in top-to-bottom order. Coordinates are (x, y) in the original images' pixels and
spacing is (N, 2) mm per pixel in x and y, which can differ per axis. Pure functions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lmfusion.coords import radial_mm
from lmfusion.errors import DataError

DECIMALS = 4  # rounding of the summary's floats (JSON, `dvc metrics diff`)


def radial_errors(pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """(N, K) Euclidean errors in mm between (N, K, 2) predictions and ground truth, with (N, 2) spacing."""
    pred, truth, spacing = (np.asarray(a, dtype=np.float64) for a in (pred, truth, spacing))
    if pred.shape != truth.shape or pred.shape[-1:] != (2,) or spacing.shape != (*pred.shape[:-2], 2):
        raise DataError(f"predictions {pred.shape}, ground truth {truth.shape} and spacing {spacing.shape} do not "
                        "match: expected (N, K, 2), (N, K, 2) and (N, 2)")
    return radial_mm(pred, truth, spacing)


def radius_key(radius: float) -> str:
    """The key of a radius in SDR dicts: 2.0 -> "2mm", 2.5 -> "2.5mm"."""
    return f"{radius:g}mm"


def sdr(errors: np.ndarray, radii: Sequence[float]) -> dict[str, float]:
    """Success detection rate: the share of landmarks with error <= r, for each radius r (mm).

    A NaN error (no prediction) counts as a miss; an empty array gives NaN.
    """
    errors = np.asarray(errors, dtype=np.float64)
    return {radius_key(r): float(np.mean(errors <= r)) if errors.size else float("nan") for r in radii}


def wrong_level(pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """(N, K) True where a prediction lies closer (in mm) to an adjacent landmark's ground truth (k - 1 or k + 1 in
    the top-to-bottom order) than to its own: the landmark was put on the wrong vertebral level."""
    own = radial_errors(pred, truth, spacing)  # (N, K)
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    nearest_other = np.full(own.shape, np.inf)
    if own.shape[-1] > 1:
        up = radial_mm(pred[:, 1:], truth[:, :-1], spacing)  # (N, K-1): landmark k against truth k - 1
        down = radial_mm(pred[:, :-1], truth[:, 1:], spacing)  # (N, K-1): landmark k against truth k + 1
        nearest_other[:, 1:] = np.minimum(nearest_other[:, 1:], up)
        nearest_other[:, :-1] = np.minimum(nearest_other[:, :-1], down)
    return nearest_other < own


def wrong_level_studies(pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """(N,) True where any landmark of a study lies on a neighbour's level (see `wrong_level`)."""
    return wrong_level(pred, truth, spacing).any(axis=-1)


def relative_improvement(a: float, b: float) -> float:
    """(b - a) / a: e.g. a success rate going from 0.713 to 0.996 is +39.7%."""
    if a == 0:
        raise ZeroDivisionError("relative improvement over a baseline of 0 is undefined")
    return (b - a) / a


def _r(x: float) -> float | None:
    """Rounded for JSON; None for NaN (JSON has no NaN)."""
    return round(float(x), DECIMALS) if np.isfinite(x) else None


def _mean_sd(errors: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and population standard deviation of the finite errors (None when there are none)."""
    e = errors[np.isfinite(errors)]
    return (_r(e.mean()), _r(e.std())) if e.size else (None, None)


def summarize(pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray, names: Sequence[str],
              radii: Sequence[float]) -> dict:
    """All accuracy figures of one method on one split, rounded for JSON.

    Returns:
        {"sdr": {"2mm": ..., ...}, "mre_mm", "sd_mm", "wrong_level" (count),
         "per_landmark": {name: {"mre_mm", "sd_mm", "sdr_2mm", ...}}}
    """
    errors = radial_errors(pred, truth, spacing)  # (N, K)
    if errors.shape[-1] != len(names):
        raise DataError(f"{errors.shape[-1]} landmarks in the predictions but {len(names)} names in "
                        f"base.landmarks: {list(names)}")
    mre, sd = _mean_sd(errors)
    out = {
        "sdr": {key: _r(v) for key, v in sdr(errors, radii).items()},
        "mre_mm": mre,
        "sd_mm": sd,
        "wrong_level": int(wrong_level(pred, truth, spacing).sum()),
        "per_landmark": {},
    }
    for k, name in enumerate(names):
        mre_k, sd_k = _mean_sd(errors[:, k])
        out["per_landmark"][name] = {"mre_mm": mre_k, "sd_mm": sd_k,
                                     **{f"sdr_{key}": _r(v) for key, v in sdr(errors[:, k], radii).items()}}
    return out


def study_identified(errors: np.ndarray, radius: float) -> np.ndarray:
    """(N,) True where all K landmark errors of a study, (N, K) in mm, are <= radius (a NaN error is a miss)."""
    return np.all(np.asarray(errors, dtype=np.float64) <= radius, axis=-1)


def level_shift(pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """(N,) whole-level shift of each study's predicted chain: +1 a level too low, -1 a level too high, 0 neither.

    A study is shifted down when more than half of its landmarks that have a same-kind landmark two places further
    down (k + 2: disc to disc, body to body) lie nearer (mm) that landmark's truth than their own; up likewise with
    k - 2. Landmarks whose distances are NaN are left out of the count; a study shifted both ways counts as 0.

    Args:
        pred, truth: (N, K, 2) in pixels, top to bottom; spacing: (N, 2) mm per pixel.
    """
    own = radial_errors(pred, truth, spacing)  # (N, K)
    shift = np.zeros(own.shape[0], np.int64)
    if own.shape[-1] < 3:
        return shift
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    down = radial_mm(pred[:, :-2], truth[:, 2:], spacing)  # (N, K-2): landmark k against truth k + 2
    up = radial_mm(pred[:, 2:], truth[:, :-2], spacing)  # (N, K-2): landmark k against truth k - 2

    def majority(other: np.ndarray, mine: np.ndarray) -> np.ndarray:
        valid = np.isfinite(other) & np.isfinite(mine)
        return (valid & (other < mine)).sum(-1) > 0.5 * valid.sum(-1)

    is_down, is_up = majority(down, own[:, :-2]), majority(up, own[:, 2:])
    shift[is_down & ~is_up] = 1
    shift[is_up & ~is_down] = -1
    return shift


def flag_rates(flagged: np.ndarray, wrong: np.ndarray) -> dict[str, float]:
    """How well a per-study flag finds wrong studies: {"caught": share of the wrong studies flagged, "false_alarm":
    share of the right ones flagged}, each NaN when there is no such study. Both args are (N,) bool."""
    flagged, wrong = np.asarray(flagged, bool), np.asarray(wrong, bool)
    return {"caught": float(flagged[wrong].mean()) if wrong.any() else float("nan"),
            "false_alarm": float(flagged[~wrong].mean()) if (~wrong).any() else float("nan")}
