"""Fitting the decoder on data: the fusion prior's sigma (`fusion.sigma: auto`) and the gate of the method "gated" on
the validation split, and the whole decoder as the params say (`fit_decoder`; the chain decode's own fit is
`lmfusion.decoding.chain_fit`). Every choice keeps fused and plain argmax among its candidates, so the fitted decoder
is never below them on the validation split.

Legend: N studies, K landmarks (top to bottom); (x, y) in heatmap pixels (`_hm`) unless said otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from lmfusion import metrics
from lmfusion.config.decoding import ChainConfig, FusionConfig
from lmfusion.coords import radial_mm
from lmfusion.decoding import peaks
from lmfusion.decoding.chain_fit import fit_chain, fit_flag_threshold, regressor_reliability
from lmfusion.decoding.chain_model import fit_chain_model  # noqa: F401 (re-exported: fit's public API)
from lmfusion.decoding.decoder import Decoded, LandmarkDecoder
from lmfusion.decoding.fusion import fuse
from lmfusion.decoding.outputs import SplitOutputs
from lmfusion.errors import DataError, ParamError

if TYPE_CHECKING:
    from lmfusion.config.geometry import DecodeGeometry

MIN_RESIDUAL_PX = 0.5  # floor of the fitted residual sigma, so a near-perfect val split still gives a usable prior


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


def fit_sigma(val: SplitOutputs, cfg: FusionConfig, target_radius: float,
              geometry: DecodeGeometry) -> tuple[np.ndarray, dict]:
    """(K,) prior sigma in heatmap pixels: fusion.sigma as the geometry scaled it, or `auto` fitted on the validation
    split; and the fit."""
    k = val.coords_norm.shape[1]
    if geometry.fusion_sigma is not None:
        return np.full(k, geometry.fusion_sigma), {"mode": "fixed", "sigma_hm": geometry.fusion_sigma}
    if len(val.rows) == 0:
        raise DataError("fusion.sigma is auto but the validation split is empty; set prepare.val_size >= 1")
    sigma, table = auto_sigma(val.heatmaps, val.regressed_hm(), val.truth_hm(), val.mm_per_hm_px(),
                              cfg.auto_scales, target_radius, cfg.min_product)
    return np.asarray(sigma, dtype=np.float64), {"mode": "auto", "candidates": table}


def fit_gate(heatmaps_val: np.ndarray, xy_reg_val_hm: np.ndarray, xy_true_val_hm: np.ndarray,
             mm_per_hm_px: np.ndarray, sigma_hm: np.ndarray, min_product: float, ratios: Sequence[float],
             sep: float, radius_mm: float) -> tuple[float, list[dict]]:
    """The gate of the method "gated" on the validation split: the fused landmark where a channel's rival peak is at
    least `ratio` x its top peak, else the argmax.

    The candidates are `ratios` from low to high (0: always the prior, the paper's fused), then inf (never: argmax).
    The most studies identified win (every landmark within radius_mm), then the share of landmarks within it; ties
    go to the earlier candidate, the one that uses the prior more: the paper's fusion stays unless the validation
    split shows a gain. So the gated method is never below argmax nor fused on the validation split.

    Returns the ratio, and one row per candidate: {"gate_ratio", "study_identification", "sdr", "mre_mm",
    "prior_used" (share of landmarks), "chosen"}.
    """
    heatmaps, xy_true = np.asarray(heatmaps_val), np.asarray(xy_true_val_hm, np.float64)
    if len(heatmaps) == 0:
        raise DataError("the gate of the method gated is fitted on the validation split; it must hold studies")
    fused = fuse(heatmaps, xy_reg_val_hm, sigma_hm, min_product).xy_hm  # (N, K, 2)
    scans = [(peaks.argmax(hm)[0], peaks.rival_ratio(hm, sep, min_product)) for _, hm in peaks.chunks(heatmaps)]
    top, ratio = (np.concatenate(part) for part in zip(*scans, strict=True))  # (N, K, 2), (N, K): one cast per chunk
    table, keys = [], []
    gates = [*sorted({float(r) for r in ratios}), np.inf]
    for r in gates:
        used = ratio >= r
        err = radial_mm(np.where(used[..., None], fused, top), xy_true, mm_per_hm_px)  # (N, K)
        ident, rate = float(metrics.study_identified(err, radius_mm).mean()), float(np.mean(err <= radius_mm))
        mre = float(np.nanmean(err))
        table.append({"gate_ratio": r if np.isfinite(r) else "inf", "study_identification": round(ident, 4),
                      "sdr": round(rate, 4), "mre_mm": round(mre, 4), "prior_used": round(float(used.mean()), 4),
                      "chosen": False})
        keys.append((-ident, -rate))
    best = min(range(len(keys)), key=keys.__getitem__)  # min keeps the earliest on ties
    table[best]["chosen"] = True
    return gates[best], table


def fit_decoder(val: SplitOutputs, train_truth: np.ndarray, train_spacing: np.ndarray, fcfg: FusionConfig,
                ccfg: ChainConfig, target_radius: float, geometry: DecodeGeometry
                ) -> tuple[LandmarkDecoder, dict, Decoded]:
    """The decoder fitted as the params say: the fusion sigma, the gate and the chain weights on the validation split,
    the chain's displacement model on the training split's ground truth (N_train, K, 2) with its spacing
    (N_train, 2), and the level_uncertain thresholds (`fit_flag`) on the validation split.

    Every length (fusion.sigma, gate_sep, chain.rival_sep, end_radius) comes from `geometry`, in pixels of val's
    heatmaps (lmfusion.config.geometry.decode_geometry); the configs' own lengths are at heatmap.reference_size.
    Returns the decoder, the fit (for models/decoder.json and the report) and the validation split decoded by it.
    """
    sigma, fit = fit_sigma(val, fcfg, target_radius, geometry)
    if len(val.rows) == 0 or len(train_truth) == 0:
        raise DataError("the chain decode is fitted on the train and validation splits; both must hold studies")
    model = fit_chain_model(train_truth, train_spacing, ccfg.unit)
    reliability = regressor_reliability(val.regressed_hm(), val.truth_hm(), val.mm_per_hm_px(), target_radius)
    grid = ccfg.grid()
    if val.anchor is None or not model.has_end:
        if ccfg.end_node is True:
            raise ParamError("param chain.end_node: true needs a U-Net with the sacrum map (train_unet.sacrum_channel: "
                             "true) and at least 3 landmarks; set it auto or false")
        grid["end_nodes"] = (False,)
    settings, table = fit_chain(val.heatmaps, val.regressed_hm(), val.truth_hm(), val.mm_per_hm_px(),
                                sigma, model, radius_mm=target_radius, min_product=fcfg.min_product,
                                rival_sep=geometry.rival_sep, end_radius=geometry.end_radius,
                                reliability=reliability, anchor=val.anchor, **grid)
    gate, fit["gate"] = float(fcfg.gate) if fcfg.gate != "auto" else np.inf, {"mode": "fixed"}
    if fcfg.gate == "auto":
        gate, table_gate = fit_gate(val.heatmaps, val.regressed_hm(), val.truth_hm(), val.mm_per_hm_px(), sigma,
                                    fcfg.min_product, fcfg.gate_ratios, geometry.gate_sep, target_radius)
        fit["gate"] = {"mode": "auto", "candidates": table_gate}
    decoder = LandmarkDecoder(sigma, fcfg.min_product, chain_model=model, chain=settings, gate_ratio=gate,
                              gate_sep=geometry.gate_sep, reliability=reliability, check_weight=ccfg.check_weight)
    decoded = decoder.decode(val.coords_norm, val.heatmaps, val.sizes, val.spacing, val.anchor)
    sure = ccfg.check_confidence
    if sure == "auto":  # val's answers, before any is the check's: what val vouches for
        sure = float(np.quantile(decoded.scores["chain"].mean(1), ccfg.flag_rate))
    if sure is not None and ccfg.check_weight is not None:
        decoder = decoder.replace(check_confidence=sure)
        decoded = decoder.decode(val.coords_norm, val.heatmaps, val.sizes, val.spacing, val.anchor)
    decoder, flag_fit = fit_flag(decoder, decoded, val, ccfg)
    fit["chain"] = {"settings": settings.to_dict(), "candidates": table, **flag_fit,
                    "check_confidence": decoder.check_confidence}
    flagged = dataclasses.replace(decoded, level_uncertain=decoder.flag(decoded.margin, decoded.end_fit,
                                                                       decoded.level_check))
    return decoder, fit, flagged


def fit_flag(decoder: LandmarkDecoder, decoded_val: Decoded, val: SplitOutputs, ccfg: ChainConfig
             ) -> tuple[LandmarkDecoder, dict]:
    """The decoder with the level flag's two thresholds, chain.margin_threshold and chain.end_threshold, each fixed
    or `auto`: fitted on the validation split decoded by `decoder` (`chain_fit.fit_flag_threshold`: against its
    wrong-level studies where it has some, flagging at most chain.flag_budget of its right ones, else flagging
    chain.flag_rate of them). Returns the decoder and
    the fit's record."""
    wrong = metrics.wrong_level_studies(decoded_val.xy["chain"], val.truth, val.spacing)  # (N,)
    margin, end = ccfg.margin_threshold, ccfg.end_threshold
    if margin == "auto":  # no finite margin on val: 0, the margin flags nothing
        margin = fit_flag_threshold(decoded_val.margin, wrong, ccfg.flag_rate, ccfg.flag_budget) or 0.0
    if end == "auto":  # None: the end fit flags nothing
        end = fit_flag_threshold(decoded_val.end_fit, wrong, ccfg.flag_rate, ccfg.flag_budget)
    mode = lambda v: "auto" if v == "auto" else "fixed"  # noqa: E731
    return decoder.replace(margin_threshold=margin, end_threshold=end), {
        "margin_threshold": margin, "margin_threshold_mode": mode(ccfg.margin_threshold), "end_threshold": end,
        "end_threshold_mode": mode(ccfg.end_threshold), "flag_rate": ccfg.flag_rate, "flag_budget": ccfg.flag_budget}


