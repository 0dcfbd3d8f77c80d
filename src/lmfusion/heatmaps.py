"""Heatmap codec: encode landmarks as Gaussian targets, decode heatmaps back to landmarks.

Legend: N images, K landmarks, H x W heatmap pixels. Coordinates are (x, y) in heatmap pixels (`_hm`).
Pure numpy; every function accepts any number of leading batch dimensions.
"""

from __future__ import annotations

import numpy as np


def encode(xy_hm: np.ndarray, height: int, width: int, sigma: float, dtype: type = np.float32) -> np.ndarray:
    """Gaussian targets with peak 1 at each landmark.

    Args:
        xy_hm: (..., K, 2) landmark positions in heatmap pixels; a NaN landmark gives an all-zero map.
        height, width: heatmap size.
        sigma: standard deviation in heatmap pixels.
    Returns:
        (..., K, H, W) heatmaps. A landmark outside the map keeps its (truncated) Gaussian tail.
    """
    xy_hm = np.asarray(xy_hm, dtype=np.float64)
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    gx = np.exp(-((xs - xy_hm[..., 0:1]) ** 2) / (2 * sigma**2))  # (..., K, W)
    gy = np.exp(-((ys - xy_hm[..., 1:2]) ** 2) / (2 * sigma**2))  # (..., K, H)
    out = gy[..., :, None] * gx[..., None, :]  # (..., K, H, W)
    return np.nan_to_num(out, nan=0.0).astype(dtype)


def argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer peak position and value of each map.

    Args:
        heatmaps: (..., H, W).
    Returns:
        xy (..., 2) float64 integer-valued coordinates, scores (...,) the peak values.
    """
    heatmaps = np.asarray(heatmaps)
    h, w = heatmaps.shape[-2:]
    flat = heatmaps.reshape(*heatmaps.shape[:-2], h * w)
    idx = flat.argmax(-1)
    scores = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    xy = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    return xy, scores.astype(np.float64)


def refine(heatmaps: np.ndarray, xy: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Sub-pixel refinement of integer peaks by a parabola through the log of the peak and its two neighbours, per
    axis (exact for a Gaussian peak). Peaks on the border and non-peaks keep their integer position.

    Args:
        heatmaps: (..., H, W) non-negative maps (probabilities, not logits).
        xy: (..., 2) integer peak positions from `argmax`.
    Returns:
        (..., 2) refined positions, each moved by at most half a pixel per axis.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    h, w = heatmaps.shape[-2:]
    flat = heatmaps.reshape(-1, h, w)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy()
    ix = pts[:, 0].astype(np.int64)
    iy = pts[:, 1].astype(np.int64)
    n = np.arange(len(flat))
    for axis in (0, 1):
        inner = (ix > 0) & (ix < w - 1) if axis == 0 else (iy > 0) & (iy < h - 1)
        lo_x, hi_x = (np.clip(ix - 1, 0, w - 1), np.clip(ix + 1, 0, w - 1)) if axis == 0 else (ix, ix)
        lo_y, hi_y = (iy, iy) if axis == 0 else (np.clip(iy - 1, 0, h - 1), np.clip(iy + 1, 0, h - 1))
        c = np.log(np.maximum(flat[n, iy, ix], eps))
        lo = np.log(np.maximum(flat[n, lo_y, lo_x], eps))
        hi = np.log(np.maximum(flat[n, hi_y, hi_x], eps))
        curvature = lo - 2 * c + hi
        ok = inner & (curvature < 0) & (c >= lo) & (c >= hi)
        offset = np.where(ok, 0.5 * (lo - hi) / np.where(ok, curvature, -1.0), 0.0)
        pts[:, axis] += np.clip(offset, -0.5, 0.5)
    return pts.reshape(np.shape(xy))


def decode(heatmaps: np.ndarray, subpixel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks from heatmaps: argmax, optionally refined to sub-pixel. Returns xy (..., 2) and scores (...)."""
    xy, scores = argmax(heatmaps)
    if subpixel:
        xy = refine(heatmaps, xy)
    return xy, scores
