"""params.yaml sections as frozen dataclasses.

params.yaml is where a default is read; each section's dataclass defaults equal its values there
(tests/test_config.py checks), so a key deleted from params.yaml leaves the experiment as it was. TrainConfig's own
defaults serve only the training loop used on its own (tests, benchmarks); both training sections override them.

Every stage loads only the sections it declares in dvc.yaml. Loading rejects unknown keys, wrong types and
out-of-range values with a ParamError whose message names the key (`section.key`) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from lmfusion.errors import ParamError
from lmfusion.typecheck import coerce

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
    format: Literal["tianchi", "csv", "rsna2024"] = "tianchi"
    path: str = "data"
    on_invalid: Literal["skip", "error"] = "skip"

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
class TrainConfig:
    """Fields shared by both training stages."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    scheduler: Literal["none", "cosine", "onecycle"] = "none"
    warmup_epochs: int = 0
    early_stopping: int = 0  # patience in epochs; 0 turns it off
    num_workers: int = 0
    # null, imagenet (fetched by timm / smp into their caches), synthetic (the synthetic pretraining's model, see
    # PretrainConfig) or a local file
    weights: Union[str, None] = None
    freeze_epochs: int = 0  # the backbone / encoder is held still for these first epochs (a pretrained start)

    def validate(self, s: str) -> None:
        _check(self.epochs >= 1, f"{s}.epochs", ">= 1", self.epochs)
        _check(self.batch_size >= 1, f"{s}.batch_size", ">= 1", self.batch_size)
        _check(0 < self.lr < 1, f"{s}.lr", "in (0, 1)", self.lr)
        _check(self.weight_decay >= 0, f"{s}.weight_decay", ">= 0", self.weight_decay)
        _check(0 <= self.warmup_epochs < self.epochs, f"{s}.warmup_epochs", f"in 0..{self.epochs - 1}",
               self.warmup_epochs)
        _check(self.early_stopping >= 0, f"{s}.early_stopping", ">= 0 (0 = off)", self.early_stopping)
        _check(self.num_workers >= 0, f"{s}.num_workers", ">= 0", self.num_workers)
        _check(0 <= self.freeze_epochs <= self.epochs, f"{s}.freeze_epochs", f"in 0..{self.epochs}",
               self.freeze_epochs)
        if self.weights is not None:
            _check(self.weights in ("imagenet", PRETRAINED) or Path(self.weights).is_file(), f"{s}.weights",
                   f"null, imagenet, {PRETRAINED} or an existing local file", self.weights)


@dataclass(frozen=True)
class XceptionConfig(TrainConfig):
    model: str = "legacy_xception"  # any timm model name
    dropout: float = 0.2
    epochs: int = 20
    lr: float = 3e-4
    scheduler: Literal["none", "cosine", "onecycle"] = "onecycle"

    def validate(self, s: str) -> None:
        super().validate(s)
        _check(0 <= self.dropout < 1, f"{s}.dropout", "in [0, 1)", self.dropout)


@dataclass(frozen=True)
class UnetConfig(TrainConfig):
    arch: str = "Unet"  # any segmentation_models_pytorch architecture: Unet, UnetPlusPlus, FPN, ...
    encoder: str = "resnet18"
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 16)
    peak_weight: float = 50.0  # BCE pixel weight 1 + peak_weight x target; 0 = the paper's plain BCE
    sacrum_channel: bool = False  # one more target map below the last landmark (the S1 body), extrapolated
    coord_channels: bool = False  # two more input channels: each pixel's x and y (CoordConv)
    epochs: int = 30
    lr: float = 1e-3
    scheduler: Literal["none", "cosine", "onecycle"] = "onecycle"

    def validate(self, s: str) -> None:
        super().validate(s)
        _check(0 <= self.peak_weight <= 1e4, f"{s}.peak_weight", "in 0..10000 (0 = plain BCE)", self.peak_weight)
        _check(3 <= self.encoder_depth <= 5, f"{s}.encoder_depth", "in 3..5", self.encoder_depth)
        _check(len(self.decoder_channels) == self.encoder_depth and min(self.decoder_channels) >= 1,
               f"{s}.decoder_channels", f"{self.encoder_depth} positive integers (one per encoder stage)",
               list(self.decoder_channels))


