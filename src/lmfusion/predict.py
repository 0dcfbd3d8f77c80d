"""LandmarkPredictor: both networks, preprocessing and the one decode path (direct, argmax, fused).

The predict stage calls `Networks.outputs` on the prepared splits, the evaluate stage calls `decode_outputs` on those
cached outputs, and `LandmarkPredictor.predict` chains preprocess -> outputs -> decode for a new image, so the
evaluation and the API give the same coordinates for the same image.

Legend: N images, K landmarks, S network input side, H x W heatmap pixels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmfusion import fusion
from lmfusion.fusion import METHODS
from lmfusion.config import FusionConfig, PrepareConfig, load_params
from lmfusion.coords import from_norm, rescale
from lmfusion.data.datasets import to_input
from lmfusion.data.preprocess import preprocess
from lmfusion.errors import DataError, ParamError
from lmfusion.models import load_model

MODEL_FILES = {"regressor": Path("models/xception/model.pt"), "heatmap": Path("models/unet/model.pt")}
FUSION_FILE = Path("models/fusion.json")
SPACING_RANGE_MM = (0.2, 2.0)  # plausible in-plane spacing of sagittal lumbar MRI
LOW_CONFIDENCE = 0.1  # U-Net probability at the chosen point below which a landmark is flagged


class Networks:
    """The two trained networks and their input sizes."""

    def __init__(self, regressor: torch.nn.Module, heatmap_net: torch.nn.Module, meta_reg: dict, meta_hm: dict,
                 device: str | None = None):
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.regressor = regressor.to(self.device).eval()
        self.heatmap_net = heatmap_net.to(self.device).eval()
        self.reg_size = int(meta_reg["input_size"])
        self.hm_size = int(meta_hm["input_size"])
        self.names = tuple(meta_reg["names"])
        if tuple(meta_hm["names"]) != self.names:
            raise DataError(f"the regressor's landmarks {self.names} differ from the heatmap network's "
                            f"{tuple(meta_hm['names'])}: retrain both from one params.yaml")
        self.meta = {"regressor": meta_reg, "heatmap": meta_hm}

    @classmethod
    def load(cls, regressor_path: str | os.PathLike, heatmap_path: str | os.PathLike,
             device: str | None = None) -> Networks:
        regressor, meta_reg = load_model(regressor_path)
        heatmap_net, meta_hm = load_model(heatmap_path)
        return cls(regressor, heatmap_net, meta_reg, meta_hm, device)

    @torch.no_grad()
    def outputs(self, hm_images: np.ndarray, reg_images: np.ndarray, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for preprocessed uint8 images (N, S_u, S_u) and (N, S_r, S_r).

        Returns coords_norm (N, K, 2) float32 and heatmaps (N, K, H, W) float16 probabilities (sigmoid); float16 is
        the outputs' one precision, so cached and fresh outputs decode identically.
        """
        coords, heatmaps = [], []
        for i in range(0, len(hm_images), batch_size):
            x_reg = to_input(reg_images[i:i + batch_size]).to(self.device)  # (n, 1, S_r, S_r)
            x_hm = to_input(hm_images[i:i + batch_size]).to(self.device)  # (n, 1, S_u, S_u)
            coords.append(self.regressor(x_reg).float().cpu().numpy())  # (n, K, 2)
            heatmaps.append(torch.sigmoid(self.heatmap_net(x_hm).float()).cpu().numpy().astype(np.float16))
        return np.concatenate(coords).astype(np.float32), np.concatenate(heatmaps)


@dataclass(frozen=True)
class Decoded:
    """Every method's landmarks in original pixels, (N, K, 2) each, with the fused peak diagnostics."""

    xy: dict[str, np.ndarray]
    confidence: np.ndarray  # (N, K) U-Net probability at the fused point
    fallback: np.ndarray  # (N, K) True where the fused product was ~0 and the regressed point was kept


def decode_outputs(coords_norm: np.ndarray, heatmaps: np.ndarray, sizes: np.ndarray, sigma_hm: np.ndarray,
                   min_product: float) -> Decoded:
    """Decode raw outputs into every method's landmarks in the original images' pixels.

    Args:
        coords_norm: (N, K, 2) regressor outputs, 0..1.
        heatmaps: (N, K, H, W) U-Net probabilities.
        sizes: (N, 2) original (width, height).
        sigma_hm: (K,) fusion prior sigma in heatmap pixels (inf: argmax, 0: direct).
        min_product: fallback threshold on the peak of prior x heatmap.
    """
    n, k, h, w = heatmaps.shape
    xy_reg_hm = from_norm(coords_norm, w, h)  # (N, K, 2)
    result = fusion.fuse_methods(heatmaps, xy_reg_hm, sigma_hm, min_product)
    src = (np.float64(w), np.float64(h))
    dst = (sizes[:, None, 0], sizes[:, None, 1])
    xy = {m: rescale(result.xy[m], src, dst) for m in METHODS}
    fused_px = np.clip(np.rint(result.xy["fused"]), 0, [w - 1, h - 1]).astype(np.int64)  # (N, K, 2)
    confidence = heatmaps[np.arange(n)[:, None], np.arange(k)[None, :], fused_px[..., 1], fused_px[..., 0]]
    return Decoded(xy=xy, confidence=confidence.astype(np.float64), fallback=result.fallback)


def sigma_to_json(sigma_hm: np.ndarray) -> list:
    """(K,) sigmas as strict JSON: an infinite sigma (plain argmax) is written "inf"."""
    return [float(s) if np.isfinite(s) else "inf" for s in sigma_hm]


