"""The landmark decoder: raw network outputs -> every method's landmarks in the original images' pixels.

One codec owns the decode end to end (the method names, the fusion prior, the rescaling from heatmap to original
pixels and the confidence), so the evaluate stage, the report, `LandmarkPredictor` and `lmfusion predict` give the
same coordinates for the same outputs. Pure numpy: reading cached outputs needs no torch.

Legend: N images, K landmarks, H x W heatmap pixels. Raw outputs are the regressor's normalized coordinates
(N, K, 2) in 0..1 and the U-Net's probabilities (N, K, H, W); sizes are the original (width, height) per image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmfusion import fusion
from lmfusion import heatmaps as hmc
from lmfusion.coords import from_norm, rescale
from lmfusion.errors import DataError

METHODS = ("direct", "argmax", "argmax_subpixel", "fused", "fused_subpixel")


@dataclass(frozen=True)
class Decoded:
    """Every method's landmarks in original pixels, (N, K, 2) each, with the fused peak diagnostics."""

    xy: dict[str, np.ndarray]
    confidence: np.ndarray  # (N, K) U-Net probability at the fused point
    fallback: np.ndarray  # (N, K) True where the fused product was ~0 and the regressed point was kept


@dataclass(frozen=True)
class HeatmapDecoded:
    """Every method's landmarks in heatmap pixels, (N, K, 2) each."""

    xy: dict[str, np.ndarray]
    fallback: np.ndarray  # (N, K) bool

    @property
    def fallbacks(self) -> int:
        return int(self.fallback.sum())


@dataclass(frozen=True)
class LandmarkDecoder:
    """Decodes raw outputs with one fusion setting.

    Args:
        sigma_hm: (K,) fusion prior sigma in heatmap pixels (inf: plain argmax, 0: the regressed point).
        min_product: below this peak of prior x heatmap the regressed point is kept (a fallback).
    """

    sigma_hm: np.ndarray
    min_product: float

    def decode(self, coords_norm: np.ndarray, heatmaps: np.ndarray, sizes: np.ndarray) -> Decoded:
        """Every method's landmarks in the original images' pixels.

        Args:
            coords_norm: (N, K, 2) regressor outputs, 0..1.
            heatmaps: (N, K, H, W) U-Net probabilities.
            sizes: (N, 2) original (width, height).
        """
        heatmaps = np.asarray(heatmaps)
        n, k, h, w = _check_4d(heatmaps).shape
        hm_decoded = self.decode_hm(heatmaps, from_norm(coords_norm, w, h))
        xy_hm = hm_decoded.xy
        src = (np.float64(w), np.float64(h))
        dst = (sizes[:, None, 0], sizes[:, None, 1])
        xy = {m: rescale(xy_hm[m], src, dst) for m in METHODS}
        fused_px = np.clip(np.rint(xy_hm["fused"]), 0, [w - 1, h - 1]).astype(np.int64)  # (N, K, 2)
        confidence = heatmaps[np.arange(n)[:, None], np.arange(k)[None, :], fused_px[..., 1], fused_px[..., 0]]
        return Decoded(xy=xy, confidence=confidence.astype(np.float64), fallback=hm_decoded.fallback)

    def decode_hm(self, heatmaps: np.ndarray, xy_reg_hm: np.ndarray) -> HeatmapDecoded:
        """Every method in heatmap pixels, chunk by chunk (bounded memory for any N).

        Args:
            heatmaps: (N, K, H, W) probabilities.
            xy_reg_hm: (N, K, 2) regressed landmarks in heatmap pixels.
        """
        heatmaps = _check_4d(np.asarray(heatmaps))
        xy_reg_hm = np.asarray(xy_reg_hm, dtype=np.float64)
        k = fusion.check_shapes(heatmaps, xy_reg_hm)
        sigma = fusion.sigma_vector(self.sigma_hm, k)
        n = len(xy_reg_hm)
        xy = {m: np.empty((n, k, 2)) for m in METHODS}
        xy["direct"] = xy_reg_hm.copy()
        fallback = np.zeros((n, k), bool)
        for sl, hm, xr in fusion.chunks(heatmaps, xy_reg_hm):
            xy["argmax"][sl], _ = hmc.argmax(hm)
            xy["argmax_subpixel"][sl] = hmc.refine(hm, xy["argmax"][sl])
            out = fusion.decode_chunk(hm, xr, sigma, self.min_product, subpixel=True)
            xy["fused"][sl], xy["fused_subpixel"][sl] = out["xy"], out["xy_sub"]
            fallback[sl] = out["fallback"]
        return HeatmapDecoded(xy=xy, fallback=fallback)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: an infinite sigma (plain argmax) is written "inf"."""
        return {"sigma_hm": sigma_to_json(self.sigma_hm), "min_product": self.min_product}

    @classmethod
    def load(cls, path: str | os.PathLike) -> LandmarkDecoder:
        """The decoder the evaluate stage fitted (models/fusion.json)."""
        raw = json.loads(Path(path).read_text())
        return cls(sigma_hm=np.asarray([float(s) for s in raw["sigma_hm"]], dtype=np.float64),
                   min_product=float(raw["min_product"]))


def _check_4d(heatmaps: np.ndarray) -> np.ndarray:
    if heatmaps.ndim != 4:
        raise DataError(f"expected heatmaps of shape (N, K, H, W), got {heatmaps.shape}")
    return heatmaps


def sigma_to_json(sigma_hm: np.ndarray) -> list:
    """(K,) sigmas as strict JSON: an infinite sigma (plain argmax) is written "inf"."""
    return [float(s) if np.isfinite(s) else "inf" for s in sigma_hm]
