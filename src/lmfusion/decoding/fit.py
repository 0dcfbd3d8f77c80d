"""Fitting the decoder on data: the fusion prior's sigma (`fusion.sigma: auto`) and the chain decode's weights on
the validation split, the chain's displacement model on the training split's ground truth, and the threshold of the
study-level `level_uncertain` flag. Every choice keeps fused and plain argmax among its candidates, so the fitted
decoder is never below them on the validation split.

Legend: N studies, K landmarks (top to bottom); (x, y) in heatmap pixels (`_hm`) unless said otherwise.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from lmfusion import metrics
from lmfusion.config.decoding import ChainConfig, FusionConfig
from lmfusion.coords import radial_mm
from lmfusion.decoding.chain import (ChainModel, ChainSettings, candidates, checked_inputs, end_check_terms,
                                     pair_terms, scan_peaks, take, unary_scores, viterbi, with_end_check,
                                     with_end_node)
from lmfusion.decoding.chain_model import fit_chain_model  # noqa: F401 (re-exported: fit's public API)
from lmfusion.decoding import peaks
from lmfusion.decoding.decoder import Decoded, LandmarkDecoder
from lmfusion.decoding.fusion import fuse
from lmfusion.errors import DataError, ParamError

if TYPE_CHECKING:
    from lmfusion.evaluation import SplitOutputs

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


def _grid(heatmaps: np.ndarray, xy_reg: np.ndarray, mm: np.ndarray, sigma: np.ndarray, length: np.ndarray,
          model: ChainModel, grid: dict, min_product: float, min_sep: float
          ) -> Iterator[tuple[ChainSettings, np.ndarray]]:
    """(settings, (N, K, 2) landmarks) for fused, argmax, then every chain grid point; one heatmap scan for all."""
    for mode, s in (("fused", sigma), ("argmax", np.full_like(sigma, np.inf))):
        yield ChainSettings(mode=mode, min_sep=min_sep), fuse(heatmaps, xy_reg, s, min_product).xy_hm
    k = heatmaps.shape[1]
    scan = scan_peaks(heatmaps, xy_reg, max(grid["candidate_counts"]), min_product)
    for end, n, lend, trust in itertools.product(grid["end_nodes"], grid["candidate_counts"], grid["lend_penalties"],
                                                 grid["trusts"]):
        c = candidates(scan, xy_reg, n, lend is not None, grid["reliability"] if trust else None)
        xr, sg, m = xy_reg, sigma, model
        if end:
            c, xr, sg = with_end_node(c, grid["anchor"], xy_reg, sigma, n, min_product)
            m = model.with_end()
        pair = pair_terms(c.xy, mm, length, m)  # (N, K'-1, M, M), scaled per pairwise weight below
        check = grid["end_check"] * end_check_terms(heatmaps, c.xy, min_sep / 2) if grid["end_check"] > 0 else None
        for pw in grid["prior_weights"]:
            unary = unary_scores(c, xr, sg, pw, lend)
            for qw in grid["pairwise_weights"]:
                idx, _ = viterbi(unary, qw * pair if check is None else with_end_check(qw * pair, check, k))
                yield (ChainSettings("chain", pw, qw, n, lend, min_sep, trust, end, grid["end_check"]),
                       take(c.xy, idx)[:, :k])


def fit_chain(heatmaps_val: np.ndarray, xy_reg_val_hm: np.ndarray, xy_true_val_hm: np.ndarray,
              mm_per_hm_px: np.ndarray, sigma_hm: np.ndarray, model: ChainModel, prior_weights: Sequence[float],
              pairwise_weights: Sequence[float], candidate_counts: Sequence[int], radius_mm: float,
              min_product: float, lend_penalties: Sequence[float | None] = (None,),
              min_sep: float = ChainSettings.min_sep, trusts: Sequence[bool] = (False,),
              reliability: np.ndarray | None = None, end_nodes: Sequence[bool] = (False,),
              anchor: np.ndarray | None = None, end_check: float = 0.0) -> tuple[ChainSettings, list[dict]]:
    """Pick what the method "chain" answers on the validation split, in the style of `auto_sigma`.

    The candidates are fused (`fuse` with sigma_hm), argmax, then the chain at every grid point, in that order.
    The highest share of landmarks within radius_mm wins (ties: the lower mean radial error, then the earlier
    candidate), so the chosen decoder is never below the better of fused and argmax on the validation split.

    Args:
        heatmaps_val: (N, K, H, W); xy_reg_val_hm, xy_true_val_hm: (N, K, 2) heatmap px; mm_per_hm_px: (N, 2).
        lend_penalties: None = no lending, a number = lending at that log penalty.
        trusts: trust_regressor values to try; True needs reliability (K,), the regressor's measured reliability.
        end_nodes: end_node values to try; True needs anchor (N, H, W), the U-Net's sacrum maps, and a model with
            its end step.
        end_check: the end check's weight in every chain tried (ChainSettings.end_check; 0: off), not fitted.
    Returns:
        The chosen ChainSettings, and one row per candidate: {"mode", "prior_weight", "pairwise_weight",
        "n_candidates", "lend_penalty", "trust_regressor", "end_node", "sdr", "mre_mm", "chosen"}.
    """
    heatmaps, xy_reg, mm, sigma, length = checked_inputs(heatmaps_val, xy_reg_val_hm, mm_per_hm_px, sigma_hm, model)
    xy_true = np.asarray(xy_true_val_hm, np.float64)
    grid = {"prior_weights": prior_weights, "pairwise_weights": pairwise_weights,
            "candidate_counts": candidate_counts, "lend_penalties": lend_penalties, "trusts": trusts,
            "end_nodes": end_nodes}
    if len(heatmaps) == 0 or xy_true.shape != xy_reg.shape or any(len(v) == 0 for v in grid.values()):
        raise DataError(f"chain fit: needs N >= 1 val studies with truth {xy_reg.shape} and non-empty grids")
    if any(trusts) and reliability is None:
        raise DataError("chain fit: trust_regressor needs the regressor's reliability per landmark")
    if any(end_nodes) and (anchor is None or len(anchor) != len(heatmaps) or not model.has_end):
        raise DataError("chain fit: the end node needs the U-Net's sacrum maps of the val split and the model's end "
                        "step")
    grid["reliability"], grid["anchor"], grid["end_check"] = reliability, anchor, end_check
    table, options, keys = [], [], []
    for s, xy in _grid(heatmaps, xy_reg, mm, sigma, length, model, grid, min_product, min_sep):
        err = radial_mm(xy, xy_true, mm)  # (N, K)
        rate, mre = float(np.mean(err <= radius_mm)), float(np.nanmean(err))
        row = {k: v if s.mode == "chain" else None for k, v in s.to_dict().items() if k != "min_sep"}
        table.append({**row, "mode": s.mode, "sdr": round(rate, 4), "mre_mm": round(mre, 4), "chosen": False})
        options.append(s)
        keys.append((-rate, mre if np.isfinite(mre) else np.inf))
    best = min(range(len(keys)), key=keys.__getitem__)  # min keeps the earliest on ties
    table[best]["chosen"] = True
    return options[best], table


def fit_margin_threshold(margins_val: np.ndarray, wrong_val: np.ndarray, quantile: float = 5.0) -> float:
    """Threshold of the flag `margin < threshold` from (N,) val margins and (N,) bool wrong studies.

    Rule: with wrong studies on val, the threshold just above a wrong study's margin that maximises (share of wrong
    studies flagged - share of right ones flagged), the lowest on ties; without, the `quantile` (percent) of the right
    studies' finite margins. An infinite margin is never flagged; 0 (flag nothing) when no finite margin is left.
    """
    m, wrong = np.asarray(margins_val, np.float64), np.asarray(wrong_val, bool)
    if m.shape != wrong.shape or m.ndim != 1:
        raise DataError(f"margin threshold: expected (N,) margins and flags, got {m.shape}, {wrong.shape}")
    cuts = np.nextafter(m[wrong & np.isfinite(m)], np.inf)
    if cuts.size == 0:
        right = m[~wrong & np.isfinite(m)]
        return float(np.percentile(right, quantile)) if right.size else 0.0
    cuts = np.unique(cuts)  # sorted: argmax keeps the lowest threshold on ties
    caught = (m[wrong][None] < cuts[:, None]).mean(1)
    false = (m[~wrong][None] < cuts[:, None]).mean(1) if (~wrong).any() else np.zeros(len(cuts))
    return float(cuts[np.argmax(caught - false)])


def fit_sigma(val: SplitOutputs, cfg: FusionConfig, target_radius: float) -> tuple[np.ndarray, dict]:
    """(K,) prior sigma in heatmap pixels: the fixed param, or `auto` fitted on the validation split; and the fit."""
    k = val.coords_norm.shape[1]
    if cfg.sigma != "auto":
        return np.full(k, float(cfg.sigma)), {"mode": "fixed", "sigma_hm": float(cfg.sigma)}
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


def regressor_reliability(xy_reg_hm: np.ndarray, xy_true_hm: np.ndarray, mm_per_hm_px: np.ndarray,
                          radius_mm: float) -> np.ndarray:
    """(K,) the share of (N, K, 2) regressed landmarks within radius_mm of the truth (a landmark without truth is a
    miss), floored at 1 / (N + 1): what the chain's regressed candidate may count on."""
    err = radial_mm(xy_reg_hm, xy_true_hm, mm_per_hm_px)  # (N, K)
    return np.maximum((err <= radius_mm).mean(0), 1.0 / (len(err) + 1))


