"""The chain decode's candidates (lmfusion.decoding.chain): what the joint DP chooses from for each landmark.

Candidates of landmark k: the top local maxima of its channel, the regressed point (so an empty channel still has
one) and optionally the peaks of k - 2 and k + 2 (same kind, a level up and down). With the end node, one more node
below the last landmark: the sacrum map's peaks and the S1 body extrapolated from the regressed chain.

Legend: N studies, K landmarks (top to bottom), M candidates per landmark, H x W heatmap pixels; (x, y) in heatmap
pixels. Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmfusion.anatomy import sacrum_anchor
from lmfusion.decoding import peaks
from lmfusion.errors import DataError

EPS = 1e-6  # heatmap floor before the log: a channel without mass costs a finite log(1e-6), not -inf


@dataclass(frozen=True)
class Scan:
    """Every channel's strongest peaks, found once: a decode's candidate sets of up to n peaks all read it."""

    xy: np.ndarray  # (N, K, n, 2) own peaks, strongest first; NaN where a channel has fewer than n
    xy_sub: np.ndarray  # (N, K, n, 2) the peaks refined by peaks.refine
    val: np.ndarray  # (N, K, n) peak values, 0 where missing
    reg_val: np.ndarray  # (N, K) heatmap at the regressed point's nearest pixel, 0 outside


@dataclass(frozen=True)
class Candidates:
    xy: np.ndarray  # (N, K, M, 2); empty slots sit on the regressed point (no NaN reaches the DP)
    xy_sub: np.ndarray  # (N, K, M, 2)
    log_hm: np.ndarray  # (N, K, M) log heatmap (the lender's for lent ones), -inf for empty slots
    lent: np.ndarray  # (N, K, M) bool


def scan_peaks(heatmaps: np.ndarray, xy_reg: np.ndarray, n: int, floor: float) -> Scan:
    """Every channel's n strongest peaks and its value at the regressed point, chunk by chunk."""
    parts = [(*peaks.local_maxima(hm, n, floor), peaks.values_at(hm, xr))
             for _, hm, xr in peaks.chunks(heatmaps, xy_reg)]
    return Scan(*(np.concatenate(p) for p in zip(*parts, strict=True)))


def candidates(scan: Scan, xy_reg: np.ndarray, n: int, lend: bool,
               reliability: np.ndarray | None = None) -> Candidates:
    """M = n + 1 (+ 2n lent) candidates per landmark: own peaks, the regressed point, peaks of k - 2 and k + 2.

    reliability: (K,) the regressor's share of validation landmarks within the target radius; given, the regressed
    candidate's heatmap value is at least reliability x its channel's top peak (a trusted regressor's point competes
    with the peaks even where the heatmap is empty; an unreliable one's hardly).
    """
    k = xy_reg.shape[1]
    own_xy, own_val, reg = scan.xy[:, :, :n], scan.val[:, :, :n], xy_reg[:, :, None]
    reg_val = scan.reg_val if reliability is None else np.maximum(scan.reg_val, reliability * scan.val[:, :, 0])
    xy, sub, val = [own_xy, reg], [scan.xy_sub[:, :, :n], reg], [own_val, reg_val[:, :, None]]
    lent = [np.zeros(n + 1, bool)]
    for shift in (-2, 2) if lend else ():  # landmark k borrows from k + shift
        src, dst = slice(max(shift, 0), k + min(shift, 0)), slice(max(-shift, 0), k + min(-shift, 0))
        b_xy, b_val = np.full_like(own_xy, np.nan), np.zeros_like(own_val)
        b_xy[:, dst], b_val[:, dst] = own_xy[:, src], own_val[:, src]
        xy, sub, val, lent = xy + [b_xy], sub + [b_xy], val + [b_val], lent + [np.ones(n, bool)]
    xy, sub, val = np.concatenate(xy, 2), np.concatenate(sub, 2), np.concatenate(val, 2)  # (N, K, M, ...)
    empty = ~np.isfinite(xy).all(-1)  # (N, K, M)
    xy, sub = np.where(empty[..., None], reg, xy), np.where(empty[..., None], reg, sub)
    log_hm = np.where(empty, -np.inf, np.log(np.maximum(val, EPS)))
    return Candidates(xy, sub, log_hm, np.broadcast_to(np.concatenate(lent), log_hm.shape))


def with_end_node(c: Candidates, anchor: np.ndarray, xy_reg: np.ndarray, sigma: np.ndarray, n: int,
                  floor: float) -> tuple[Candidates, np.ndarray, np.ndarray]:
    """The candidates, regressed points and sigmas of K + 1 nodes: the end node appended below the last landmark.

    Its candidates are the n strongest peaks of the sacrum map `anchor` (N, H, W) and the point extrapolated from the
    regressed chain (the S1 body as training drew it), padded to the landmarks' M with empty slots; its prior sigma
    is the last landmark's.
    """
    xy_end = sacrum_anchor(xy_reg, range(xy_reg.shape[1]))  # (N, 2)
    if xy_end is None:
        raise DataError("chain end node: needs at least 3 landmarks")
    xy_end = xy_end[:, None]  # (N, 1, 2)
    e = candidates(scan_peaks(np.asarray(anchor)[:, None], xy_end, n, floor), xy_end, n, lend=False)
    pad = c.xy.shape[2] - e.xy.shape[2]  # >= 0: the landmarks have n + 1 candidates, or more when lending
    edge = ((0, 0), (0, 0), (0, pad))
    joined = Candidates(xy=np.concatenate([c.xy, np.pad(e.xy, (*edge, (0, 0)), mode="edge")], 1),
                        xy_sub=np.concatenate([c.xy_sub, np.pad(e.xy_sub, (*edge, (0, 0)), mode="edge")], 1),
                        log_hm=np.concatenate([c.log_hm, np.pad(e.log_hm, edge, constant_values=-np.inf)], 1),
                        lent=np.concatenate([c.lent, np.zeros((*e.lent.shape[:2], c.lent.shape[2]), bool)], 1))
    return joined, np.concatenate([xy_reg, xy_end], 1), np.append(sigma, sigma[-1])
