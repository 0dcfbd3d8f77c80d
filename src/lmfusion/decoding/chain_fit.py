"""The chain decode's fit on the validation split: its weights and candidate set (`fit_chain`, a grid search run
through the decode's own `chain.prepare` and `chain.solve`), the regressor's reliability its trusted candidate counts
on, and the thresholds of the study-level `level_uncertain` flag (on the chain's margin and on its end fit). Every
choice keeps fused and plain argmax among its candidates, so the fitted decoder is never below them on the validation
split.

Legend: N studies, K landmarks (top to bottom); (x, y) in heatmap pixels (`_hm`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from lmfusion.coords import radial_mm
from lmfusion.decoding import chain
from lmfusion.decoding.chain import ChainInputs, ChainModel, ChainSettings
from lmfusion.decoding.fusion import fuse
from lmfusion.errors import DataError


def _grid(inputs: ChainInputs, grid: dict, min_product: float, rival_sep: float, end_radius: float
          ) -> Iterator[tuple[ChainSettings, np.ndarray]]:
    """(settings, (N, K, 2) landmarks) for fused, argmax, then every chain grid point: one heatmap scan for all, one
    `chain.prepare` per candidate set for all its weights."""
    lengths = {"rival_sep": rival_sep, "end_radius": end_radius}
    for mode, s in (("fused", inputs.sigma), ("argmax", np.full_like(inputs.sigma, np.inf))):
        yield ChainSettings(mode=mode, **lengths), fuse(inputs.heatmaps, inputs.xy_reg, s, min_product).xy_hm
    scan = chain.scan_peaks(inputs.heatmaps, inputs.xy_reg, max(grid["candidate_counts"]), min_product)
    for end, n, lend, trust in itertools.product(grid["end_nodes"], grid["candidate_counts"], grid["lend_penalties"],
                                                 grid["trusts"]):
        base = ChainSettings("chain", n_candidates=n, lend_penalty=lend, trust_regressor=trust, end_node=end,
                             end_check=grid["end_check"], **lengths)
        nodes = chain.prepare(inputs, scan, base, min_product, grid["reliability"], grid["anchor"])
        for pw, qw in itertools.product(grid["prior_weights"], grid["pairwise_weights"]):
            settings = dataclasses.replace(base, prior_weight=pw, pairwise_weight=qw)
            yield settings, chain.solve(nodes, settings, margin=False).xy_hm


def fit_chain(heatmaps_val: np.ndarray, xy_reg_val_hm: np.ndarray, xy_true_val_hm: np.ndarray,
              mm_per_hm_px: np.ndarray, sigma_hm: np.ndarray, model: ChainModel, prior_weights: Sequence[float],
              pairwise_weights: Sequence[float], candidate_counts: Sequence[int], radius_mm: float,
              min_product: float, *, rival_sep: float, end_radius: float,
              lend_penalties: Sequence[float | None] = (None,), trusts: Sequence[bool] = (False,),
              reliability: np.ndarray | None = None, end_nodes: Sequence[bool] = (False,),
              anchor: np.ndarray | None = None, end_check: float = 0.0) -> tuple[ChainSettings, list[dict]]:
    """Pick what the method "chain" answers on the validation split, in the style of `fit.auto_sigma`.

    The candidates are fused (`fuse` with sigma_hm), argmax, then the chain at every grid point, in that order.
    The highest share of landmarks within radius_mm wins (ties: the lower mean radial error, then the earlier
    candidate), so the chosen decoder is never below the better of fused and argmax on the validation split.

    Args:
        heatmaps_val: (N, K, H, W); xy_reg_val_hm, xy_true_val_hm: (N, K, 2) heatmap px; mm_per_hm_px: (N, 2).
        rival_sep, end_radius: ChainSettings' lengths in heatmap px (lmfusion.config.geometry), not fitted.
        lend_penalties: None = no lending, a number = lending at that log penalty.
        trusts: trust_regressor values to try; True needs reliability (K,), the regressor's measured reliability.
        end_nodes: end_node values to try; True needs anchor (N, H, W), the U-Net's sacrum maps, and a model with
            its end step.
        end_check: the end check's weight in every chain tried (ChainSettings.end_check; 0: off), not fitted.
    Returns:
        The chosen ChainSettings, and one row per candidate: {"mode", "prior_weight", "pairwise_weight",
        "n_candidates", "lend_penalty", "trust_regressor", "end_node", "end_check", "sdr", "mre_mm", "chosen"}.
    """
    inputs = chain.check_inputs(heatmaps_val, xy_reg_val_hm, mm_per_hm_px, sigma_hm, model)
    xy_true = np.asarray(xy_true_val_hm, np.float64)
    grid = {"prior_weights": prior_weights, "pairwise_weights": pairwise_weights,
            "candidate_counts": candidate_counts, "lend_penalties": lend_penalties, "trusts": trusts,
            "end_nodes": end_nodes}
    if len(inputs.heatmaps) == 0 or xy_true.shape != inputs.xy_reg.shape or any(len(v) == 0 for v in grid.values()):
        raise DataError(f"chain fit: needs N >= 1 val studies with truth {inputs.xy_reg.shape} and non-empty grids")
    if any(trusts) and reliability is None:
        raise DataError("chain fit: trust_regressor needs the regressor's reliability per landmark")
    if any(end_nodes) and (anchor is None or len(anchor) != len(inputs.heatmaps) or not model.has_end):
        raise DataError("chain fit: the end node needs the U-Net's sacrum maps of the val split and the model's end "
                        "step")
    grid["reliability"], grid["anchor"], grid["end_check"] = reliability, anchor, end_check
    table, options, keys = [], [], []
    for s, xy in _grid(inputs, grid, min_product, rival_sep, end_radius):
        err = radial_mm(xy, xy_true, inputs.mm)  # (N, K)
        rate, mre = float(np.mean(err <= radius_mm)), float(np.nanmean(err))
        row = {k: v if s.mode == "chain" else None for k, v in s.to_dict().items()
               if k not in ("rival_sep", "end_radius")}
        table.append({**row, "mode": s.mode, "sdr": round(rate, 4), "mre_mm": round(mre, 4), "chosen": False})
        options.append(s)
        keys.append((-rate, mre if np.isfinite(mre) else np.inf))
    best = min(range(len(keys)), key=keys.__getitem__)  # min keeps the earliest on ties
    table[best]["chosen"] = True
    return options[best], table


def fit_flag_threshold(scores_val: np.ndarray, wrong_val: np.ndarray, rate: float = 0.05,
                       budget: float = 1.0) -> float | None:
    """Threshold of a level flag `score < threshold` (the chain's margin or its end fit) from (N,) val scores and
    (N,) bool wrong studies.

    Rule: with wrong studies on val, among the thresholds just above a wrong study's score that flag at most `budget`
    of the right studies, the one that maximises (share of wrong studies flagged - share of right ones flagged), the
    lowest on ties; without wrong studies, or when every such threshold flags more right ones than the budget (a
    score that does not separate them on val), the `rate` quantile of the right studies' finite scores (that share
    of them flagged). An infinite score is never flagged; None (flag nothing) when no finite score is left.
    """
    m, wrong = np.asarray(scores_val, np.float64), np.asarray(wrong_val, bool)
    if m.shape != wrong.shape or m.ndim != 1:
        raise DataError(f"flag threshold: expected (N,) scores and flags, got {m.shape}, {wrong.shape}")
    cuts = np.unique(np.nextafter(m[wrong & np.isfinite(m)], np.inf))  # sorted: argmax keeps the lowest on ties
    if cuts.size:
        caught = (m[wrong][None] < cuts[:, None]).mean(1)
        false = (m[~wrong][None] < cuts[:, None]).mean(1) if (~wrong).any() else np.zeros(len(cuts))
        within = false <= budget
        if within.any():
            return float(cuts[within][np.argmax((caught - false)[within])])
    right = m[~wrong & np.isfinite(m)]
    return float(np.quantile(right, rate)) if right.size else None


def regressor_reliability(xy_reg_hm: np.ndarray, xy_true_hm: np.ndarray, mm_per_hm_px: np.ndarray,
                          radius_mm: float) -> np.ndarray:
    """(K,) the share of (N, K, 2) regressed landmarks within radius_mm of the truth (a landmark without truth is a
    miss), floored at 1 / (N + 1): what the chain's regressed candidate may count on."""
    err = radial_mm(xy_reg_hm, xy_true_hm, mm_per_hm_px)  # (N, K)
    return np.maximum((err <= radius_mm).mean(0), 1.0 / (len(err) + 1))