def read_sigma(path: Path) -> np.ndarray:
    """The (K,) prior sigma the evaluate stage fitted, from models/fusion.json."""
    return np.asarray([float(s) for s in json.loads(Path(path).read_text())["sigma_hm"]], dtype=np.float64)


@dataclass
class Prediction:
    """Landmarks of one image."""

    names: tuple[str, ...]
    xy: np.ndarray  # (K, 2) original pixels
    spacing: tuple[float, float]  # (x, y) mm per pixel
    confidence: np.ndarray  # (K,)
    method: str
    flags: dict[str, Any] = field(default_factory=dict)

    @property
    def xy_mm(self) -> np.ndarray:
        return self.xy * np.asarray(self.spacing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "spacing_mm": list(self.spacing),
            "landmarks": [
                {"name": n, "x": round(float(p[0]), 3), "y": round(float(p[1]), 3), "x_mm": round(float(q[0]), 3),
                 "y_mm": round(float(q[1]), 3), "confidence": round(float(c), 4)}
                for n, p, q, c in zip(self.names, self.xy, self.xy_mm, self.confidence)
            ],
            "flags": self.flags,
        }


def quality_flags(names: tuple[str, ...], xy: np.ndarray, confidence: np.ndarray, spacing: tuple[float, float],
                  spacing_given: bool) -> dict[str, Any]:
    """Flags for a person to look at: low confidence, top-to-bottom order violated, implausible spacing."""
    low = [n for n, c in zip(names, confidence) if c < LOW_CONFIDENCE]
    order_violated = bool(np.any(np.diff(xy[:, 1]) <= 0))
    lo, hi = SPACING_RANGE_MM
    implausible = not all(lo <= s <= hi for s in spacing)
    return {"low_confidence": low, "order_violated": order_violated, "implausible_spacing": implausible,
            "spacing_assumed": not spacing_given}


class LandmarkPredictor:
    """Landmarks for new images with the pipeline's trained networks and fusion settings.

    >>> predictor = LandmarkPredictor.from_pipeline(".")
    >>> result = predictor.predict(pixels, spacing=(0.7, 0.7))
    """

    def __init__(self, networks: Networks, prepare: PrepareConfig, fusion_cfg: FusionConfig, sigma_hm: np.ndarray,
                 method: str = "fused"):
        if method not in ("direct", "argmax", "fused"):
            raise ParamError(f"method {method!r}: must be one of direct, argmax, fused")
        self.networks = networks
        self.prepare = prepare
        self.fusion = fusion_cfg
        self.sigma_hm = np.asarray(sigma_hm, dtype=np.float64)
        self.method = method
        self.names = networks.names

    @classmethod
    def from_pipeline(cls, root: str | os.PathLike = ".", *, sigma: float | None = None, method: str = "fused",
                      device: str | None = None) -> LandmarkPredictor:
        """Load the models, params.yaml and the fitted fusion sigma from a pipeline folder (or a downloaded copy)."""
        root = Path(root)
        params = load_params(root / "params.yaml", ("prepare", "fusion"))
        missing = [str(root / p) for p in MODEL_FILES.values() if not (root / p).is_file()]
        if missing:
            raise DataError(f"{missing[0]}: model missing; train it first (dvc repro) or give another pipeline")
        networks = Networks.load(root / MODEL_FILES["regressor"], root / MODEL_FILES["heatmap"], device)
        k = len(networks.names)
        chosen = sigma if sigma is not None else params["fusion"].sigma
        if chosen == "auto":
            try:
                sigma_hm = read_sigma(root / FUSION_FILE)
            except (OSError, ValueError, KeyError):
                raise DataError(f"{root / FUSION_FILE}: missing or unreadable; fusion.sigma is auto, so run the "
                                "evaluate stage first (dvc repro) or pass a sigma") from None
        else:
            sigma_hm = np.full(k, float(chosen))
        return cls(networks, params["prepare"], params["fusion"], sigma_hm, method)

    @classmethod
    def from_mlflow(cls, uri: str, **kwargs: Any) -> LandmarkPredictor:
        """Load from an MLflow artifact URI holding a pipeline folder (the evaluate run logs one as `pipeline`)."""
        import mlflow

        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
        except Exception as e:  # MLflow raises many types
            raise DataError(f"{uri}: could not download the pipeline from MLflow ({type(e).__name__}: {e})") from None
        return cls.from_pipeline(local, **kwargs)

    def preprocess(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The prepare stage's preprocessing at both network sizes: (S_u, S_u) and (S_r, S_r) uint8."""
        return (preprocess(pixels, self.networks.hm_size, self.prepare),
                preprocess(pixels, self.networks.reg_size, self.prepare))

    def predict(self, pixels: np.ndarray, spacing: tuple[float, float] | None = None) -> Prediction:
        """Landmarks of one 2-D grayscale image (any dtype), in its own pixels, with confidences and flags."""
        pixels = np.asarray(pixels)
        if pixels.ndim != 2 or pixels.size == 0:
            raise DataError(f"expected a 2-D grayscale image, got shape {pixels.shape}")
        hm, reg = self.preprocess(pixels)
        coords, heatmaps = self.networks.outputs(hm[None], reg[None])
        height, width = pixels.shape
        decoded = decode_outputs(coords, heatmaps, np.array([[width, height]], np.float64), self.sigma_hm,
                                 self.fusion.min_product)
        xy = decoded.xy[self.method][0]
        spacing_given = spacing is not None
        spacing = tuple(float(s) for s in (spacing or (1.0, 1.0)))
        flags = quality_flags(self.names, xy, decoded.confidence[0], spacing, spacing_given)
        flags["fallback"] = [n for n, f in zip(self.names, decoded.fallback[0]) if f]
        return Prediction(self.names, xy, spacing, decoded.confidence[0], self.method, flags)
