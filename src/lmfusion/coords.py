"""Coordinate conventions shared by every module.

Landmarks are (K, 2) arrays of (x, y) = (column, row) with pixel centres at integer coordinates. A name ending in
`_norm` is in 0..1 of the image's width and height (the pixel edges, so a point keeps its anatomy under resizing:
x_norm = (x + 0.5) / W); `_hm` is in heatmap pixels. Distances in mm use the original image's spacing per axis.
"""

from __future__ import annotations

import numpy as np


def _size(width: float | np.ndarray, height: float | np.ndarray) -> np.ndarray:
    """(..., 2) sizes; arrays of widths and heights (e.g. (N, 1) per image) broadcast against (N, K, 2) points."""
    return np.stack(np.broadcast_arrays(np.asarray(width, np.float64), np.asarray(height, np.float64)), axis=-1)


def to_norm(xy: np.ndarray, width: float | np.ndarray, height: float | np.ndarray) -> np.ndarray:
    """Pixel coordinates (..., 2) of an image of `width` x `height` to 0..1 normalized coordinates."""
    xy = np.asarray(xy, dtype=np.float64)
    return (xy + 0.5) / _size(width, height)


def from_norm(xy_norm: np.ndarray, width: float | np.ndarray, height: float | np.ndarray) -> np.ndarray:
    """0..1 normalized coordinates (..., 2) to pixel coordinates of an image of `width` x `height`."""
    xy_norm = np.asarray(xy_norm, dtype=np.float64)
    return xy_norm * _size(width, height) - 0.5


def rescale(xy: np.ndarray, src_size: tuple[float, float], dst_size: tuple[float, float]) -> np.ndarray:
    """Pixel coordinates in an image of (W, H) `src_size` to the same anatomy after resizing to `dst_size`."""
    return from_norm(to_norm(xy, *src_size), *dst_size)


def radial_mm(pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Euclidean error in mm between (..., K, 2) pixel coordinates, with (..., 2) spacing (mm per px in x, y)."""
    spacing = np.asarray(spacing, dtype=np.float64)[..., None, :]  # (..., 1, 2)
    d = (np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)) * spacing
    return np.sqrt((d**2).sum(-1))
