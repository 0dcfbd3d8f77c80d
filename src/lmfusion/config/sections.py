"""The params sections every stage may read: base, data, prepare, heatmap and augment, as frozen dataclasses (the
training sections are `lmfusion.config.training`, the decoding ones `lmfusion.config.decoding`). Each
`validate(section)` raises a ParamError naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lmfusion.errors import ParamError

LANDMARKS = ("T12-L1", "L1", "L1-L2", "L2", "L2-L3", "L3", "L3-L4", "L4", "L4-L5", "L5", "L5-S1")
PRETRAINED = "synthetic"  # train_*.weights: start from the synthetic pretraining's model


def _check(ok: bool, key: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ParamError(f"param {key}: must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class BaseConfig:
    seed: int = 0
    landmarks: tuple[str, ...] = LANDMARKS

    def validate(self, s: str) -> None:
        _check(self.seed >= 0, f"{s}.seed", "an integer >= 0", self.seed)
        _check(len(self.landmarks) >= 1, f"{s}.landmarks", "a non-empty list of names", self.landmarks)
        _check(len(set(self.landmarks)) == len(self.landmarks), f"{s}.landmarks", "unique names", self.landmarks)


@dataclass(frozen=True)
class DataConfig:
    # the names and aliases of lmfusion.data.readers.READERS, which read_dataset resolves (tests/test_readers.py
    # checks that the two agree): spelled out here so that loading params imports no reader
    format: Literal["tianchi", "challenge", "csv", "rsna2024"] = "tianchi"
    path: str = "data"
    on_invalid: Literal["skip", "error"] = "skip"

    def validate(self, s: str) -> None:
        _check(bool(self.path), f"{s}.path", "a non-empty path", self.path)


@dataclass(frozen=True)
class PrepareConfig:
    unet_size: int = 192
    regressor_size: int = 128
    window: tuple[float, float] = (0.5, 99.5)
    equalize: Literal["hist", "clahe", "none"] = "hist"
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    val_size: int = 30
    test_size: int = 50

    def validate(self, s: str) -> None:
        for k in ("unet_size", "regressor_size"):
            v = getattr(self, k)
            _check(32 <= v <= 2048 and v % 32 == 0, f"{s}.{k}", "a multiple of 32 in 32..2048", v)
        lo, hi = self.window
        _check(0 <= lo < hi <= 100, f"{s}.window", "two percentiles 0 <= low < high <= 100", list(self.window))
        _check(self.clahe_clip > 0, f"{s}.clahe_clip", "> 0", self.clahe_clip)
        _check(self.clahe_grid >= 1, f"{s}.clahe_grid", ">= 1", self.clahe_grid)
        _check(self.val_size >= 1, f"{s}.val_size", ">= 1", self.val_size)
        _check(self.test_size >= 1, f"{s}.test_size", ">= 1", self.test_size)


@dataclass(frozen=True)
class HeatmapConfig:
    # the lengths in pixels (sigma here, fusion.sigma and gate_sep, chain.rival_sep and end_radius) are given in
    # pixels of a reference_size heatmap; lmfusion.config.geometry scales them to the U-Net's (prepare.unet_size)
    sigma: float = 2.0  # Gaussian sigma of the targets
    reference_size: int = 256

    def validate(self, s: str) -> None:
        _check(0.3 <= self.sigma <= 64, f"{s}.sigma", "a number of pixels in 0.3..64 (at reference_size)", self.sigma)
        _check(self.reference_size >= 1, f"{s}.reference_size", "a heatmap side in pixels >= 1", self.reference_size)


@dataclass(frozen=True)
class InferConfig:
    # test-time zooms: both networks also see the input zoomed about its centre by each factor; their outputs are
    # mapped back and averaged (a zoomed-in view's heatmaps only where it sees). (1.0,): one plain pass
    zooms: tuple[float, ...] = (1.0,)

    def validate(self, s: str) -> None:
        _check(len(self.zooms) >= 1 and all(0.5 <= z <= 2.0 for z in self.zooms) and len(set(self.zooms)) ==
               len(self.zooms), f"{s}.zooms", "distinct factors in 0.5..2.0 (1.0 alone: no test-time zoom)",
               list(self.zooms))


@dataclass(frozen=True)
class AugmentConfig:
    translate: bool = True
    rotate: bool = True
    scale: bool = True
    translate_x: float = 35.0  # max |shift| in px at reference_size (the paper's 512 px input)
    translate_y: float = 8.0
    rotate_deg: float = 25.0
    scale_range: tuple[float, float] = (0.7, 1.3)
    reference_size: int = 512
    max_tries: int = 10  # redraws when a landmark would leave the image, then identity
    intensity: bool = True  # also a random gamma, blur and noise per sample (data/augment.py)
    gamma_range: tuple[float, float] = (0.6, 1.6)  # the gamma drawn log-uniformly in it
    blur_sigma: float = 2.0  # max Gaussian blur sigma in px at reference_size
    noise_std: float = 0.04  # max Gaussian noise, a fraction of the full intensity range

    def validate(self, s: str) -> None:
        _check(self.translate_x >= 0, f"{s}.translate_x", ">= 0", self.translate_x)
        _check(self.translate_y >= 0, f"{s}.translate_y", ">= 0", self.translate_y)
        _check(0 <= self.rotate_deg <= 180, f"{s}.rotate_deg", "in 0..180", self.rotate_deg)
        lo, hi = self.scale_range
        _check(0 < lo <= hi, f"{s}.scale_range", "two numbers 0 < low <= high", list(self.scale_range))
        _check(self.reference_size >= 1, f"{s}.reference_size", ">= 1", self.reference_size)
        _check(self.max_tries >= 1, f"{s}.max_tries", ">= 1", self.max_tries)
        g_lo, g_hi = self.gamma_range
        _check(0 < g_lo <= g_hi, f"{s}.gamma_range", "two numbers 0 < low <= high", list(self.gamma_range))
        _check(self.blur_sigma >= 0, f"{s}.blur_sigma", ">= 0 px", self.blur_sigma)
        _check(0 <= self.noise_std <= 1, f"{s}.noise_std", "in 0..1", self.noise_std)
