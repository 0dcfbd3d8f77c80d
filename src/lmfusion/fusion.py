"""Fusion of the two networks: the regressed coordinate becomes a Gaussian prior, multiplied with the U-Net heatmap;
the product's argmax is the fused landmark.

Legend: N images, K landmarks, H x W heatmap pixels. Coordinates are (x, y) in heatmap pixels (`_hm`); heatmaps are
U-Net probabilities in 0..1. The prior's sigma (heatmap pixels, one per landmark or one for all) has two special
values: `np.inf` is a flat prior (plain heatmap argmax) and `0` keeps the regressed coordinate (direct regression).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lmfusion import heatmaps as hmc
from lmfusion.coords import radial_mm
from lmfusion.errors import DataError, ParamError

CHUNK_ELEMENTS = 1 << 22  # heatmap values decoded at once (16 MB of float32): bounded memory for any N
MIN_RESIDUAL_PX = 0.5  # floor of the fitted residual sigma, so a near-perfect val split still gives a usable prior


@dataclass(frozen=True)
class FusionResult:
    xy_hm: np.ndarray  # (..., K, 2) fused landmarks
    score: np.ndarray  # (..., K) peak of prior x heatmap
    fallback: np.ndarray  # (..., K) True where the peak was below min_product and the regressed point was kept


def sigma_vector(sigma: float | Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """(K,) float64 sigma; rejects negative or NaN values and a length that is not K."""
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


def _at(maps: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(M, K) values of (M, K, H, W) maps at the nearest pixel of (M, K, 2) points; 0 outside the map or for NaN."""
    m, k, h, w = maps.shape
    inside = np.isfinite(xy).all(-1)
    ij = np.where(inside[..., None], np.rint(np.nan_to_num(xy)), -1).astype(np.int64)  # (M, K, 2)
    inside &= (ij[..., 0] >= 0) & (ij[..., 0] < w) & (ij[..., 1] >= 0) & (ij[..., 1] < h)
    ij = np.where(inside[..., None], ij, 0)
    vals = maps[np.arange(m)[:, None], np.arange(k)[None, :], ij[..., 1], ij[..., 0]]
    return np.where(inside, vals, 0.0).astype(np.float64)


def decode_chunk(hm: np.ndarray, xy_reg: np.ndarray, s: np.ndarray, min_product: float, subpixel: bool
                  ) -> dict[str, np.ndarray]:
    """Argmax and fused decoding of one chunk: hm (M, K, H, W) float32, xy_reg (M, K, 2), s (K,)."""
    m, k, h, w = hm.shape
    direct = s == 0  # (K,)
    # inf (and the unused 0) sigma give a prior of exactly 1, so those products equal the heatmap bit for bit
    product = hm * prior(xy_reg, h, w, np.where(direct, np.inf, s))  # (M, K, H, W)
    xy, score = hmc.argmax(product)  # (M, K, 2), (M, K)
    xy_sub = hmc.refine(product, xy) if subpixel else xy
    fallback = np.isfinite(s) & ~direct & (score < min_product)  # (M, K)
    keep_reg = fallback | direct
    score = np.where(direct, _at(hm, xy_reg), score)
    xy = np.where(keep_reg[..., None], xy_reg, xy)
    xy_sub = np.where(keep_reg[..., None], xy_reg, xy_sub)
    return {"xy": xy, "xy_sub": xy_sub, "score": score, "fallback": fallback}


def check_shapes(heatmaps: np.ndarray, xy_reg_hm: np.ndarray) -> int:
    """K, after checking that (..., K, H, W) heatmaps and (..., K, 2) coordinates match."""
    if heatmaps.ndim < 3 or heatmaps.shape[:-2] != xy_reg_hm.shape[:-1] or xy_reg_hm.shape[-1:] != (2,):
        raise DataError(f"heatmaps {heatmaps.shape} and regressed coordinates {xy_reg_hm.shape} do not match: "
                        "expected (..., K, H, W) and (..., K, 2)")
    return heatmaps.shape[-3]


