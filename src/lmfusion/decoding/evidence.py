"""Which slice of a sagittal series shows the spine best, judged by the decoded landmarks themselves.

`lmfusion predict` decodes every slice of a series' central band. `slice_evidence` is the one score: the mean U-Net
probability at the chosen landmarks. It rises towards the spine's mid-plane and is nearly flat within a slice or two
of it (the slices there look alike), so `peak_centre` does not take the single best slice but the centre of the
peak: the slices around the best one scoring at least PEAK_LEVEL of it, weighted by how far they rise above that
level. On synthetic series with the mid-plane up to a third of the series off the middle, the best slice lands
within one slice of the mid-plane in about 3 studies of 4, the peak's centre in 194 of 200 (docs/predict.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the API loads torch; scoring does not need it
    from lmfusion.api import Prediction


def slice_evidence(prediction: Prediction) -> float:
    """The mean U-Net probability at the chosen landmarks: high where every landmark sits on a clear peak."""
    return float(np.mean(prediction.confidence))


PEAK_LEVEL = 0.75  # the share of the best score that bounds the peak


def peak_centre(positions: Sequence[float], scores: Sequence[float], fallback: int) -> int:
    """The index (into `positions`, the slices' places in the series, ascending) of the slice nearest the centre of
    the score's peak; `fallback` when no score is finite or the best is not positive."""
    score = np.where(np.isfinite(scores), scores, -np.inf)
    if len(score) == 0 or not np.isfinite(score).any() or score.max() <= 0:
        return fallback
    best = int(np.argmax(score))
    floor = PEAK_LEVEL * score[best]
    lo, hi = best, best
    while lo > 0 and score[lo - 1] >= floor:
        lo -= 1
    while hi < len(score) - 1 and score[hi + 1] >= floor:
        hi += 1
    weight = score[lo:hi + 1] - floor
    at = np.asarray(positions, np.float64)
    centre = float(np.sum(weight * at[lo:hi + 1]) / weight.sum()) if weight.sum() > 0 else float(at[best])
    return int(np.argmin(np.abs(at - centre)))


__all__ = ["PEAK_LEVEL", "peak_centre", "slice_evidence"]
