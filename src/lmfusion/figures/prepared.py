"""The prepare stage's montage: prepared U-Net inputs with their landmarks, the hardest fields of view first.

Legend: N studies, K landmarks, S U-Net input side.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from lmfusion.coords import rescale
from lmfusion.figures.drawing import draw_points, landmark_colors, montage, to_bgr

MONTAGE_COUNT = 16
MONTAGE_TILE = 256


def montage_picks(index: pd.DataFrame, names: tuple[str, ...], turn: np.ndarray | None) -> list[tuple[int, str]]:
    """(row, why) for the montage: the hardest fields of view first (the steepest lumbosacral junctions, the spine
    smallest in its image, lowest (sacrum cut), highest, the largest and a non-square matrix), then the first
    studies, MONTAGE_COUNT in all."""
    ys = index[[f"{n}_y" for n in names]].to_numpy(np.float64) / index["height"].to_numpy(np.float64)[:, None]
    span, bottom = np.nanmax(ys, 1) - np.nanmin(ys, 1), np.nanmax(ys, 1)  # fractions of the image height
    size = index[["width", "height"]].to_numpy()
    candidates = [(np.argsort(-turn, kind="stable")[:2] if turn is not None else [], "steep junction"),
                  ([np.nanargmin(span)], "small spine"), ([np.nanargmax(bottom)], "lowest"),
                  ([np.nanargmin(bottom)], "highest"), ([int(np.argmax(size.max(1)))], "largest matrix"),
                  (np.flatnonzero(size[:, 0] != size[:, 1])[:1], "non-square")]
    picks: dict[int, str] = {}
    for rows, why in candidates:
        for i in rows:
            picks.setdefault(int(i), why + (f" {turn[i]:.0f} deg" if why == "steep junction" else ""))
    for i in range(len(index)):
        if len(picks) >= MONTAGE_COUNT:
            break
        picks.setdefault(i, "")
    return list(picks.items())[:MONTAGE_COUNT]


def prepared_montage(index: pd.DataFrame, unet: np.ndarray, names: tuple[str, ...],
                     turn: np.ndarray | None = None) -> np.ndarray:
    """U-Net inputs (N, S, S) with their landmarks, as one BGR grid: the hard cases (montage_picks), then the first
    studies. `index` is the prepared index (lmfusion.data.prepared), `turn` (N,) the lumbosacral turn in degrees."""
    colors = landmark_colors(names)
    tiles, captions = [], []
    for i, why in montage_picks(index, names, turn):
        row = index.iloc[i]
        xy = np.array([[row[f"{n}_x"], row[f"{n}_y"]] for n in names], np.float64)  # (K, 2)
        xy = rescale(xy, (row["width"], row["height"]), (MONTAGE_TILE, MONTAGE_TILE))
        tile = cv2.resize(unet[i], (MONTAGE_TILE, MONTAGE_TILE), interpolation=cv2.INTER_LINEAR)
        tiles.append(draw_points(to_bgr(tile), xy, colors))
        captions.append(f"{row['study']} ({row['split']}" + (f", {why})" if why else ")"))
    return montage(tiles, cols=int(np.ceil(np.sqrt(len(tiles)))), tile=MONTAGE_TILE, captions=captions)
