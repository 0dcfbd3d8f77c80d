"""`lmfusion predict`'s overlay: one image with its predicted landmarks, coloured and named, and for a study the
evidence of every slice tried beneath it. Legend: K landmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from lmfusion.figures.drawing import COLORS, draw_points, landmark_colors, to_bgr

if TYPE_CHECKING:
    from lmfusion.api import Prediction


def prediction_overlay(pixels: np.ndarray, prediction: Prediction) -> np.ndarray:
    """The image (H, W) of any dtype as BGR uint8 with the prediction's landmarks (K, 2), each labelled by name."""
    img = to_bgr(pixels)
    return draw_points(img, prediction.xy, landmark_colors(prediction.names), labels=list(prediction.names))


def slice_choice_strip(width: int, choice: dict) -> np.ndarray:
    """A strip (about width / 5 high) to put under a study's overlay: one bar per slice tried, as high as its evidence,
    the chosen slice's in the truth colour, the middle slice's outlined, and a caption; `choice` is the record's
    `slice_choice` (lmfusion.cli.study)."""
    tried = choice["tried"]
    height = max(48, width // 5)
    strip = np.full((height, width, 3), 24, np.uint8)
    scale = max(height / 120, 0.35)
    caption = (f"slice {choice['chosen_instance']} by {choice['rule']} (middle {choice['middle_instance']}), "
               f"{len(tried)} tried")
    cv2.putText(strip, caption, (4, int(14 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (230, 230, 230), 1,
                cv2.LINE_AA)
    top, bottom = int(20 * scale) + 6, height - 4
    scores = [t["score"] if t["score"] is not None else 0.0 for t in tried]
    best = max(max(scores), 1e-6)
    step = width / max(len(tried), 1)
    for k, (t, s) in enumerate(zip(tried, scores)):
        x0, x1 = int(k * step + 0.15 * step), int((k + 1) * step - 0.15 * step)
        y = int(bottom - (bottom - top) * s / best)
        chosen = t["instance_number"] == choice["chosen_instance"]
        cv2.rectangle(strip, (x0, y), (x1, bottom), COLORS["truth"] if chosen else (150, 150, 150), -1)
        if t["instance_number"] == choice["middle_instance"]:
            cv2.rectangle(strip, (x0, top), (x1, bottom), (230, 230, 230), 1)
    return strip
