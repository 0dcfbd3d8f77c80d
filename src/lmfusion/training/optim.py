"""The optimizer and the learning-rate schedules of both training stages."""

from __future__ import annotations

import math

import torch
from torch import nn

from lmfusion.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam; the fused kernel (CPU and CUDA) is several times faster than the per-tensor loop on large nets."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device without the fused kernel
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: none (constant) or cosine (to 0) after a linear warmup, or onecycle (warmup_epochs sets
    its rising part, else 30%)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = cfg.warmup_epochs * steps_per_epoch
    if cfg.scheduler == "onecycle":
        pct = warmup / total if warmup else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=pct)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.scheduler == "cosine":
            t = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
