"""The heatmaps stage's preview: a study's Gaussian targets as one colour overlay, whole and zoomed on the spine.

Legend: K landmarks, S U-Net input side (the targets' grid).
"""

from __future__ import annotations

import cv2
import numpy as np

from lmfusion.coords import rescale
from lmfusion.figures.drawing import draw_points, landmark_colors, to_bgr

PREVIEW_SIZE = 512  # side of each panel


def _overlay(image_u8: np.ndarray, heat: np.ndarray, xy: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Heat (H, W) in 0..1 through a colour map, blended onto the image (H, W), landmarks (K, 2) as crosses."""
    img = to_bgr(image_u8).astype(np.float32)
    heat = np.clip(heat, 0.0, 1.0)
    color = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_TURBO).astype(np.float32)
    alpha = 0.8 * np.sqrt(heat)[..., None]  # the square root keeps the Gaussian tails visible
    out = np.clip(img * (1 - alpha) + color * alpha, 0, 255).astype(np.uint8)
    return draw_points(out, xy, landmark_colors(names), radius=3, marker="cross")


def targets_preview(image_u8: np.ndarray, heatmaps: np.ndarray, xy_hm: np.ndarray,
                    names: tuple[str, ...]) -> np.ndarray:
    """All K heatmaps (K, S, S) as one colour overlay (max over K) on the image (S, S), landmarks (K, 2) on top:
    the whole image, and beside it a zoom on the landmarks so that each Gaussian is several pixels wide."""
    s = image_u8.shape[-1]
    heat = np.asarray(heatmaps, np.float32).max(0)  # (S, S)
    full = cv2.resize(image_u8, (PREVIEW_SIZE, PREVIEW_SIZE), interpolation=cv2.INTER_LINEAR)
    panels = [_overlay(full, cv2.resize(heat, (PREVIEW_SIZE, PREVIEW_SIZE), interpolation=cv2.INTER_LINEAR),
                       rescale(xy_hm, (s, s), (PREVIEW_SIZE, PREVIEW_SIZE)), names)]
    finite = xy_hm[np.isfinite(xy_hm).all(-1)]
    if len(finite):
        centre = finite.mean(0)
        half = max(8.0, 0.6 * float((finite.max(0) - finite.min(0)).max()))  # a square around all landmarks
        x0, y0 = centre - half
        scale = PREVIEW_SIZE / (2 * half)
        warp = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)  # crop and zoom
        zoom = [cv2.warpAffine(a, warp, (PREVIEW_SIZE, PREVIEW_SIZE), flags=cv2.INTER_LINEAR) for a in
                (image_u8, heat)]
        panels.append(_overlay(zoom[0], zoom[1], (xy_hm - [x0, y0]) * scale, names))
    return np.concatenate(panels, axis=1)
