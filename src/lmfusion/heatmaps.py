"""Heatmap encoding: landmarks as the U-Net's Gaussian training targets (decoding is `lmfusion.decoding`).

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
