"""A montage of a dataset in the RSNA 2024 layout, read back by its reader (synthetic or real): each study's labelled
slice with its discs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmfusion.data.readers.rsna2024 import DISCS, read_rsna2024
from lmfusion.errors import DataError
from lmfusion.figures.drawing import draw_points, landmark_colors, montage, to_bgr


def rsna2024_montage(out: Path, count: int = 16, names: tuple[str, ...] = DISCS) -> np.ndarray:
    """A BGR montage of the first `count` studies' labelled slices with their discs, read back by the reader."""
    studies, _ = read_rsna2024(out, names, "skip")
    if not studies:
        raise DataError(f"{out}: no readable study in the rsna2024 layout")
    colors = landmark_colors(names)
    tiles = [draw_points(to_bgr(s.pixels), s.landmarks, colors) for s in studies[:count]]
    captions = [f"{s.study} {s.pixels.shape[1]}x{s.pixels.shape[0]} {s.spacing[0]:.2f}mm" for s in studies[:count]]
    return montage(tiles, cols=int(np.ceil(np.sqrt(len(tiles)))), tile=320, captions=captions)
