"""The training sections of params.yaml: train_xception, train_unet and the synthetic pretraining's, as frozen
dataclasses. TrainConfig's own defaults serve only the training loop used on its own (tests, benchmarks); every
training section overrides them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

from lmfusion.config.sections import PRETRAINED, _check

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
    loss: Literal["mse", "smooth_l1", "wing"] = "mse"  # mse: the paper's (lmfusion.training.losses.CoordinateLoss)
    head: Literal["pooled", "flatten"] = "pooled"  # pooled: the paper's (lmfusion.nets.models.build_regressor)
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
    sacrum_channel: bool = True  # one more target map below the last landmark (the S1 body), extrapolated
    coord_channels: bool = False  # two more input channels: each pixel's x and y (CoordConv)
    epochs: int = 24
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

    epochs: int = 30
    lr: float = 1e-3
