"""Evaluation on cached network outputs: fit the fusion sigma on val, decode test with every method, measure in mm.

Legend: N images, K landmarks, H x W heatmap pixels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmfusion import fusion, metrics
from lmfusion.config import EvaluateConfig, FusionConfig
from lmfusion.coords import from_norm, rescale
from lmfusion.data.prepared import Prepared
from lmfusion.errors import DataError
from lmfusion.decode import METHODS, Decoded, LandmarkDecoder


@dataclass(frozen=True)
class SplitOutputs:
    """Cached outputs of the infer stage for one split, with the matching ground truth."""

    rows: np.ndarray  # (N,) indices into the prepared data
    coords_norm: np.ndarray  # (N, K, 2)
    heatmaps: np.ndarray  # (N, K, H, W) float16 probabilities
    truth: np.ndarray  # (N, K, 2) original pixels
    sizes: np.ndarray  # (N, 2) original (width, height)
    spacing: np.ndarray  # (N, 2) mm per original pixel

    @property
    def hm_shape(self) -> tuple[int, int]:
        return self.heatmaps.shape[-2], self.heatmaps.shape[-1]

    def truth_hm(self) -> np.ndarray:
        """(N, K, 2) ground truth in heatmap pixels."""
        h, w = self.hm_shape
        return rescale(self.truth, (self.sizes[:, None, 0], self.sizes[:, None, 1]), (w, h))

    def regressed_hm(self) -> np.ndarray:
        h, w = self.hm_shape
        return from_norm(self.coords_norm, w, h)

    def mm_per_hm_px(self) -> np.ndarray:
        """(N, 2) mm per heatmap pixel in x and y."""
        h, w = self.hm_shape
        return self.spacing * self.sizes / np.array([w, h], dtype=np.float64)


def load_split(predictions_dir: str | os.PathLike, split: str, data: Prepared) -> SplitOutputs:
    path = Path(predictions_dir) / f"{split}.npz"
    try:
        with np.load(path) as z:
            rows, coords, heatmaps = z["rows"], z["coords_norm"], z["heatmaps"]
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"{path}: missing or unreadable predictions ({e}); run the infer stage") from None
    if len(rows) and rows.max() >= len(data.index):
        raise DataError(f"{path}: rows do not match the prepared data; rerun infer (dvc repro)")
    return SplitOutputs(rows=rows, coords_norm=coords, heatmaps=heatmaps, truth=data.landmarks[rows],
                        sizes=data.sizes[rows], spacing=data.spacing[rows])


def load_metas(outputs_dir: str | os.PathLike) -> dict[str, dict]:
    """The trained models' metas as the infer stage recorded them ({} when missing: nothing to link)."""
    try:
        return json.loads((Path(outputs_dir) / "networks.json").read_text())
    except (OSError, ValueError):
        return {}


def fit_decoder(val: SplitOutputs, cfg: FusionConfig, target_radius: float) -> tuple[LandmarkDecoder, dict]:
    """The decoder with its prior sigma: the fixed param, or `auto` fitted on the validation split; and the fit."""
    k = val.coords_norm.shape[1]
    if cfg.sigma != "auto":
        fixed = LandmarkDecoder(np.full(k, float(cfg.sigma)), cfg.min_product)
        return fixed, {"mode": "fixed", "sigma_hm": float(cfg.sigma)}
    if len(val.rows) == 0:
        raise DataError("fusion.sigma is auto but the validation split is empty; set prepare.val_size >= 1")
    sigma, table = fusion.auto_sigma(val.heatmaps, val.regressed_hm(), val.truth_hm(), val.mm_per_hm_px(),
                                     cfg.auto_scales, target_radius, cfg.min_product)
    return LandmarkDecoder(np.asarray(sigma, dtype=np.float64), cfg.min_product), {"mode": "auto", "candidates": table}


def decode_split(split: SplitOutputs, decoder: LandmarkDecoder) -> Decoded:
    return decoder.decode(split.coords_norm, split.heatmaps, split.sizes)


def method_metrics(decoded: Decoded, split: SplitOutputs, names: tuple[str, ...], cfg: EvaluateConfig) -> dict:
    """{method: summary} for every method, plus fallback counts and the fused-over-direct improvement."""
    out: dict = {}
    for m in METHODS:
        out[m] = metrics.summarize(decoded.xy[m], split.truth, split.spacing, names, cfg.radii)
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
    return out


def sdr_curve(decoded: Decoded, split: SplitOutputs, radii: np.ndarray) -> dict[str, list[float]]:
    """Success rate at each radius (mm) per method."""
    curves = {}
    for m in METHODS:
        err = metrics.radial_errors(decoded.xy[m], split.truth, split.spacing)  # (N, K)
        curves[m] = [float((err <= r).mean()) for r in radii]
    return curves


def errors_by_method(decoded: Decoded, split: SplitOutputs) -> dict[str, np.ndarray]:
    return {m: metrics.radial_errors(decoded.xy[m], split.truth, split.spacing) for m in METHODS}
