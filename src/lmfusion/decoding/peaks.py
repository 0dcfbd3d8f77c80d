"""Peaks of heatmaps: the integer argmax, the sub-pixel refinement, the top local maxima, and the one rule for
reading a map at a point.

Legend: N images, K landmarks, H x W heatmap pixels; (x, y) in heatmap pixels (`_hm`). Pure numpy; every function
takes any number of leading batch dimensions unless its docstring says otherwise.

The edge rule, everywhere: a point is read at its nearest pixel (`np.rint`); a point outside the map, or NaN, reads
0 (no probability there), never the value of the nearest border pixel.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK_ELEMENTS = 1 << 22  # heatmap values decoded at once (16 MB of float32): bounded memory for any N


def argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer peak position and value of each map.

    Args:
        heatmaps: (..., H, W).
    Returns:
        xy (..., 2) float64 integer-valued coordinates, scores (...,) the peak values.
    """
    heatmaps = np.asarray(heatmaps)
    h, w = heatmaps.shape[-2:]
    flat = heatmaps.reshape(*heatmaps.shape[:-2], h * w)
    idx = flat.argmax(-1)
    scores = np.take_along_axis(flat, idx[..., None], -1)[..., 0]
    xy = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    return xy, scores.astype(np.float64)


def refine(heatmaps: np.ndarray, xy: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Sub-pixel refinement of integer peaks by a parabola through the log of the peak and its two neighbours, per
    axis (exact for a Gaussian peak). Peaks on the border and non-peaks keep their integer position.

    Args:
        heatmaps: (..., H, W) non-negative maps (probabilities, not logits).
        xy: (..., 2) integer peak positions from `argmax`.
    Returns:
        (..., 2) refined positions, each moved by at most half a pixel per axis.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    h, w = heatmaps.shape[-2:]
    flat = heatmaps.reshape(-1, h, w)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2).copy()
    ix = pts[:, 0].astype(np.int64)
    iy = pts[:, 1].astype(np.int64)
    n = np.arange(len(flat))
    for axis in (0, 1):
        inner = (ix > 0) & (ix < w - 1) if axis == 0 else (iy > 0) & (iy < h - 1)
        lo_x, hi_x = (np.clip(ix - 1, 0, w - 1), np.clip(ix + 1, 0, w - 1)) if axis == 0 else (ix, ix)
        lo_y, hi_y = (iy, iy) if axis == 0 else (np.clip(iy - 1, 0, h - 1), np.clip(iy + 1, 0, h - 1))
        c = np.log(np.maximum(flat[n, iy, ix], eps))
        lo = np.log(np.maximum(flat[n, lo_y, lo_x], eps))
        hi = np.log(np.maximum(flat[n, hi_y, hi_x], eps))
        curvature = lo - 2 * c + hi
        ok = inner & (curvature < 0) & (c >= lo) & (c >= hi)
        offset = np.where(ok, 0.5 * (lo - hi) / np.where(ok, curvature, -1.0), 0.0)
        pts[:, axis] += np.clip(offset, -0.5, 0.5)
    return pts.reshape(np.shape(xy))


