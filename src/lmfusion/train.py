"""One training loop for both networks: Adam, an lr schedule, per-epoch validation, best-by-val-loss weights,
early stopping, and an atomic checkpoint after every epoch to resume from.

Reproducibility: the model is initialized after seeding, each epoch re-seeds torch's global RNG (dropout) from
(seed, epoch, rank) and shuffles with a sampler seeded from (seed, epoch), and augmentation draws from
(seed, epoch, index) (lmfusion.data.datasets). So a run resumed from its checkpoint ends with the same weights as
an uninterrupted one, and the same seed and data give the same losses run after run (on the CPU).

`LMFUSION_STOP_AFTER_EPOCH=n` ends the process with a non-zero code right after epoch n's checkpoint (to test
resuming).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from lmfusion import distributed
from lmfusion.config import TrainConfig
from lmfusion.io import atomic_path
from lmfusion.tracking import Tracker

log = logging.getLogger("lmfusion")

STOP_ENV = "LMFUSION_STOP_AFTER_EPOCH"


@dataclass
class FitResult:
    best_val_loss: float
    best_epoch: int  # 1-based
    epochs_run: int
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    stopped_early: bool
    train_seconds: float  # over all sessions of a resumed run: the sum of the epochs' times
    images_per_second: float  # training images (all ranks) per second of the training passes
    fallbacks: int  # augmentations that kept the identity (all ranks, all epochs)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 63-bit seed mixed from (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(2, np.uint64)[0] >> np.uint64(1))


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


def load_checkpoint(path: str | os.PathLike, config_hash: str) -> dict | None:
    """The saved training state when it exists and was written for the same params and data, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a checkpoint cut short by a crash of an older version, a foreign file
        log.warning("checkpoint %s unreadable (%s); starting fresh", path, type(e).__name__)
        return None
    if not isinstance(state, dict) or state.get("config_hash") != config_hash:
        log.warning("checkpoint %s was written for other params or data; starting fresh", path)
        return None
    log.info("resuming from %s after epoch %d", path, state["epoch"])
    return state


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _write_loss_csv(path: Path, history: list[dict[str, float]]) -> None:
    table = pd.DataFrame(history, columns=["epoch", "train_loss", "val_loss"])
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def _loaders(train_set: Dataset, val_set: Dataset, cfg: TrainConfig, seed: int,
             ctx: distributed.Context) -> tuple[DataLoader, DistributedSampler, DataLoader]:
    # one sampler for one process or many: it shuffles with a generator seeded from seed + epoch
    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    common = {"num_workers": cfg.num_workers, "pin_memory": ctx.device.type == "cuda",
              "persistent_workers": False}  # workers restart each epoch and see the dataset's new epoch
    train = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler,
                       drop_last=len(sampler) > cfg.batch_size, **common)
    # each rank validates its own share of the images, sums are reduced over ranks (no padding duplicates)
    val = DataLoader(Subset(val_set, list(range(ctx.rank, len(val_set), ctx.world_size))),
                     batch_size=cfg.batch_size, shuffle=False, **common)
    return train, sampler, val