@dataclass(frozen=True)
class FusionConfig:
    sigma: Union[float, Literal["auto"]] = "auto"  # prior sigma in heatmap pixels, or fitted on val residuals
    min_product: float = 1e-4  # peak of prior x heatmap below this: fall back to the regressed coordinate
    auto_scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)

    def validate(self, s: str) -> None:
        if self.sigma != "auto":
            _check(0 < self.sigma <= 1e4, f"{s}.sigma", "'auto' or a number of heatmap pixels > 0", self.sigma)
        _check(0 <= self.min_product < 1, f"{s}.min_product", "in [0, 1)", self.min_product)
        _check(len(self.auto_scales) >= 1 and min(self.auto_scales) > 0, f"{s}.auto_scales",
               "a non-empty list of numbers > 0", list(self.auto_scales))


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
                "lend_penalties": (self.lend_penalty,)}


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


@dataclass(frozen=True)
class PretrainConfig:
    """The synthetic pretraining: its stages (pretrain_*@synthetic in dvc.yaml) exist only while `sets` lists
    synthetic, so a pipeline that does not use it neither runs nor waits for it. It learns on `n` studies of
    `lmfusion synth` with the 11 landmarks, prepared with this file's prepare section (val_size studies for
    validation, none for test) and trained with the architecture of train_xception / train_unet and the schedule of
    pretrain_xception / pretrain_unet."""

    sets: tuple[Literal["synthetic"], ...] = ()
    n: int = 1000
    seed: int = 1  # the generator's seed (the default data/ are seed 0)
    style: str = "default"  # lmfusion synth --style
    val_size: int = 100

    def validate(self, s: str) -> None:
        _check(self.n >= 2, f"{s}.n", "an integer >= 2", self.n)
        _check(self.seed >= 0, f"{s}.seed", "an integer >= 0", self.seed)
        _check(1 <= self.val_size < self.n, f"{s}.val_size", f"in 1..{self.n - 1} (pretrain.n - 1)", self.val_size)


@dataclass(frozen=True)
class PretrainXceptionConfig(TrainConfig):
    """The regressor's pretraining schedule (its architecture is train_xception's)."""

    epochs: int = 40
    lr: float = 3e-4
    scheduler: Literal["none", "cosine", "onecycle"] = "onecycle"

    def validate(self, s: str) -> None:
        super().validate(s)
        _check(self.weights != PRETRAINED, f"{s}.weights", "null, imagenet or a local file", self.weights)


@dataclass(frozen=True)
class PretrainUnetConfig(PretrainXceptionConfig):
    """The U-Net's pretraining schedule (its architecture is train_unet's)."""

    epochs: int = 25
    lr: float = 1e-3


SECTIONS: dict[str, type] = {
    "base": BaseConfig,
    "data": DataConfig,
    "prepare": PrepareConfig,
    "heatmap": HeatmapConfig,
    "augment": AugmentConfig,
    "train_xception": XceptionConfig,
    "train_unet": UnetConfig,
    "fusion": FusionConfig,
    "chain": ChainConfig,
    "evaluate": EvaluateConfig,
    "report": ReportConfig,
    "pretrain": PretrainConfig,
    "pretrain_xception": PretrainXceptionConfig,
    "pretrain_unet": PretrainUnetConfig,
}


def parse_section(name: str, raw: Any) -> Any:
    """Build and validate the dataclass for params section `name` from its raw YAML mapping."""
    cls = SECTIONS[name]
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParamError(f"param {name}: must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ParamError(f"param {name}.{unknown[0]}: unknown key; allowed keys: {', '.join(names)}")
    values = {k: coerce(v, hints[k], f"{name}.{k}") for k, v in raw.items()}
    cfg = cls(**values)
    cfg.validate(name)
    return cfg


def load_params(path: str | os.PathLike = "params.yaml", sections: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read params.yaml and return {section: config} for `sections` (all known sections when None)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamError(f"params file {path} not found") from None
    except yaml.YAMLError as e:
        raise ParamError(f"params file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ParamError(f"params file {path} must hold a mapping of sections")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamError(f"param {unknown[0]}: unknown section; allowed: {', '.join(SECTIONS)}")
    wanted = tuple(SECTIONS) if sections is None else sections
    return {name: parse_section(name, raw.get(name)) for name in wanted}


def as_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain YAML/JSON-friendly values (tuples become lists)."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v
    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


__all__ = ["LANDMARKS", "PRETRAINED", "SECTIONS", "load_params", "parse_section", "as_dict", *[c.__name__ for c in SECTIONS.values()],
           "TrainConfig"]
del field
