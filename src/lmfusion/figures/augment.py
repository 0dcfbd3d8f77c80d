"""The training stages' augmentation preview: augmented samples with their moved landmarks, as one montage.

Legend: N images, K landmarks, S image side.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from lmfusion.config import AugmentConfig
from lmfusion.coords import rescale
from lmfusion.data.augment import augment
from lmfusion.figures.drawing import draw_points, landmark_colors, montage, to_bgr


def augmentation_preview(images: np.ndarray, landmarks: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
                         n: int = 8, names: Sequence[str] | None = None, tile: int = 256) -> np.ndarray:
    """A BGR montage of `n` augmented samples with their moved landmarks.

    Args:
        images: (N, S, S) uint8; samples are taken in turn from the first images.
        landmarks: (N, K, 2) pixel coordinates in those images.
        names: landmark names (colours discs and bodies apart); None draws all in one colour.
    """
    tiles, captions = [], []
    s = images.shape[-1]
    for j in range(n):
        i = j % len(images)
        img, xy, fell_back = augment(images[i], landmarks[i], cfg, rng)
        colors = landmark_colors(names) if names is not None else (60, 60, 255)
        tiles.append(draw_points(to_bgr(cv2.resize(img, (tile, tile), interpolation=cv2.INTER_LINEAR)),
                                 rescale(xy, (s, s), (tile, tile)), colors))
        captions.append(f"image {i}" + (" (identity)" if fell_back else ""))
    return montage(tiles, cols=min(4, n), tile=tile, captions=captions)
