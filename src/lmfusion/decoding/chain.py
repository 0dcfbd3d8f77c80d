"""The chain decode (the method "chain"): the K landmarks chosen jointly as one configuration by exact dynamic
programming (Viterbi), so a whole-level shift, invisible to each landmark decoded alone, is pulled back by the
neighbours.

Candidates (lmfusion.decoding.chain_candidates): each landmark's top heatmap peaks, the regressed point and
optionally the same-kind neighbours' peaks at a log penalty. Unary: log heatmap + prior_weight x log fusion prior;
pairwise (k, k + 1): pairwise_weight x the Gaussian log-density, up to a constant, of their step under a ChainModel
fitted on the training split's ground truth.

The end node (`ChainSettings.end_node`, with a U-Net trained with `train_unet.sacrum_channel`): one more node below
the last landmark, the S1 body, whose candidates are the sacrum map's peaks and the point extrapolated from the
regressed chain (lmfusion.anatomy.sacrum_anchor), tied to the last landmark by the model's end step. A chain that
ends one level high must then put the S1 body where a disc or L5 is, which the sacrum map does not show.

The end check (`ChainSettings.end_check`, no sacrum map needed): nothing below the last landmark looks like the one
before it. For candidates a of landmark K-2 and b of landmark K-1, the point b + (b - a), one step beyond the
chain's end, is read in landmark K-2's map (its maximum over OpenCV's elliptical kernel of radius end_radius px, a
little wider than the disk at the diagonals), and the last step scores end_check x log(1 - that value). A chain that
ends a level high (its last disc on the true L4-L5, a collapsed L5-S1 below) puts that point on the true L5 body,
where the L5 map fires; the right chain puts it on S1, where it does not.

The chain's end fit (`ChainResult.end_fit`): its score over the steps into and out of its last landmark (the pairwise
terms L5 -> L5-S1 and L5-S1 -> S1 body, with the end check), how well the chain's end looks like the lumbosacral
junction. A chain a whole level off ends on an ordinary step (a level high) or past the junction (a level low), which
its margin cannot show where the right chain has no candidates to be its rival; the level flag reads both
(`LandmarkDecoder.flag`).

One path: `decode` = `check_inputs` -> `scan_peaks` -> `prepare` (the nodes and every term the weights do not change)
-> `solve` (the weighted DP). The fit's grid search (lmfusion.decoding.chain_fit) runs the same `prepare` once per
candidate set and `solve` for each weight pair.

Legend: N studies, K landmarks (top to bottom), M candidates per landmark, H x W heatmap pixels; (x, y) in heatmap
pixels (`_hm`); mm_per_hm_px (N, 2). Numpy (OpenCV only for the end check's dilation); studies are independent;
ties go to the lowest candidate index.
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY, asdict, dataclass

import cv2
import numpy as np

from lmfusion.decoding import peaks
from lmfusion.decoding.chain_candidates import EPS, Candidates, Scan, candidates, scan_peaks, with_end_node
from lmfusion.decoding.chain_model import COV_REG, UNITS, ChainModel, chain_length  # noqa: F401 (re-exported)
from lmfusion.decoding.fusion import sigma_vector
from lmfusion.errors import DataError, ParamError

MODES = ("chain", "fused", "argmax")


@dataclass(frozen=True)
class ChainSettings:
    """The chain decode's weights, and the decoder's `mode`: what the method "chain" answers, the joint DP's choice
    ("chain") or, where fitting on the validation split found it better, the "fused" or "argmax" landmarks. The two
    lengths are in heatmap px, from chain.rival_sep and chain.end_radius (lmfusion.config.geometry): no default."""

    mode: str = "chain"
    prior_weight: float = 0.25
    pairwise_weight: float = 0.05  # small: every channel also fires a level off, the heatmaps must outvote the shape
    n_candidates: int = 8  # own heatmap peaks per landmark
    lend_penalty: float | None = None  # subtracted from lent candidates' log score; None = no lending
    trust_regressor: bool = False  # the regressed candidate scores at least its measured reliability x the top peak
    end_node: bool = False  # the S1 body, from the U-Net's sacrum map, is one more node below the last landmark
    end_check: float = 0.0  # weight of log(1 - landmark K-2's map one step beyond the end); 0: off
    _: KW_ONLY
    rival_sep: float  # heatmap px: the level margin's rival chain moves every landmark at least this far
    end_radius: float  # heatmap px: the end check reads the map's maximum within this radius

    def __post_init__(self) -> None:
        values = (self.prior_weight, self.pairwise_weight, self.rival_sep, self.end_radius, self.lend_penalty or 0.0,
                  self.end_check)
        if (self.mode not in MODES or not all(np.isfinite(v) and v >= 0 for v in values) or self.rival_sep == 0
                or int(self.n_candidates) != self.n_candidates or self.n_candidates < 1):
            raise ParamError(f"chain settings: expected mode in {MODES}, finite weights, end_check, end_radius and "
                             f"lend_penalty >= 0 (or None), rival_sep > 0, an integer n_candidates >= 1; got {self}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ChainSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        if set(d) - names or required - set(d):
            raise ParamError(f"chain settings: unknown keys {sorted(set(d) - names)}, missing keys "
                             f"{sorted(required - set(d))}")
        return cls(**d)


@dataclass(frozen=True)
class ChainResult:
    xy_hm: np.ndarray  # (N, K, 2) chosen positions (integer peaks, or the regressed point)
    xy_sub_hm: np.ndarray  # (N, K, 2) the same, own-channel peaks refined to sub-pixel
    score: np.ndarray  # (N,) the chain DP's best total score (in every mode)
    margin: np.ndarray  # (N,) best minus the best rival sharing no position; +inf: no rival; NaN: not asked for
    end_fit: np.ndarray  # (N,) <= 0: the best chain's score over the steps into and out of its last landmark


@dataclass(frozen=True)
class ChainInputs:
    """A decode's checked arrays."""

    heatmaps: np.ndarray  # (N, K, H, W) as given
    xy_reg: np.ndarray  # (N, K, 2) float64 regressed landmarks
    mm: np.ndarray  # (N, 2) mm per heatmap px
    sigma: np.ndarray  # (K,) fusion prior sigma
    length: np.ndarray  # (N,) the chain's length in the model's unit (1 in mm), floored above 0
    model: ChainModel


