"""One split's raw network outputs with its ground truth: what the decoder is fitted on and evaluated with.

It lives with the decoder so that the fit (lmfusion.decoding.fit) needs nothing above the decoding room; reading it
from the infer stage's files is `lmfusion.evaluation.load_split`.

Legend: N images, K landmarks, H x W heatmap pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmfusion.coords import from_norm, rescale


@dataclass(frozen=True)
class SplitOutputs:
    """Cached outputs of the infer stage for one split, with the matching ground truth."""

    rows: np.ndarray  # (N,) indices into the prepared data
    coords_norm: np.ndarray  # (N, K, 2)
    heatmaps: np.ndarray  # (N, K, H, W) float16 probabilities
    truth: np.ndarray  # (N, K, 2) original pixels
    sizes: np.ndarray  # (N, 2) original (width, height)
    spacing: np.ndarray  # (N, 2) mm per original pixel
    anchor: np.ndarray | None = None  # (N, H, W) the U-Net's sacrum map, where it was trained with one

    @property
    def hm_shape(self) -> tuple[int, int]:
        return self.heatmaps.shape[-2], self.heatmaps.shape[-1]

    def truth_hm(self) -> np.ndarray:
        """(N, K, 2) ground truth in heatmap pixels."""
        h, w = self.hm_shape
        return rescale(self.truth, (self.sizes[:, None, 0], self.sizes[:, None, 1]), (w, h))

    def regressed_hm(self) -> np.ndarray:
        h, w = self.hm_shape
        return from_norm(self.coords_norm, w, h)

    def mm_per_hm_px(self) -> np.ndarray:
        """(N, 2) mm per heatmap pixel in x and y."""
        h, w = self.hm_shape
        return self.spacing * self.sizes / np.array([w, h], dtype=np.float64)
