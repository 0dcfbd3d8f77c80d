"""Drawing primitives with OpenCV: role colours, points on images, montages, PNG writing. Images are BGR uint8."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from lmfusion.io import atomic_path

# BGR colours per role, used by every figure so a colour means the same thing everywhere; a decode method's colour
# is its row's in lmfusion.decoding.methods (bgr() converts it)
COLORS = {
    "truth": (80, 220, 80),
    "disc": (60, 60, 255),
    "body": (80, 220, 80),
}


def bgr(colour: str) -> tuple[int, int, int]:
    """An "#rrggbb" colour as OpenCV's (blue, green, red)."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return b, g, r


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A grayscale image of any dtype, scaled to 0..255, as 3-channel uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        lo, hi = np.percentile(image, [0.5, 99.5]) if image.size else (0, 1)
        image = np.clip((image.astype(np.float32) - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()


def draw_points(
    image_bgr: np.ndarray,
    xy: np.ndarray,
    color: tuple[int, int, int] | Sequence[tuple[int, int, int]],
    radius: int | None = None,
    marker: str = "circle",
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Draw (K, 2) points in place (NaN points are skipped) and return the image; one colour or one per point."""
    h, w = image_bgr.shape[:2]
    radius = radius or max(2, round(min(h, w) / 120))
    colors = [color] * len(xy) if isinstance(color[0], (int, np.integer)) else list(color)
    for k, ((x, y), c) in enumerate(zip(np.asarray(xy, dtype=np.float64), colors)):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        p = (int(round(x)), int(round(y)))
        if marker == "cross":
            cv2.drawMarker(image_bgr, p, c, cv2.MARKER_CROSS, 3 * radius, max(1, radius // 2), cv2.LINE_AA)
        else:
            cv2.circle(image_bgr, p, radius, c, -1, cv2.LINE_AA)
        if labels is not None:
            cv2.putText(image_bgr, labels[k], (p[0] + 2 * radius, p[1] + radius), cv2.FONT_HERSHEY_SIMPLEX,
                        0.3 * radius / 2, c, 1, cv2.LINE_AA)
    return image_bgr


def landmark_colors(names: Sequence[str]) -> list[tuple[int, int, int]]:
    """Disc centres (names with '-') in red, vertebral body centres in green."""
    return [COLORS["disc"] if "-" in n else COLORS["body"] for n in names]


def montage(tiles: Sequence[np.ndarray], cols: int, tile: int = 256, captions: Sequence[str] | None = None) -> np.ndarray:
    """Resize BGR tiles to tile x tile and lay them out in a grid with optional captions."""
    rows = (len(tiles) + cols - 1) // cols
    out = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = cv2.resize(t, (tile, tile),
                                                                           interpolation=cv2.INTER_AREA)
        if captions is not None:
            cv2.putText(out, captions[i], (c * tile + 4, r * tile + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_png(path: str | os.PathLike, image_bgr: np.ndarray) -> None:
    """Write a PNG atomically."""
    with atomic_path(Path(path)) as tmp:
        ok, buf = cv2.imencode(".png", image_bgr)
        if not ok:
            raise OSError(f"could not encode {path}")
        tmp.write_bytes(buf.tobytes())