def values_at(maps: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(M, K) values of (M, K, H, W) maps at the nearest pixel of (M, K, 2) points, float64; 0 outside or NaN."""
    m, k, h, w = maps.shape
    inside = np.isfinite(xy).all(-1)
    ij = np.where(inside[..., None], np.rint(np.nan_to_num(xy)), -1).astype(np.int64)  # (M, K, 2)
    inside &= (ij[..., 0] >= 0) & (ij[..., 0] < w) & (ij[..., 1] >= 0) & (ij[..., 1] < h)
    ij = np.where(inside[..., None], ij, 0)
    vals = maps[np.arange(m)[:, None], np.arange(k)[None, :], ij[..., 1], ij[..., 0]]
    return np.where(inside, vals, 0.0).astype(np.float64)


def chunks(heatmaps: np.ndarray, *per_map: np.ndarray) -> Iterator[tuple[slice, np.ndarray, ...]]:
    """Yield (slice, float32 (S, K, H, W) maps, then each of `per_map` (S, K, ...)) over the flattened leading
    dimensions, CHUNK_ELEMENTS heatmap values at a time (the cache is float16: each chunk is cast once)."""
    k, h, w = heatmaps.shape[-3:]
    hm = heatmaps.reshape(-1, k, h, w)
    rest = [a.reshape(-1, *a.shape[heatmaps.ndim - 3:]) for a in per_map]
    step = max(1, CHUNK_ELEMENTS // max(1, k * h * w))
    for i in range(0, max(len(hm), 1), step):  # one (empty) chunk for N = 0
        yield (slice(i, i + step), hm[i:i + step].astype(np.float32), *(a[i:i + step] for a in rest))


def local_maxima(hm: np.ndarray, n: int, floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n strongest local maxima of each (S, K, H, W) float32 map, at least `floor`.

    A plateau keeps its first pixel in raster order; ties go to the lowest pixel.
    Returns:
        xy (S, K, n, 2), the same refined to sub-pixel (S, K, n, 2), and the values (S, K, n); NaN positions and
        value 0 where a map has fewer than n.
    """
    s, k, h, w = hm.shape
    pad = np.pad(hm, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)  # (S, K, H+2, W+2)
    row3 = np.maximum(np.maximum(pad[..., :-2], pad[..., 1:-1]), pad[..., 2:])  # (S, K, H+2, W) max of x-1..x+1
    # strict against the neighbours before in raster order, >= against those after: a plateau keeps its first pixel
    before = np.maximum(row3[..., :-2, :], pad[..., 1:-1, :-2])  # row above, and the left neighbour
    after = np.maximum(row3[..., 2:, :], pad[..., 1:-1, 2:])  # row below, and the right neighbour
    flat = np.where((hm >= floor) & (hm > before) & (hm >= after), hm, -np.inf).reshape(s * k, h * w)
    rows, idx, val = np.arange(s * k), np.zeros((s * k, n), np.int64), np.zeros((s * k, n))
    for j in range(n):  # n argmax passes beat sorting the thousands of tiny noise peaks; ties: lowest pixel
        idx[:, j] = flat.argmax(-1)
        val[:, j] = flat[rows, idx[:, j]]
        flat[rows, idx[:, j]] = -np.inf
    xy = np.stack([idx % w, idx // w], -1).astype(np.float64)  # (S*K, n, 2)
    xy_sub = xy + _peak_offsets(hm.reshape(s * k, h, w), rows[:, None], idx // w, idx % w)
    missing = ~np.isfinite(val)
    xy[missing], xy_sub[missing], val[missing] = np.nan, np.nan, 0.0
    return xy.reshape(s, k, n, 2), xy_sub.reshape(s, k, n, 2), val.reshape(s, k, n)


def _peak_offsets(maps: np.ndarray, m: np.ndarray, yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """(..., 2) sub-pixel offsets of peaks (yi, xi) of maps[m], by `refine` on the 3 x 3 patch around each (the
    same log-parabola as on the full map, a fraction of the work); on the map's border an axis stays put."""
    h, w = maps.shape[-2:]
    ys, xs = np.clip(yi[..., None] + np.arange(-1, 2), 0, h - 1), np.clip(xi[..., None] + np.arange(-1, 2), 0, w - 1)
    patch = maps[m[..., None, None], ys[..., :, None], xs[..., None, :]]  # (..., 3, 3)
    off = refine(patch, np.ones((*yi.shape, 2))) - 1.0
    return off * np.stack([(xi > 0) & (xi < w - 1), (yi > 0) & (yi < h - 1)], -1)


def rival_ratio(hm: np.ndarray, sep: float, floor: float, n: int = 8) -> np.ndarray:
    """(S, K) how ambiguous each (S, K, H, W) float32 map is: its strongest local maximum at least `sep` px from the
    map's top peak, over the top peak's value (0: one clear peak, 1: a tie). Looks at the n strongest maxima."""
    xy, _, val = local_maxima(hm, n, floor)  # (S, K, n, 2), (S, K, n)
    far = ((xy[..., 1:, :] - xy[..., :1, :]) ** 2).sum(-1) >= sep**2  # (S, K, n-1); NaN (missing) compares False
    rival = np.where(far, val[..., 1:], 0.0).max(-1, initial=0.0)
    return np.divide(rival, val[..., 0], out=np.zeros_like(rival), where=val[..., 0] > 0)
