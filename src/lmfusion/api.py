"""The public API for new images: `LandmarkPredictor` chains preprocess -> network outputs -> decode.

The decode is the evaluate stage's own (`lmfusion.decoding.LandmarkDecoder`), so the API and the evaluation give the
same coordinates for the same image. `predict_batch` takes several images (the slices of a series) through one
decode; `predict` is its batch of one. Legend: N images, K landmarks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmfusion.config import PrepareConfig, load_params
from lmfusion.config.decoding import FusionConfig
from lmfusion.config.geometry import to_heatmap_px
from lmfusion.data.preprocess import preprocess
from lmfusion.decoding import DECODER_FILE, METHODS, Decoded, LandmarkDecoder
from lmfusion.decoding.decoder import CHECK_ANSWERS
from lmfusion.errors import DataError, ParamError
from lmfusion.nets.infer import Networks

MODEL_FILES = {"regressor": Path("models/xception/model.pt"), "heatmap": Path("models/unet/model.pt")}
MODELS_DIR = Path("models")  # the decoder is MODELS_DIR / DECODER_FILE
SPACING_RANGE_MM = (0.2, 2.0)  # plausible in-plane spacing of sagittal lumbar MRI
LOW_CONFIDENCE = 0.1  # U-Net probability at the chosen point below which a landmark is flagged
MIN_SIDE_PX = 32  # an image narrower or shorter than this cannot show a lumbar spine: refused, not guessed at
BATCH_SIZE = 16  # images per forward pass in predict_batch


@dataclass
class Prediction:
    """Landmarks of one image."""

    names: tuple[str, ...]
    xy: np.ndarray  # (K, 2) original pixels
    spacing: tuple[float, float]  # (x, y) mm per pixel
    confidence: np.ndarray  # (K,)
    method: str
    flags: dict[str, Any] = field(default_factory=dict)
    level_margin: float = float("nan")  # the chain's margin over its best rival chain (NaN without a chain model)
    level_end_fit: float = float("nan")  # the chain's score over the steps at its end (NaN without a chain model)
    level_check: float = float("nan")  # the heatmap-led chain's level step from the level check's chain (NaN: none)
    check_answered: bool = False  # a chain method's landmarks are the level check's (the maps were unsure)

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
            "level_margin": _json_margin(self.level_margin),
            "level_end_fit": _json_margin(self.level_end_fit),
            "level_check": None if np.isnan(self.level_check) else int(self.level_check),
            "check_answered": self.check_answered,
            "flags": self.flags,
        }


def _json_margin(margin: float) -> float | str | None:
    """Strict JSON: "inf" when no rival chain exists, null without a chain model (a margin or an end fit)."""
    return None if np.isnan(margin) else "inf" if np.isinf(margin) else round(float(margin), 4)


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

    def __init__(self, networks: Networks, prepare: PrepareConfig, decoder: LandmarkDecoder,
                 method: str | None = None, zooms: tuple[float, ...] = (1.0,)):
        method = method or decoder.best_method
        if method not in METHODS:
            raise ParamError(f"method {method!r}: must be one of {', '.join(METHODS)}")
        self.networks = networks
        self.prepare = prepare
        self.decoder = decoder
        self.method = method
        self.names = networks.names
        self.zooms = tuple(zooms)  # infer.zooms: the test-time zooms (Networks.outputs)
        # one forward pass at a time: torch already spreads a batch over the cores (and the GPU's memory), and
        # `lmfusion predict --workers` calls from several threads
        self._forward = threading.Lock()

    @classmethod
    def from_pipeline(cls, root: str | os.PathLike = ".", *, sigma: float | None = None, method: str | None = None,
                      device: str | None = None) -> LandmarkPredictor:
        """Load the models, params.yaml and the fitted decoder from a pipeline folder (or a downloaded copy).

        method: one of decoding.METHODS; None takes the one that was best on the validation split.
        sigma: a fixed fusion prior sigma instead of the fitted one, like fusion.sigma in pixels of a
            heatmap.reference_size heatmap (scaled to the U-Net's as the evaluate stage scales fusion.sigma).
        """
        root = Path(root)
        params = load_params(root / "params.yaml", ("prepare", "heatmap", "infer", "fusion"))
        missing = [str(root / p) for p in MODEL_FILES.values() if not (root / p).is_file()]
        if missing:
            raise DataError(f"{missing[0]}: model missing; train it first (dvc repro) or give another pipeline")
        networks = Networks.load(root / MODEL_FILES["regressor"], root / MODEL_FILES["heatmap"], device)
        fusion_cfg: FusionConfig = params["fusion"]
        chosen = sigma if sigma is not None else fusion_cfg.sigma
        try:
            fitted = LandmarkDecoder.load(root / MODELS_DIR / DECODER_FILE)
        except (OSError, ValueError, KeyError):
            fitted = None
        if chosen == "auto" and fitted is None:
            raise DataError(f"{root / MODELS_DIR / DECODER_FILE}: missing or unreadable; fusion.sigma is auto, so "
                            "run the evaluate stage first (dvc repro) or pass a sigma")
        decoder = fitted
        if chosen != "auto":  # a fixed prior sigma; the fitted chain (when there is one) is kept
            px = to_heatmap_px(float(chosen), networks.hm_size, params["heatmap"].reference_size)
            sigma_hm = np.full(len(networks.names), px)
            decoder = (fitted.replace(sigma_hm=sigma_hm) if fitted is not None
                       else LandmarkDecoder(sigma_hm, fusion_cfg.min_product))
        return cls(networks, params["prepare"], decoder, method, params["infer"].zooms)

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
        return self.predict_batch([pixels], [spacing])[0]

    def predict_batch(self, pixels_list: Sequence[np.ndarray],
                      spacings: Sequence[tuple[float, float] | None] | None = None,
                      zooms: tuple[float, ...] | None = None) -> list[Prediction]:
        """Landmarks of several 2-D grayscale images (any sizes and dtypes): the networks run on BATCH_SIZE images at
        a time and one decode takes them all.

        Args:
            pixels_list: N (H, W) images.
            spacings: N (x, y) mm per pixel, None for an image without one (1.0 mm is assumed and flagged);
                None: none known.
            zooms: the test-time zooms; None: the pipeline's (infer.zooms), (1.0,): one plain pass.
        """
        images = [_checked(p) for p in pixels_list]
        if not images:
            return []
        given = list(spacings) if spacings is not None else [None] * len(images)
        if len(given) != len(images):
            raise DataError(f"{len(images)} images but {len(given)} spacings: give one spacing (or None) per image")
        spacing = np.array([s if s is not None else (1.0, 1.0) for s in given], np.float64)  # (N, 2)
        sizes = np.array([(p.shape[1], p.shape[0]) for p in images], np.float64)  # (N, 2) width, height
        decoded = self.decoder.decode(*self._outputs(images, self.zooms if zooms is None else zooms), sizes, spacing)
        return [self.prediction(decoded, n, (float(spacing[n, 0]), float(spacing[n, 1])), given[n] is not None)
                for n in range(len(images))]

    def _outputs(self, images: list[np.ndarray], zooms: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The networks' raw outputs (N, K, 2) and (N, K[+1], H, W), one forward pass per BATCH_SIZE images and
        zoom."""
        coords, heatmaps = [], []
        for start in range(0, len(images), BATCH_SIZE):
            hm, reg = zip(*(self.preprocess(p) for p in images[start:start + BATCH_SIZE]))
            with self._forward:
                c, h = self.networks.outputs(np.stack(hm), np.stack(reg), batch_size=BATCH_SIZE, zooms=zooms)
            coords.append(c)
            heatmaps.append(h)
        return np.concatenate(coords), np.concatenate(heatmaps)

    def prediction(self, decoded: Decoded, n: int, spacing: tuple[float, float], spacing_given: bool) -> Prediction:
        """Row n of a decode (this predictor's `decoder.decode`) as a Prediction with its flags; `spacing_given`:
        the spacing came from the image's header or the caller, not assumed."""
        xy, confidence = decoded.xy[self.method][n], decoded.scores[self.method][n]
        flags = quality_flags(self.names, xy, confidence, spacing, spacing_given)
        flags["fallback"] = [name for name, f in zip(self.names, decoded.fallback[n]) if f]
        flags["level_uncertain"] = bool(decoded.level_uncertain[n])
        return Prediction(self.names, xy, spacing, confidence, self.method, flags, float(decoded.margin[n]),
                          float(decoded.end_fit[n]), float(decoded.level_check[n]),
                          bool(decoded.check_answered[n]) and self.method in CHECK_ANSWERS)


def _checked(pixels: np.ndarray) -> np.ndarray:
    """`pixels` as an array, refused (DataError) unless 2-D and large enough to hold a spine."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.size == 0:
        raise DataError(f"expected a 2-D grayscale image, got shape {pixels.shape}")
    if min(pixels.shape) < MIN_SIDE_PX:
        raise DataError(f"image of {pixels.shape[1]}x{pixels.shape[0]} px is too small to hold a spine (each "
                        f"side must be at least {MIN_SIDE_PX} px)")
    return pixels
