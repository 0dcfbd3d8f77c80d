"""The params sections of data, preprocessing, decoding, evaluation and the report, as frozen dataclasses (the
training sections are `lmfusion.config.training`). Each `validate(section)` raises a ParamError naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from lmfusion.errors import ParamError

LANDMARKS = ("T12-L1", "L1", "L1-L2", "L2", "L2-L3", "L3", "L3-L4", "L4", "L4-L5", "L5", "L5-S1")
FORMAT_ALIASES = {"challenge": "tianchi"}  # data.format's other names -> the one every reader and stage uses
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
    # tianchi: the spinal disease challenge's layout (read by data/readers/tianchi.py); challenge is its alias
    format: Literal["tianchi", "challenge", "csv", "rsna2024"] = "tianchi"
    path: str = "data"
    on_invalid: Literal["skip", "error"] = "skip"

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", FORMAT_ALIASES.get(self.format, self.format))  # one name downstream

    def validate(self, s: str) -> None:
        _check(bool(self.path), f"{s}.path", "a non-empty path", self.path)


@dataclass(frozen=True)
class PrepareConfig:
    unet_size: int = 256
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
    sigma: float = 2.0  # Gaussian sigma of the targets, in heatmap (= U-Net input) pixels

    def validate(self, s: str) -> None:
        _check(0.3 <= self.sigma <= 64, f"{s}.sigma", "a number of heatmap pixels in 0.3..64", self.sigma)


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

    def validate(self, s: str) -> None:
        _check(self.translate_x >= 0, f"{s}.translate_x", ">= 0", self.translate_x)
        _check(self.translate_y >= 0, f"{s}.translate_y", ">= 0", self.translate_y)
        _check(0 <= self.rotate_deg <= 180, f"{s}.rotate_deg", "in 0..180", self.rotate_deg)
        lo, hi = self.scale_range
        _check(0 < lo <= hi, f"{s}.scale_range", "two numbers 0 < low <= high", list(self.scale_range))
        _check(self.reference_size >= 1, f"{s}.reference_size", ">= 1", self.reference_size)
        _check(self.max_tries >= 1, f"{s}.max_tries", ">= 1", self.max_tries)


@dataclass(frozen=True)
class FusionConfig:
    sigma: Union[float, Literal["auto"]] = "auto"  # prior sigma in heatmap pixels, or fitted on val residuals
    min_product: float = 1e-4  # peak of prior x heatmap below this: fall back to the regressed coordinate
    auto_scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
    # the method "gated": the prior only where the heatmap is ambiguous (rival peak >= gate x the top peak)
    gate: Union[float, Literal["auto"]] = "auto"  # auto: fitted on val over gate_ratios (0 = fused, inf = argmax)
    gate_ratios: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
    gate_sep: float = 6.0  # heatmap px: a rival peak nearer the top one than this is the same peak

    def validate(self, s: str) -> None:
        if self.sigma != "auto":
            _check(0 < self.sigma <= 1e4, f"{s}.sigma", "'auto' or a number of heatmap pixels > 0", self.sigma)
        _check(0 <= self.min_product < 1, f"{s}.min_product", "in [0, 1)", self.min_product)
        _check(len(self.auto_scales) >= 1 and min(self.auto_scales) > 0, f"{s}.auto_scales",
               "a non-empty list of numbers > 0", list(self.auto_scales))
        _check(self.gate == "auto" or self.gate >= 0, f"{s}.gate", "'auto' or a ratio >= 0 (inf: never)", self.gate)
        _check(len(self.gate_ratios) >= 1 and min(self.gate_ratios) >= 0, f"{s}.gate_ratios",
               "a non-empty list of ratios >= 0", list(self.gate_ratios))
        _check(self.gate_sep > 0, f"{s}.gate_sep", "> 0 heatmap px", self.gate_sep)


@dataclass(frozen=True)
class ChainConfig:
    """The chain decode: each weight and the candidate count either fixed or `auto` (fitted on val over its grid)."""

    unit: Literal["mm", "spine"] = "mm"  # units of the neighbour displacement model
    prior_weight: Union[float, Literal["auto"]] = "auto"  # weight of the log fusion prior in the unary score
    pairwise_weight: Union[float, Literal["auto"]] = "auto"  # weight of the displacement log-density
    candidates: Union[int, Literal["auto"]] = "auto"  # heatmap peaks per landmark (the regressed point is added)
    prior_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    pairwise_weights: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25)
    candidate_counts: tuple[int, ...] = (4, 8)
    lend_penalty: Union[float, None] = None  # null: no lending of the same-kind neighbours' peaks
    min_sep: float = 6.0  # heatmap px: the margin's rival configuration moves every landmark at least this far
    margin_threshold: Union[float, Literal["auto"]] = "auto"  # level_uncertain when the margin is below it
    # the regressed candidate scores at least the regressor's val reliability x the channel's top peak: auto
    # (fitted on val, with and without), true or false
    trust_regressor: Union[bool, Literal["auto"]] = "auto"

    def validate(self, s: str) -> None:
        for k in ("prior_weight", "pairwise_weight", "margin_threshold"):
            v = getattr(self, k)
            _check(v == "auto" or v >= 0, f"{s}.{k}", "'auto' or a number >= 0", v)
        _check(self.candidates == "auto" or self.candidates >= 1, f"{s}.candidates", "'auto' or an integer >= 1",
               self.candidates)
        for k in ("prior_weights", "pairwise_weights"):
            v = getattr(self, k)
            _check(len(v) >= 1 and min(v) >= 0, f"{s}.{k}", "a non-empty list of numbers >= 0", list(v))
        _check(len(self.candidate_counts) >= 1 and min(self.candidate_counts) >= 1, f"{s}.candidate_counts",
               "a non-empty list of integers >= 1", list(self.candidate_counts))
        _check(self.lend_penalty is None or self.lend_penalty >= 0, f"{s}.lend_penalty", "null or a number >= 0",
               self.lend_penalty)
        _check(self.min_sep > 0, f"{s}.min_sep", "> 0", self.min_sep)

    def grid(self) -> dict[str, tuple]:
        """The values fit_chain tries: a fixed param is a grid of one."""
        pick = lambda fixed, values: values if fixed == "auto" else (fixed,)  # noqa: E731
        return {"prior_weights": pick(self.prior_weight, self.prior_weights),
                "pairwise_weights": pick(self.pairwise_weight, self.pairwise_weights),
                "candidate_counts": pick(self.candidates, self.candidate_counts),
                "lend_penalties": (self.lend_penalty,),
                "trusts": (False, True) if self.trust_regressor == "auto" else (self.trust_regressor,)}


@dataclass(frozen=True)
class EvaluateConfig:
    radii: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0)  # mm
    target_radius: float = 8.0  # mm; the paper's headline radius
    n_overlays: int = 4
    n_worst: int = 4

    def validate(self, s: str) -> None:
        _check(len(self.radii) >= 1 and min(self.radii) > 0, f"{s}.radii", "a list of radii > 0 mm",
               list(self.radii))
        _check(self.target_radius in self.radii, f"{s}.target_radius", f"one of radii {list(self.radii)}",
               self.target_radius)
        _check(self.n_overlays >= 0, f"{s}.n_overlays", ">= 0", self.n_overlays)
        _check(self.n_worst >= 0, f"{s}.n_worst", ">= 0", self.n_worst)


@dataclass(frozen=True)
class ReportConfig:
    sigma_sweep: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

    def validate(self, s: str) -> None:
        _check(len(self.sigma_sweep) >= 1 and min(self.sigma_sweep) > 0, f"{s}.sigma_sweep",
               "a list of sigmas > 0", list(self.sigma_sweep))
