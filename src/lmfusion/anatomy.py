"""Measurements of the spine's shape from its landmarks: how hard a study's level naming is.

Legend: N studies, K landmarks; (x, y) in the images' own pixels with (N, 2) spacing in mm per pixel.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

TURN_POINTS = ("L1", "L3", "L5", "L5-S1")  # body centres, and the lumbosacral disc centre


def sacrum_anchor(xy: np.ndarray, names: Sequence[str]) -> np.ndarray | None:
    """(N, 2) the chain continued one step below its last landmark, extrapolated from the annotated ones (no new
    labels): the last step taken once more, turned by as much as the chain turned over its last two steps, so it
    follows a steep junction round. For the 11 landmarks (..., L4-L5, L5, L5-S1) it is the S1 body, where the count
    of the levels starts. `xy` (N, K, 2) top to bottom, in any units in which x and y have one scale. None when
    there are fewer than 3 landmarks.
    """
    if len(names) < 3:
        return None
    a, b, c = (np.asarray(xy, np.float64)[:, k] for k in (-3, -2, -1))
    before, step = b - a, c - b  # (N, 2)
    turn = np.arctan2(step[:, 1], step[:, 0]) - np.arctan2(before[:, 1], before[:, 0])
    cos, sin = np.cos(turn), np.sin(turn)
    return c + np.stack([cos * step[:, 0] - sin * step[:, 1], sin * step[:, 0] + cos * step[:, 1]], 1)


def lumbosacral_turn_deg(xy: np.ndarray, spacing: np.ndarray, names: Sequence[str]) -> np.ndarray | None:
    """(N,) the lumbosacral turn: the angle (degrees) between the directions L1 -> L3 and L5 -> L5-S1 in mm.

    A steep junction (strong lordosis, a sacrum sloping backwards) turns far: there the last disc is the one most
    often missed and a whole chain shifted by a level. None when `names` lacks one of TURN_POINTS.
    """
    if not set(TURN_POINTS) <= set(names):
        return None
    idx = [list(names).index(n) for n in TURN_POINTS]
    p = np.asarray(xy, np.float64)[:, idx] * np.asarray(spacing, np.float64)[:, None]  # (N, 4, 2) mm
    upper, lower = p[:, 1] - p[:, 0], p[:, 3] - p[:, 2]  # (N, 2)
    cos = (upper * lower).sum(-1) / (np.linalg.norm(upper, axis=-1) * np.linalg.norm(lower, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
