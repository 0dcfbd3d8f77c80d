"""Fitting the chain decode on data: the displacement model on the training split's ground truth, the weights on
the validation split (fused and plain argmax among the candidates, as `fusion.auto_sigma` does for the prior), and
the threshold of the study-level `level_uncertain` flag.

Legend: N studies, K landmarks (top to bottom); (x, y) in heatmap pixels (`_hm`) unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from lmfusion import fusion
from lmfusion.chain import (COV_REG, ChainModel, ChainSettings, candidates, chain_length, checked_inputs,
                            pair_terms, scan_peaks, take, unary_scores, viterbi)
from lmfusion.coords import radial_mm
from lmfusion.errors import DataError


def fit_chain_model(xy: np.ndarray, spacing: np.ndarray, unit: str = "mm") -> ChainModel:
    """Mean and covariance of each consecutive step, from the training split's ground truth.

    Args:
        xy: (N, K, 2) ground-truth landmarks in original pixels; NaN landmarks are left out of their steps.
        spacing: (N, 2) mm per pixel in x and y.
        unit: "mm" or "spine" (steps divided by the study's own ground-truth chain length).
    """
    xy, spacing = np.asarray(xy, np.float64), np.asarray(spacing, np.float64)
    if xy.ndim != 3 or xy.shape[1] < 2 or xy.shape[2] != 2 or spacing.shape != (len(xy), 2):
        raise DataError(f"chain model fit: expected (N, K >= 2, 2) landmarks and (N, 2) spacing, got {xy.shape}, "
                        f"{spacing.shape}")
    step = np.diff(xy, axis=1) * spacing[:, None]  # (N, K-1, 2) mm
    if unit == "spine":
        step = step / chain_length(xy, spacing)[:, None, None]
    ok = np.isfinite(step).all(-1)  # (N, K-1)
    count = ok.sum(0)
    if np.any(count == 0):
        raise DataError("chain model fit: a pair of consecutive landmarks has no study with both annotated")
    mean = np.where(ok[..., None], step, 0).sum(0) / count[:, None]  # (K-1, 2)
    r = np.where(ok[..., None], step - mean, 0)
    cov = np.einsum("nki,nkj->kij", r, r) / count[:, None, None]  # (K-1, 2, 2)
    reg = (COV_REG * np.linalg.norm(mean, axis=-1).mean()) ** 2
    return ChainModel(mean=mean, cov=cov + (reg if reg > 0 else 1.0) * np.eye(2), unit=unit)


def _grid(heatmaps: np.ndarray, xy_reg: np.ndarray, mm: np.ndarray, sigma: np.ndarray, length: np.ndarray,
          model: ChainModel, grid: dict, min_product: float, min_sep: float
          ) -> Iterator[tuple[ChainSettings, np.ndarray]]:
    """(settings, (N, K, 2) landmarks) for fused, argmax, then every chain grid point; one heatmap scan for all."""
    for mode, s in (("fused", sigma), ("argmax", np.full_like(sigma, np.inf))):
        yield ChainSettings(mode=mode, min_sep=min_sep), fusion.fuse(heatmaps, xy_reg, s, min_product).xy_hm
    peaks = scan_peaks(heatmaps, xy_reg, max(grid["candidate_counts"]), min_product)
    for n in grid["candidate_counts"]:
        for lend in grid["lend_penalties"]:
            c = candidates(peaks, xy_reg, n, lend is not None)
            pair = pair_terms(c.xy, mm, length, model)  # (N, K-1, M, M), scaled per pairwise weight below
            for pw in grid["prior_weights"]:
                unary = unary_scores(c, xy_reg, sigma, pw, lend)
                for qw in grid["pairwise_weights"]:
                    idx, _ = viterbi(unary, qw * pair)
                    yield ChainSettings("chain", pw, qw, n, lend, min_sep), take(c.xy, idx)


def fit_chain(heatmaps_val: np.ndarray, xy_reg_val_hm: np.ndarray, xy_true_val_hm: np.ndarray,
              mm_per_hm_px: np.ndarray, sigma_hm: np.ndarray, model: ChainModel, prior_weights: Sequence[float],
              pairwise_weights: Sequence[float], candidate_counts: Sequence[int], radius_mm: float,
              min_product: float, lend_penalties: Sequence[float | None] = (None,),
              min_sep: float = ChainSettings.min_sep
              ) -> tuple[ChainSettings, list[dict]]:
    """Pick the decoder on the validation split, in the style of fusion.auto_sigma.

    The candidates are fused (fusion.fuse with sigma_hm), argmax, then the chain at every grid point, in that order.
    The highest share of landmarks within radius_mm wins (ties: the lower mean radial error, then the earlier
    candidate), so the chosen decoder is never below the better of fused and argmax on the validation split.

    Args:
        heatmaps_val: (N, K, H, W); xy_reg_val_hm, xy_true_val_hm: (N, K, 2) heatmap px; mm_per_hm_px: (N, 2).
        lend_penalties: None = no lending, a number = lending at that log penalty.
    Returns:
        The chosen ChainSettings, and one row per candidate: {"mode", "prior_weight", "pairwise_weight",
        "n_candidates", "lend_penalty", "sdr", "mre_mm", "chosen"}.
    """
    heatmaps, xy_reg, mm, sigma, length = checked_inputs(heatmaps_val, xy_reg_val_hm, mm_per_hm_px, sigma_hm, model)
    xy_true = np.asarray(xy_true_val_hm, np.float64)
    grid = {"prior_weights": prior_weights, "pairwise_weights": pairwise_weights,
            "candidate_counts": candidate_counts, "lend_penalties": lend_penalties}
    if len(heatmaps) == 0 or xy_true.shape != xy_reg.shape or any(len(v) == 0 for v in grid.values()):
        raise DataError(f"chain fit: needs N >= 1 val studies with truth {xy_reg.shape} and non-empty grids")
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
