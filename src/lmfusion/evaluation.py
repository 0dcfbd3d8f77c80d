"""Evaluation on cached network outputs: the infer stage's outputs per split, decoded by every method and measured
in mm, per landmark and per study (the decoder itself is fitted by `lmfusion.decoding.fit`).

Legend: N images, K landmarks, H x W heatmap pixels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from lmfusion import metrics
from lmfusion.config.decoding import EvaluateConfig
from lmfusion.data.prepared import Prepared
from lmfusion.decoding import METHODS, Decoded, LandmarkDecoder
from lmfusion.decoding.decoder import disagrees, split_maps
from lmfusion.decoding.outputs import SplitOutputs
from lmfusion.errors import DataError


def load_split(predictions_dir: str | os.PathLike, split: str, data: Prepared) -> SplitOutputs:
    """The infer stage's outputs of `split` (predictions_dir/<split>.npz) with its ground truth from `data`."""
    path = Path(predictions_dir) / f"{split}.npz"
    try:
        with np.load(path) as z:
            rows, coords, heatmaps = z["rows"], z["coords_norm"], z["heatmaps"]
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"{path}: missing or unreadable predictions ({e}); run the infer stage") from None
    if len(rows) and rows.max() >= len(data.index):
        raise DataError(f"{path}: rows do not match the prepared data; rerun infer (dvc repro)")
    heatmaps, anchor = split_maps(heatmaps, coords.shape[1])
    return SplitOutputs(rows=rows, coords_norm=coords, heatmaps=heatmaps, truth=data.landmarks[rows],
                        sizes=data.sizes[rows], spacing=data.spacing[rows], anchor=anchor)


def load_metas(outputs_dir: str | os.PathLike) -> dict[str, dict]:
    """The trained models' metas as the infer stage recorded them ({} when missing: nothing to link)."""
    try:
        return json.loads((Path(outputs_dir) / "networks.json").read_text())
    except (OSError, ValueError):
        return {}


def best_method(val_results: dict, radius: float) -> str:
    """The method with the highest share of val landmarks within `radius` (ties: more studies identified, then
    the lower mean radial error, then the earlier method)."""
    key = metrics.radius_key(radius)
    rank = {m: (-val_results[m]["sdr"][key], -(val_results[m]["study_identification"] or 0.0),
                val_results[m]["mre_mm"] if val_results[m]["mre_mm"] is not None else np.inf) for m in METHODS}
    return min(METHODS, key=rank.__getitem__)


def flag_summary(decoded: Decoded, split: SplitOutputs) -> dict:
    """How the level_uncertain flag did: wrong-level studies (any landmark of the chain on a neighbour's level)
    caught, right studies flagged."""
    wrong = metrics.wrong_level_studies(decoded.xy["chain"], split.truth, split.spacing)  # (N,)
    rates = metrics.flag_rates(decoded.level_uncertain, wrong)
    return {"wrong_level_studies": int(wrong.sum()), "flagged": int(decoded.level_uncertain.sum()),
            "check_disagrees": int(disagrees(decoded.level_check).sum()),
            "check_answered": int(decoded.check_answered.sum()),
            **{k: (round(v, 4) if v is not None and np.isfinite(v) else None) for k, v in rates.items()}}


def study_table(decoded: Decoded, split: SplitOutputs, studies: np.ndarray, radius: float) -> pd.DataFrame:
    """One row per study: its chain margin, end fit and level check, the flag, and per method the largest error (mm)
    and the level shift."""
    table = pd.DataFrame({"study": studies, "margin": np.round(decoded.margin, 4),
                          "end_fit": np.round(decoded.end_fit, 4), "level_check": decoded.level_check,
                          "check_answered": decoded.check_answered, "level_uncertain": decoded.level_uncertain})
    for m in METHODS:
        err = metrics.radial_errors(decoded.xy[m], split.truth, split.spacing)  # (N, K)
        table[f"{m}_max_mm"] = np.round(err.max(axis=1), 3) if err.size else []
        table[f"{m}_identified"] = metrics.study_identified(err, radius)
        table[f"{m}_level_shift"] = metrics.level_shift(decoded.xy[m], split.truth, split.spacing)
    return table


def decode_split(split: SplitOutputs, decoder: LandmarkDecoder) -> Decoded:
    return decoder.decode(split.coords_norm, split.heatmaps, split.sizes, split.spacing, split.anchor)


def method_metrics(decoded: Decoded, split: SplitOutputs, names: tuple[str, ...], cfg: EvaluateConfig) -> dict:
    """{method: summary} for every method, plus fallback counts and the fused-over-direct improvement."""
    out: dict = {}
    for m in METHODS:
        out[m] = metrics.summarize(decoded.xy[m], split.truth, split.spacing, names, cfg.radii)
        out[m].update(study_metrics(decoded.xy[m], split, cfg.target_radius))
    key = metrics.radius_key(cfg.target_radius)
    direct, fused = out["direct"]["sdr"][key], out["fused"]["sdr"][key]
    out["fused_vs_direct"] = {
        "radius_mm": cfg.target_radius,
        "direct_sdr": direct,
        "fused_sdr": fused,
        "relative_improvement": round(metrics.relative_improvement(direct, fused), 4) if direct > 0 else None,
    }
    out["fallbacks"] = int(decoded.fallback.sum())
    out["landmarks"] = int(decoded.fallback.size)
    out["prior_used"] = int(decoded.prior_used.sum())
    out["prior_effect"] = prior_effect(out, names, key)
    return out


def prior_effect(results: dict, names: tuple[str, ...], key: str) -> dict[str, dict[str, float]]:
    """Per landmark, what the fusion prior did to the share within the target radius (`key`, e.g. "8mm"): fused
    minus argmax (the paper's prior everywhere) and gated minus argmax (the prior where the heatmap is ambiguous)."""
    def sdr(m: str, n: str) -> float:
        return results[m]["per_landmark"][n][f"sdr_{key}"]
    return {n: {f"{m}_minus_argmax": round(sdr(m, n) - sdr("argmax", n), 4) for m in ("fused", "gated")}
            for n in names}


def study_metrics(xy: np.ndarray, split: SplitOutputs, radius: float) -> dict:
    """Study-level figures of one method: the share of studies with every landmark within `radius` (mm) and the
    number of studies predicted as a whole-level shift (most landmarks nearer the truth two places up or down)."""
    identified = metrics.study_identified(metrics.radial_errors(xy, split.truth, split.spacing), radius)  # (N,)
    shifts = metrics.level_shift(xy, split.truth, split.spacing)  # (N,)
    return {"study_identification": round(float(identified.mean()), 4) if len(identified) else None,
            "studies_identified": int(identified.sum()), "level_shifts": int(np.count_nonzero(shifts))}


def sdr_curve(decoded: Decoded, split: SplitOutputs, radii: np.ndarray) -> dict[str, list[float]]:
    """Success rate at each radius (mm) per method."""
    curves = {}
    for m in METHODS:
        err = metrics.radial_errors(decoded.xy[m], split.truth, split.spacing)  # (N, K)
        curves[m] = [float((err <= r).mean()) for r in radii]
    return curves