def chunks(heatmaps: np.ndarray, xy_reg_hm: np.ndarray):
    """Yield (slice, float32 (M, K, H, W), (M, K, 2)) chunks of the flattened leading dimensions."""
    k, h, w = heatmaps.shape[-3:]
    hm = heatmaps.reshape(-1, k, h, w)
    xy = xy_reg_hm.reshape(-1, k, 2)
    step = max(1, CHUNK_ELEMENTS // max(1, k * h * w))
    for i in range(0, len(hm), step):
        yield slice(i, i + step), hm[i:i + step].astype(np.float32), xy[i:i + step]


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
    for sl, hm, xr in chunks(heatmaps, xy_reg_hm):
        out = decode_chunk(hm, xr, s, min_product, subpixel)
        xy_f[sl], score_f[sl], fb_f[sl] = out["xy_sub"], out["score"], out["fallback"]
    return FusionResult(xy_hm=xy, score=score, fallback=fallback)


def residual_sigma(xy_reg_hm: np.ndarray, xy_true_hm: np.ndarray, floor: float = MIN_RESIDUAL_PX) -> np.ndarray:
    """(K,) per-landmark RMS regression error per axis, sqrt(mean(dx^2 + dy^2) / 2), in heatmap pixels.

    Args:
        xy_reg_hm, xy_true_hm: (N, K, 2). Landmarks without ground truth (NaN) are ignored.
        floor: the smallest sigma returned (also for a landmark with no valid pair).
    """
    d2 = ((np.asarray(xy_reg_hm, np.float64) - np.asarray(xy_true_hm, np.float64)) ** 2).sum(-1)  # (N, K)
    valid = np.isfinite(d2)
    count = valid.sum(0)
    mean = np.where(valid, d2, 0.0).sum(0) / np.maximum(count, 1)
    sigma = np.sqrt(mean / 2)
    return np.where(count > 0, np.maximum(sigma, floor), floor)


def auto_sigma(heatmaps_val: np.ndarray, xy_reg_val_hm: np.ndarray, xy_true_val_hm: np.ndarray,
               mm_per_hm_px: np.ndarray, scales: Sequence[float], radius_mm: float, min_product: float
               ) -> tuple[np.ndarray, list[dict]]:
    """Fit the prior sigma on the validation split.

    The candidates are residual_sigma x each scale, plus inf (argmax) and 0 (direct). The one with the highest
    success rate at `radius_mm` wins (ties: the lower mean radial error, then the earlier candidate), so the fused
    result on the validation split is never below the better of direct regression and heatmap argmax.

    Args:
        heatmaps_val: (N, K, H, W); xy_reg_val_hm, xy_true_val_hm: (N, K, 2) in heatmap pixels.
        mm_per_hm_px: (N, 2) mm per heatmap pixel in x and y (original spacing x original size / heatmap size).
    Returns:
        sigma (K,) in heatmap pixels, and one row per candidate for the report:
        {"scale": float | "direct" | "argmax", "sdr", "mre_mm", "fallbacks", "chosen"}.
    """
    heatmaps_val = np.asarray(heatmaps_val)
    if heatmaps_val.ndim != 4 or len(heatmaps_val) == 0:
        raise DataError(f"auto sigma needs validation heatmaps of shape (N >= 1, K, H, W), got {heatmaps_val.shape}")
    if any(not (np.isfinite(s) and s > 0) for s in scales):
        raise ParamError(f"fusion.auto_scales: every scale must be a positive number, got {list(scales)}")
    k = heatmaps_val.shape[1]
    base = residual_sigma(xy_reg_val_hm, xy_true_val_hm)  # (K,)
    candidates: list[tuple[float | str, np.ndarray]] = [("direct", np.zeros(k)), ("argmax", np.full(k, np.inf))]
    candidates += [(float(s), base * float(s)) for s in scales]
    table, best, best_key = [], 0, None
    for i, (label, sigma) in enumerate(candidates):
        res = fuse(heatmaps_val, xy_reg_val_hm, sigma, min_product)
        err = radial_mm(res.xy_hm, xy_true_val_hm, mm_per_hm_px)  # (N, K)
        rate, mre = float(np.mean(err <= radius_mm)), float(np.nanmean(err))
        table.append({"scale": label, "sdr": round(rate, 4), "mre_mm": round(mre, 4),
                      "fallbacks": int(res.fallback.sum()), "chosen": False})
        key = (-rate, mre if np.isfinite(mre) else np.inf)
        if best_key is None or key < best_key:
            best, best_key = i, key
    table[best]["chosen"] = True
    return candidates[best][1].copy(), table
