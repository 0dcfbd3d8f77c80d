"""`lmfusion predict`'s overlay: one image with its predicted landmarks, coloured and named. Legend: K landmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lmfusion.figures.drawing import draw_points, landmark_colors, to_bgr

if TYPE_CHECKING:
    from lmfusion.api import Prediction


def prediction_overlay(pixels: np.ndarray, prediction: Prediction) -> np.ndarray:
    """The image (H, W) of any dtype as BGR uint8 with the prediction's landmarks (K, 2), each labelled by name."""
    img = to_bgr(pixels)
    return draw_points(img, prediction.xy, landmark_colors(prediction.names), labels=list(prediction.names))