@dataclass(frozen=True)
class Nodes:
    """The chain's nodes with every term the weights do not change: candidates, regressed points and prior sigmas of
    K' nodes (K + 1 with the end node), the unweighted pair terms and the weighted end check."""

    cand: Candidates  # (N, K', M, ...)
    xy_reg: np.ndarray  # (N, K', 2)
    sigma: np.ndarray  # (K',)
    pair: np.ndarray  # (N, K'-1, M, M) pair_terms, before pairwise_weight
    check: np.ndarray | None  # (N, M, M) end_check x end_check_terms; None when off
    k: int  # K, the landmarks among the nodes


def check_inputs(heatmaps: np.ndarray, xy_reg_hm: np.ndarray, mm_per_hm_px: np.ndarray, sigma_hm: np.ndarray,
                 model: ChainModel) -> ChainInputs:
    """The arrays of a decode, checked: one DataError naming what does not fit."""
    heatmaps = np.asarray(heatmaps)
    xy, mm = np.asarray(xy_reg_hm, np.float64), np.asarray(mm_per_hm_px, np.float64)
    if heatmaps.ndim != 4 or xy.shape != (*heatmaps.shape[:2], 2) or mm.shape != (len(xy), 2):
        raise DataError(f"chain decode: expected heatmaps (N, K, H, W), regressed (N, K, 2) and mm per px (N, 2), "
                        f"got {heatmaps.shape}, {xy.shape}, {mm.shape}")
    if not (np.isfinite(xy).all() and np.isfinite(mm).all()):
        raise DataError("chain decode: regressed coordinates and mm per px must be finite")
    if len(model.mean) != heatmaps.shape[1] - 1:
        raise DataError(f"chain model has {len(model.mean) + 1} landmarks, heatmaps {heatmaps.shape[1]}")
    sigma = sigma_vector(sigma_hm, heatmaps.shape[1])
    length = chain_length(xy, mm) if model.unit == "spine" else np.ones(len(xy))
    return ChainInputs(heatmaps, xy, mm, sigma, np.maximum(length, 1e-6), model)