def fit_decoder(val: SplitOutputs, train_truth: np.ndarray, train_spacing: np.ndarray, fcfg: FusionConfig,
                ccfg: ChainConfig, target_radius: float) -> tuple[LandmarkDecoder, dict, Decoded]:
    """The decoder fitted as the params say: the fusion sigma, the gate and the chain weights on the validation split,
    the chain's displacement model on the training split's ground truth (N_train, K, 2) with its spacing
    (N_train, 2), and the level_uncertain threshold on the validation split's wrong-level studies.

    Returns the decoder, the fit (for models/decoder.json and the report) and the validation split decoded by it.
    """
    sigma, fit = fit_sigma(val, fcfg, target_radius)
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
                                min_sep=ccfg.min_sep, reliability=reliability, anchor=val.anchor, **grid)
    gate, fit["gate"] = float(fcfg.gate) if fcfg.gate != "auto" else np.inf, {"mode": "fixed"}
    if fcfg.gate == "auto":
        gate, table_gate = fit_gate(val.heatmaps, val.regressed_hm(), val.truth_hm(), val.mm_per_hm_px(), sigma,
                                    fcfg.min_product, fcfg.gate_ratios, fcfg.gate_sep, target_radius)
        fit["gate"] = {"mode": "auto", "candidates": table_gate}
    decoder = LandmarkDecoder(sigma, fcfg.min_product, chain_model=model, chain=settings, gate_ratio=gate,
                              gate_sep=fcfg.gate_sep, reliability=reliability)
    decoded = decoder.decode(val.coords_norm, val.heatmaps, val.sizes, val.spacing, val.anchor)
    wrong = metrics.wrong_level_studies(decoded.xy["chain"], val.truth, val.spacing)  # (N,)
    threshold = (fit_margin_threshold(decoded.margin, wrong) if ccfg.margin_threshold == "auto"
                 else float(ccfg.margin_threshold))
    fit["chain"] = {"settings": settings.to_dict(), "candidates": table, "margin_threshold": threshold,
                    "margin_threshold_mode": "auto" if ccfg.margin_threshold == "auto" else "fixed"}
    flagged = dataclasses.replace(decoded, level_uncertain=decoded.margin < threshold)
    return decoder.replace(margin_threshold=threshold), fit, flagged


