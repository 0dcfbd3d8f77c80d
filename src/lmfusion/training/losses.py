"""Training losses beyond torch's own."""

from __future__ import annotations

import math

import torch
from torch import nn

COORDINATE_LOSSES = ("mse", "smooth_l1", "wing")


class HeatmapBCE(nn.Module):
    """BCE with logits on Gaussian targets (the paper), each pixel weighted 1 + peak_weight x target.

    The weight depends on the target only, so every pixel's optimum stays p = target (calibrated probabilities);
    it keeps the landmark peaks, under 1% of the pixels, from being drowned by the background. peak_weight 0 is the
    paper's plain BCE.
    """

    def __init__(self, peak_weight: float = 0.0):
        super().__init__()
        self.peak_weight = float(peak_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = 1.0 + self.peak_weight * target if self.peak_weight else None  # (N, K, H, W)
        return nn.functional.binary_cross_entropy_with_logits(logits, target, weight=weight)


class CoordinateLoss(nn.Module):
    """The regressor's loss on (N, K, 2) normalized coordinates.

    mse: the paper's, on the 0..1 coordinates. smooth_l1 and wing measure the error in input pixels (x `size`), so
    their shapes mean the same at every regressor size: smooth_l1 is quadratic within 1 px and linear beyond; wing
    (Feng et al., CVPR 2018) is w ln(1 + |e| / eps) within w = 10 px, which keeps a strong gradient on the small
    errors that decide whether a landmark lands within the target radius, and linear beyond.
    """

    def __init__(self, kind: str = "mse", size: int = 1, wing_width: float = 10.0, wing_eps: float = 2.0):
        super().__init__()
        if kind not in COORDINATE_LOSSES:
            raise ValueError(f"unknown coordinate loss {kind!r}: one of {', '.join(COORDINATE_LOSSES)}")
        self.kind, self.size = kind, float(size)
        self.w, self.eps = float(wing_width), float(wing_eps)
        self.c = self.w - self.w * math.log1p(self.w / self.eps)  # joins the two pieces at |e| = w

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "mse":
            return nn.functional.mse_loss(pred, target)
        error = (pred - target) * self.size  # input pixels
        if self.kind == "smooth_l1":
            return nn.functional.smooth_l1_loss(error, torch.zeros_like(error), beta=1.0)
        a = error.abs()
        return torch.where(a < self.w, self.w * torch.log1p(a / self.eps), a - self.c).mean()
