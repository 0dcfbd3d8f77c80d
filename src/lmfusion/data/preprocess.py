"""Image preprocessing shared by the prepare stage and prediction on new images: window -> equalize -> resize.

Legend: H x W original image, S the network's square input side. Everything is pure numpy / OpenCV on 2-D arrays.
Landmarks are not touched here: they follow the square resize through `coords.rescale` or `coords.to_norm`.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from lmfusion.config import PrepareConfig
from lmfusion.errors import DataError, ParamError


def window_to_uint8(pixels: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Map the robust intensity range (two percentiles of the finite pixels) onto 0..255.

    A constant image (or one without finite pixels) gives zeros; NaN pixels become 0.
    """
    pixels = np.asarray(pixels, dtype=np.float32)  # (H, W)
    finite = np.isfinite(pixels)
    if not finite.any():
        return np.zeros(pixels.shape, np.uint8)
    lo, hi = np.percentile(pixels[finite], percentiles)
    if not hi > lo:
        return np.zeros(pixels.shape, np.uint8)
    scaled = (np.where(finite, pixels, lo) - lo) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def equalize(img_u8: np.ndarray, method: str = "hist", clahe_clip: float = 2.0, clahe_grid: int = 8) -> np.ndarray:
    """Histogram equalization ('hist', the paper's), contrast-limited adaptive ('clahe') or none."""
    img_u8 = np.ascontiguousarray(img_u8, dtype=np.uint8)  # (H, W)
    if method == "hist":
        return cv2.equalizeHist(img_u8)
    if method == "clahe":
        return cv2.createCLAHE(clipLimit=float(clahe_clip), tileGridSize=(int(clahe_grid), int(clahe_grid))).apply(
            img_u8)
    if method == "none":
        return img_u8.copy()
    raise ParamError(f"param prepare.equalize: must be 'hist', 'clahe' or 'none', got {method!r}")


def resize_square(img_u8: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size (the aspect ratio is not kept, as in the paper): area averaging when shrinking both
    axes (no aliasing), bilinear otherwise."""
    h, w = img_u8.shape[:2]
    interpolation = cv2.INTER_AREA if size <= h and size <= w else cv2.INTER_LINEAR
    return cv2.resize(img_u8, (int(size), int(size)), interpolation=interpolation)  # (S, S)


def preprocess_sizes(pixels: np.ndarray, sizes: Sequence[int], cfg: PrepareConfig) -> tuple[np.ndarray, ...]:
    """`preprocess` at several sizes, windowing and equalizing once (at the original resolution)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise DataError(f"expected a 2-D grayscale image, got shape {pixels.shape}")
    img = equalize(window_to_uint8(pixels, cfg.window), cfg.equalize, cfg.clahe_clip, cfg.clahe_grid)  # (H, W)
    return tuple(resize_square(img, s) for s in sizes)


def preprocess(pixels: np.ndarray, size: int, cfg: PrepareConfig) -> np.ndarray:
    """An image of any dtype (H, W) to the network input (size, size) uint8: window, equalize, resize."""
    return preprocess_sizes(pixels, (size,), cfg)[0]


__all__ = ["window_to_uint8", "equalize", "resize_square", "preprocess", "preprocess_sizes"]