def prepare(inputs: ChainInputs, scan: Scan, settings: ChainSettings, min_product: float,
            reliability: np.ndarray | None = None, anchor: np.ndarray | None = None) -> Nodes:
    """The nodes of `settings`' candidate set (n_candidates, lending, trust, end node, end check) from a scan of at
    least n_candidates peaks; the weights are `solve`'s."""
    n, k = settings.n_candidates, inputs.heatmaps.shape[1]
    trust = reliability if settings.trust_regressor else None
    c = candidates(scan, inputs.xy_reg, n, settings.lend_penalty is not None, trust)
    xy_reg, sigma, model = inputs.xy_reg, inputs.sigma, inputs.model
    if settings.end_node:
        if anchor is None or len(anchor) != len(xy_reg):
            raise DataError("chain end node: needs the U-Net's sacrum map for every study (train_unet.sacrum_channel: "
                            "true); refit the decoder without it (chain.end_node: false)")
        c, xy_reg, sigma = with_end_node(c, anchor, xy_reg, sigma, n, min_product)
        model = model.with_end()
    pair = pair_terms(c.xy, inputs.mm, inputs.length, model)  # (N, K'-1, M, M)
    check = (settings.end_check * end_check_terms(inputs.heatmaps, c.xy, settings.end_radius)
             if settings.end_check > 0 and k >= 2 else None)
    return Nodes(c, xy_reg, sigma, pair, check, k)


def solve(nodes: Nodes, settings: ChainSettings, margin: bool = True) -> ChainResult:
    """The joint DP on prepared nodes with `settings`' weights; the margin (a second DP) only where asked."""
    unary = unary_scores(nodes.cand, nodes.xy_reg, nodes.sigma, settings.prior_weight, settings.lend_penalty)
    pair = settings.pairwise_weight * nodes.pair  # (N, K'-1, M, M), a new array
    if nodes.check is not None:
        pair[:, nodes.k - 2] += nodes.check  # the step K-2 -> K-1
    idx, best = viterbi(unary, pair)
    gap = _margin(unary, pair, nodes.cand.xy, idx, best, settings.rival_sep) if margin else np.full(len(idx), np.nan)
    k = nodes.k
    return ChainResult(xy_hm=take(nodes.cand.xy, idx)[:, :k], xy_sub_hm=take(nodes.cand.xy_sub, idx)[:, :k],
                       score=best, margin=gap, end_fit=end_fit(pair, idx, k))


def decode(heatmaps: np.ndarray, xy_reg_hm: np.ndarray, mm_per_hm_px: np.ndarray, sigma_hm: np.ndarray,
           model: ChainModel, settings: ChainSettings, min_product: float,
           reliability: np.ndarray | None = None, anchor: np.ndarray | None = None, margin: bool = True
           ) -> ChainResult:
    """The joint DP's landmarks of every study, with its score and margin (`settings.mode` is the decoder's: the
    margin and the wrong-level flag come from the DP whichever answer the decoder gives; margin=False skips it).

    Args:
        heatmaps: (N, K, H, W) probabilities, float16 or float32.
        xy_reg_hm: (N, K, 2) regressed landmarks in heatmap px; mm_per_hm_px: (N, 2).
        sigma_hm: (K,) or one fusion prior sigma in heatmap px (inf = flat).
        min_product: heatmap values below it are no peak.
        reliability: (K,) the regressor's measured reliability, used where settings.trust_regressor says so.
        anchor: (N, H, W) the U-Net's sacrum map, needed where settings.end_node says so.
    """
    inputs = check_inputs(heatmaps, xy_reg_hm, mm_per_hm_px, sigma_hm, model)
    scan = scan_peaks(inputs.heatmaps, inputs.xy_reg, settings.n_candidates, min_product)
    return solve(prepare(inputs, scan, settings, min_product, reliability, anchor), settings, margin)


def unary_scores(c: Candidates, xy_reg: np.ndarray, sigma: np.ndarray, prior_weight: float,
                 lend_penalty: float | None) -> np.ndarray:
    """(N, K, M) log heatmap + prior_weight x log prior - lend_penalty for lent candidates."""
    d2 = ((c.xy - xy_reg[:, :, None]) ** 2).sum(-1)  # (N, K, M)
    with np.errstate(divide="ignore", invalid="ignore"):  # sigma inf: log prior 0; sigma 0: -inf off the point
        log_prior = np.where(d2 == 0, 0.0, -d2 / (2 * sigma[None, :, None] ** 2))
    out = c.log_hm + (prior_weight * log_prior if prior_weight > 0 else 0.0)
    return out - (lend_penalty or 0.0) * c.lent