def fit(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], train_set: Dataset,
        val_set: Dataset, cfg: TrainConfig, seed: int, *, checkpoint: str | os.PathLike, config_hash: str,
        tracker: Tracker | None = None, loss_csv: str | os.PathLike | None = None, resume: dict | None = None,
        ctx: distributed.Context | None = None, desc: str = "train") -> FitResult:
    """Train `model` (already initialized and seeded) and return the best weights by validation loss.

    Args:
        loss_fn: mean loss of a batch, (outputs, targets) -> scalar.
        train_set, val_set: datasets with `set_epoch` whose items are (input, target, fell_back).
        checkpoint: the resumable state, written atomically (by rank 0) after every epoch.
        config_hash: identifies params and data; stored in the checkpoint.
        resume: a state from `load_checkpoint` to continue from.
    """
    ctx = ctx or distributed.setup()
    tracker = tracker or Tracker(None)
    inner = model.to(ctx.device)
    start, best, best_epoch, bad, history, stopped = 0, math.inf, 0, 0, [], False
    best_state = {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()}
    if resume is not None:
        inner.load_state_dict(resume["model"])
        start, best, best_epoch = resume["epoch"], resume["best_val_loss"], resume["best_epoch"]
        bad, history, stopped = resume["bad_epochs"], list(resume["history"]), resume["stopped_early"]
        best_state = resume["best_state"]
    if ctx.distributed:
        model = DistributedDataParallel(inner, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    optimizer = make_optimizer(inner, cfg)
    train_loader, sampler, val_loader = _loaders(train_set, val_set, cfg, seed, ctx)
    scheduler = make_scheduler(optimizer, cfg, len(train_loader))
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
    stop_after = int(os.environ.get(STOP_ENV, "0") or 0)
    lr = optimizer.param_groups[0]["lr"]

    for epoch in range(start, 0 if stopped else cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(seed, epoch, ctx.rank))  # dropout and loader seeds, resumable per epoch
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        model.train()
        total = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss sum, images, fallbacks
        bar = tqdm(train_loader, desc=f"{desc} {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                   file=sys.stderr, disable=None if ctx.is_main else True)
        for x, y, fell_back in bar:
            x = x.to(ctx.device, non_blocking=True)  # (N, 1, S, S)
            y = y.to(ctx.device, non_blocking=True)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used, logged per epoch
            scheduler.step()
            total += torch.stack([loss.detach().double() * len(x), torch.tensor(float(len(x)), device=ctx.device,
                                  dtype=torch.float64), fell_back.sum().to(ctx.device, torch.float64)])
        train_time = time.perf_counter() - t0
        loss_sum, n_train, fallbacks = distributed.all_sum(total.tolist(), ctx)
        distributed.sync_buffers(inner, ctx)  # every rank validates rank 0's model, the one that is saved
        val_loss = evaluate(inner, loss_fn, val_loader, ctx)
        seconds = time.perf_counter() - t0
        train_loss = loss_sum / max(n_train, 1)

        improved = val_loss < best
        if improved:
            best, best_epoch, bad = val_loss, epoch + 1, 0
            best_state = {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()}
        else:
            bad += 1
        stopped = cfg.early_stopping > 0 and bad >= cfg.early_stopping
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "seconds": seconds,
                        "pass_seconds": train_time, "images": n_train, "fallbacks": fallbacks})
        if ctx.is_main:
            log.info("%s epoch %d/%d: train loss %.5g, val loss %.5g%s, lr %.3g, %.1f s", desc, epoch + 1,
                     cfg.epochs, train_loss, val_loss, " (best)" if improved else "", lr, seconds)
            if loss_csv is not None:
                _write_loss_csv(Path(loss_csv), history)
            _save_checkpoint(Path(checkpoint), {
                "config_hash": config_hash, "epoch": epoch + 1, "model": inner.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "best_val_loss": best,
                "best_epoch": best_epoch, "best_state": best_state, "bad_epochs": bad, "history": history,
                "stopped_early": stopped, "mlflow_run_id": tracker.run_id})
            tracker.log_metrics({"train_loss": train_loss, "val_loss": val_loss, "lr": lr, "epoch_seconds": seconds,
                                 "augment_fallbacks": fallbacks}, step=epoch + 1)
        if stopped:
            log.info("%s: early stop after epoch %d (no val improvement in %d epochs)", desc, epoch + 1, bad)
            break
        if stop_after == epoch + 1 and epoch + 1 < cfg.epochs:
            distributed.barrier(ctx)
            raise SystemExit(f"stopped after epoch {epoch + 1} ({STOP_ENV}); rerun to resume from {checkpoint}")

    images = sum(h["images"] for h in history)
    pass_seconds = sum(h["pass_seconds"] for h in history)
    return FitResult(best_val_loss=best, best_epoch=best_epoch, epochs_run=len(history), best_state=best_state,
                     history=history, stopped_early=stopped, train_seconds=sum(h["seconds"] for h in history),
                     images_per_second=images / pass_seconds if pass_seconds > 0 else 0.0,
                     fallbacks=int(sum(h["fallbacks"] for h in history)))


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: Callable, loader: DataLoader, ctx: distributed.Context) -> float:
    """Mean loss over the whole validation set (every rank's share, reduced)."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    n = 0
    for x, y, _ in loader:
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        loss_sum += loss_fn(model(x), y).double() * len(x)
        n += len(x)
    loss_sum, n = distributed.all_sum([loss_sum.item(), n], ctx)
    return loss_sum / max(n, 1)


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
