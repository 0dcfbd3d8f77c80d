"""Plain image files (PNG, JPEG, TIFF) as grayscale pixels."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from lmfusion.errors import DataError


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A PNG, JPEG or TIFF image, 8 or 16 bit grayscale, as (H, W) float32; colour with equal channels is gray."""
    path = Path(path)
    try:
        img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError, cv2.error) as e:
        raise DataError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    if img is None or img.size == 0:
        raise DataError(f"{path}: not a readable image")
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: pixel type {img.dtype} is not supported (8 or 16 bit grayscale)")
    if img.ndim == 2:
        return img.astype(np.float32)
    color = img[..., :3].astype(np.float32)  # (H, W, C) without alpha
    spread = float((color.max(-1) - color.min(-1)).max())
    tolerance = 2 if path.suffix.lower() in (".jpg", ".jpeg") else 0  # lossy chroma of a gray picture
    if spread > tolerance:
        raise DataError(f"{path}: a colour image (channels differ by up to {spread:g}); expected grayscale")
    return color.mean(-1)
