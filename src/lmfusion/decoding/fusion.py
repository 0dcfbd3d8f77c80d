"""Fusion of the two networks (the paper's method): the regressed coordinate becomes a Gaussian prior, multiplied
with the U-Net heatmap; the product's argmax is the fused landmark.

Legend: N images, K landmarks, H x W heatmap pixels. Coordinates are (x, y) in heatmap pixels (`_hm`); heatmaps are
U-Net probabilities in 0..1. The prior's sigma (heatmap pixels, one per landmark or one for all) has two special
values: `np.inf` is a flat prior (plain heatmap argmax) and `0` keeps the regressed coordinate (direct regression).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lmfusion import heatmaps as hmc
from lmfusion.decoding import peaks
from lmfusion.errors import DataError, ParamError


@dataclass(frozen=True)
class FusionResult:
    xy_hm: np.ndarray  # (..., K, 2) fused landmarks
    score: np.ndarray  # (..., K) peak of prior x heatmap
    fallback: np.ndarray  # (..., K) True where the peak was below min_product and the regressed point was kept


def sigma_vector(sigma: float | Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """(K,) float64 sigma; rejects negative or NaN values and a length that is not K (the one check of a sigma)."""
    s = np.asarray(sigma, dtype=np.float64)
    if s.ndim == 0:
        s = np.full(k, float(s))
    if s.shape != (k,):
        raise ParamError(f"fusion.sigma: expected one value or {k} (one per landmark), got shape {s.shape}")
    if np.any(np.isnan(s)) or np.any(s < 0):
        raise ParamError(f"fusion.sigma: must be >= 0 (0 = direct, inf = argmax), got {s.tolist()}")
    return s


def prior(xy_hm: np.ndarray, height: int, width: int, sigma: float | np.ndarray) -> np.ndarray:
    """Gaussian priors with peak 1 around the regressed coordinates.

    Args:
        xy_hm: (..., K, 2) regressed landmarks in heatmap pixels.
        sigma: one value or (K,) per landmark; inf gives a flat map of ones, 0 a single 1 at the nearest pixel.
    Returns:
        (..., K, H, W) float32.
    """
    xy_hm = np.asarray(xy_hm, dtype=np.float64)
    s = sigma_vector(sigma, xy_hm.shape[-2])
    # encode's arithmetic broadcasts a (K, 1) sigma against its (..., K, W) and (..., K, H) profiles
    out = hmc.encode(xy_hm, height, width, np.where(s > 0, s, 1.0)[:, None])  # (..., K, H, W)
    if np.any(s == 0):
        out[..., s == 0, :, :] = 0.0
        flat = out.reshape(-1, *out.shape[-3:])  # (M, K, H, W), a view
        pts = xy_hm.reshape(-1, *xy_hm.shape[-2:])  # (M, K, 2)
        for m, kk in np.argwhere(np.broadcast_to(s == 0, pts.shape[:2])):
            x, y = pts[m, kk]
            if np.isfinite(x) and np.isfinite(y) and -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5:
                flat[m, kk, int(np.rint(y)), int(np.rint(x))] = 1.0
    return out


def fuse_chunk(hm: np.ndarray, xy_reg: np.ndarray, s: np.ndarray, min_product: float, subpixel: bool
               ) -> dict[str, np.ndarray]:
    """Fused decoding of one chunk: hm (M, K, H, W) float32, xy_reg (M, K, 2), s (K,) checked sigma.

    Returns {"xy", "xy_sub" (the product's peak refined to sub-pixel; xy without `subpixel`), "score", "fallback"},
    each (M, K, ...).
    """
    m, k, h, w = hm.shape
    direct = s == 0  # (K,)
    # inf (and the unused 0) sigma give a prior of exactly 1, so those products equal the heatmap bit for bit
    product = hm * prior(xy_reg, h, w, np.where(direct, np.inf, s))  # (M, K, H, W)
    xy, score = peaks.argmax(product)  # (M, K, 2), (M, K)
    xy_sub = peaks.refine(product, xy) if subpixel else xy
    fallback = np.isfinite(s) & ~direct & (score < min_product)  # (M, K)
    keep_reg = fallback | direct
    score = np.where(direct, peaks.values_at(hm, xy_reg), score)
    xy = np.where(keep_reg[..., None], xy_reg, xy)
    xy_sub = np.where(keep_reg[..., None], xy_reg, xy_sub)
    return {"xy": xy, "xy_sub": xy_sub, "score": score, "fallback": fallback}


def check_shapes(heatmaps: np.ndarray, xy_reg_hm: np.ndarray) -> int:
    """K, after checking that (..., K, H, W) heatmaps and (..., K, 2) coordinates match."""
    if heatmaps.ndim < 3 or heatmaps.shape[:-2] != xy_reg_hm.shape[:-1] or xy_reg_hm.shape[-1:] != (2,):
        raise DataError(f"heatmaps {heatmaps.shape} and regressed coordinates {xy_reg_hm.shape} do not match: "
                        "expected (..., K, H, W) and (..., K, 2)")
    return heatmaps.shape[-3]


def fuse(heatmaps: np.ndarray, xy_reg_hm: np.ndarray, sigma: float | np.ndarray, min_product: float,
         subpixel: bool = False) -> FusionResult:
    """Fused landmarks: argmax of prior(xy_reg_hm, sigma) x heatmaps.

    Args:
        heatmaps: (..., K, H, W) probabilities, float16 or float32.
        xy_reg_hm: (..., K, 2) regressed landmarks in heatmap pixels.
        sigma: prior sigma in heatmap pixels, one value or (K,); inf = plain argmax, 0 = the regressed coordinate.
        min_product: below this peak of the product the prior misses all heatmap mass: keep the regressed point.
        subpixel: refine the product's peak with a log-parabola (exact for a Gaussian peak).
    """
    heatmaps = np.asarray(heatmaps)
    xy_reg_hm = np.asarray(xy_reg_hm, dtype=np.float64)
    s = sigma_vector(sigma, check_shapes(heatmaps, xy_reg_hm))
    lead = xy_reg_hm.shape[:-1]
    xy, score, fallback = np.empty(xy_reg_hm.shape), np.empty(lead), np.empty(lead, bool)
    xy_f, score_f, fb_f = xy.reshape(-1, *xy.shape[-2:]), score.reshape(-1, lead[-1]), fallback.reshape(-1, lead[-1])
    for sl, hm, xr in peaks.chunks(heatmaps, xy_reg_hm):
        out = fuse_chunk(hm, xr, s, min_product, subpixel)
        xy_f[sl], score_f[sl], fb_f[sl] = out["xy_sub"], out["score"], out["fallback"]
    return FusionResult(xy_hm=xy, score=score, fallback=fallback)