def pair_terms(xy: np.ndarray, mm_per_hm_px: np.ndarray, length: np.ndarray, model: ChainModel) -> np.ndarray:
    """(N, K-1, M, M) -0.5 Mahalanobis^2 of the step from candidate a of landmark k to candidate b of k + 1."""
    scale = (mm_per_hm_px / length[:, None])[:, None, None]  # (N, 1, 1, 2) model unit per heatmap px
    a, b = xy[:, :-1] * scale, xy[:, 1:] * scale  # (N, K-1, M, 2)
    r = b[:, :, None] - a[:, :, :, None] - model.mean[None, :, None, None]  # (N, K-1, M, M, 2)
    p = model.precision[None, :, None, None]  # (1, K-1, 1, 1, 2, 2)
    rx, ry = r[..., 0], r[..., 1]
    return -0.5 * (p[..., 0, 0] * rx**2 + 2 * p[..., 0, 1] * rx * ry + p[..., 1, 1] * ry**2)


def end_check_terms(heatmaps: np.ndarray, xy: np.ndarray, radius: float) -> np.ndarray:
    """(N, M, M) log(1 - v): v is landmark K-2's map, at its maximum over OpenCV's elliptical kernel of
    radius `radius` px, at b + (b - a) for candidate a (rows) of landmark K-2 and b (columns) of landmark K-1; 0 where
    that point leaves the map.

    heatmaps: (N, K, H, W) with K >= 2; xy: (N, K', M, 2) candidates of K' >= K nodes (the landmarks first).
    """
    n, k, h, w = heatmaps.shape
    r = max(int(round(radius)), 0)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    a, b = xy[:, k - 2], xy[:, k - 1]  # (N, M, 2)
    beyond = 2 * b[:, None] - a[:, :, None]  # (N, M, M, 2)
    out = np.empty(beyond.shape[:3])
    for i in range(n):  # one map per study: a study's dilation is a few hundred microseconds
        pooled = cv2.dilate(np.asarray(heatmaps[i, k - 2], np.float32), disk)
        points = beyond[i].reshape(1, -1, 2)  # (1, M * M, 2)
        v = peaks.values_at(np.broadcast_to(pooled, (1, points.shape[1], h, w)), points)  # (1, M * M)
        out[i] = np.log(np.maximum(1.0 - v.reshape(beyond.shape[1:3]), EPS))
    return out


def viterbi(unary: np.ndarray, pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact MAP of a chain: (N, K) chosen candidate indices and (N,) total scores, O(K M^2) per study."""
    n, k, _ = unary.shape
    alpha = unary[:, 0]  # (N, M) best score of a chain ending at each candidate
    back = np.zeros((n, max(k - 1, 0), unary.shape[2]), np.int64)
    for j in range(1, k):
        total = alpha[:, :, None] + pair[:, j - 1]  # (N, M_prev, M)
        back[:, j - 1] = total.argmax(1)  # argmax takes the first maximum: ties go to the lowest index
        alpha = np.take_along_axis(total, back[:, j - 1][:, None], 1)[:, 0] + unary[:, j]
    idx = np.zeros((n, k), np.int64)
    idx[:, -1] = alpha.argmax(1)
    for j in range(k - 1, 0, -1):
        idx[:, j - 1] = back[np.arange(n), j - 1, idx[:, j]]
    return idx, alpha[np.arange(n), idx[:, -1]]


def end_fit(pair: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """(N,) the chain's weighted pairwise terms (N, K'-1, M, M), end check included, of its steps into and out of
    landmark k - 1 (the last landmark; out of it only with the end node), at the chosen (N, K') indices; 0 without."""
    steps = range(max(k - 2, 0), pair.shape[1])  # k - 2 -> k - 1, and k - 1 -> the end node where there is one
    rows = np.arange(len(idx))
    return sum((pair[rows, j, idx[:, j], idx[:, j + 1]] for j in steps), np.zeros(len(idx)))


def take(xy: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(N, K, 2) the chosen candidates of (N, K, M, 2)."""
    return np.take_along_axis(xy, idx[:, :, None, None], 2)[:, :, 0]


def _margin(unary: np.ndarray, pair: np.ndarray, xy: np.ndarray, idx: np.ndarray, best: np.ndarray,
            rival_sep: float) -> np.ndarray:
    """(N,) best minus the best configuration with every landmark at least rival_sep px from the best's point."""
    near = ((xy - take(xy, idx)[:, :, None]) ** 2).sum(-1) < rival_sep**2  # (N, K, M)
    _, rival = viterbi(np.where(near, -np.inf, unary), pair)
    return np.where(np.isfinite(rival), best - rival, np.inf)
