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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from lmfusion.config import TrainConfig
from lmfusion.io import atomic_path
from lmfusion.tracking import Tracker
from lmfusion.training import distributed
from lmfusion.training.optim import make_optimizer, make_scheduler

log = logging.getLogger("lmfusion")

STOP_ENV = "LMFUSION_STOP_AFTER_EPOCH"
# both networks train with NHWC activations: oneDNN's convolutions run so about 18% faster for the U-Net on a 2-core
# CPU and 5% for Xception (benchmarks/bench_train.py against its --contiguous)
MEMORY_FORMAT = torch.channels_last


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


@dataclass
class _FitState:
    """What travels from epoch to epoch and is checkpointed: a resumed run continues from exactly this."""

    best_state: dict[str, torch.Tensor]
    epoch: int = 0  # epochs finished
    best: float = math.inf
    best_epoch: int = 0
    bad: int = 0  # epochs since the last improvement
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: bool = False

    @classmethod
    def start(cls, model: nn.Module, resume: dict | None) -> _FitState:
        if resume is None:
            return cls(best_state=_cpu_copy(model))
        model.load_state_dict(resume["model"])
        return cls(best_state=resume["best_state"], epoch=resume["epoch"], best=resume["best_val_loss"],
                   best_epoch=resume["best_epoch"], bad=resume["bad_epochs"], history=list(resume["history"]),
                   stopped=resume["stopped_early"])

    def record(self, row: dict[str, float], model: nn.Module, patience: int) -> bool:
        """Add one epoch's row; keep the weights when val loss improved. Returns whether it improved."""
        self.epoch = int(row["epoch"])
        improved = row["val_loss"] < self.best
        if improved:
            self.best, self.best_epoch, self.bad = row["val_loss"], self.epoch, 0
            self.best_state = _cpu_copy(model)
        else:
            self.bad += 1
        self.stopped = patience > 0 and self.bad >= patience
        self.history.append(row)
        return improved

    def checkpoint(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, config_hash: str,
                   run_id: str | None) -> dict:
        return {"config_hash": config_hash, "epoch": self.epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "best_val_loss": self.best,
                "best_epoch": self.best_epoch, "best_state": self.best_state, "bad_epochs": self.bad,
                "history": self.history, "stopped_early": self.stopped, "mlflow_run_id": run_id}

    def result(self) -> FitResult:
        images = sum(h["images"] for h in self.history)
        pass_seconds = sum(h["pass_seconds"] for h in self.history)
        return FitResult(best_val_loss=self.best, best_epoch=self.best_epoch, epochs_run=len(self.history),
                         best_state=self.best_state, history=self.history, stopped_early=self.stopped,
                         train_seconds=sum(h["seconds"] for h in self.history),
                         images_per_second=images / pass_seconds if pass_seconds > 0 else 0.0,
                         fallbacks=int(sum(h["fallbacks"] for h in self.history)))


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _train_epoch(model: nn.Module, loss_fn: Callable, loader: DataLoader, optimizer: torch.optim.Optimizer,
                 scheduler: Any, ctx: distributed.Context, desc: str) -> tuple[float, float, float, float]:
    """One pass over the training loader; returns (loss sum, images, augmentation fallbacks, last step's lr),
    summed over ranks."""
    model.train()
    total = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss sum, images, fallbacks
    lr = optimizer.param_groups[0]["lr"]
    bar = tqdm(loader, desc=desc, unit="batch", leave=False, file=sys.stderr, disable=None if ctx.is_main else True)
    for x, y, fell_back in bar:
        x = x.to(ctx.device, non_blocking=True, memory_format=MEMORY_FORMAT)  # (N, 1, S, S)
        y = y.to(ctx.device, non_blocking=True)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]  # the rate this step used, logged per epoch
        scheduler.step()
        total += torch.stack([loss.detach().double() * len(x), torch.tensor(float(len(x)), device=ctx.device,
                              dtype=torch.float64), fell_back.sum().to(ctx.device, torch.float64)])
    loss_sum, n_train, fallbacks = distributed.all_sum(total.tolist(), ctx)
    return loss_sum, n_train, fallbacks, lr


def fit(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], train_set: Dataset,
        val_set: Dataset, cfg: TrainConfig, seed: int, *, checkpoint: str | os.PathLike, config_hash: str,
        tracker: Tracker | None = None, loss_csv: str | os.PathLike | None = None, resume: dict | None = None,
        ctx: distributed.Context | None = None, desc: str = "train", hold: nn.Module | None = None) -> FitResult:
    """Train `model` (already initialized and seeded) and return the best weights by validation loss.

    Args:
        loss_fn: mean loss of a batch, (outputs, targets) -> scalar.
        train_set, val_set: datasets with `set_epoch` whose items are (input, target, fell_back).
        checkpoint: the resumable state, written atomically (by rank 0) after every epoch.
        config_hash: identifies params, data and code; stored in the checkpoint.
        resume: a state from `load_checkpoint` to continue from.
        hold: the part of `model` (a pretrained backbone) that gets no updates in the first cfg.freeze_epochs.
    """
    ctx = ctx or distributed.setup()
    tracker = tracker or Tracker(None)
    inner = model.to(ctx.device, memory_format=MEMORY_FORMAT)
    state = _FitState.start(inner, resume)
    model = _wrap(inner, ctx)
    optimizer = make_optimizer(inner, cfg)  # before any freezing: it holds the held parameters too
    held = _held(hold, cfg, ctx, desc)
    train_loader, sampler, val_loader = _loaders(train_set, val_set, cfg, seed, ctx)
    scheduler = make_scheduler(optimizer, cfg, len(train_loader))
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
    stop_after = int(os.environ.get(STOP_ENV, "0") or 0)

    for epoch in range(state.epoch, 0 if state.stopped else cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(seed, epoch, ctx.rank))  # dropout and loader seeds, resumable per epoch
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        if _hold_still(held, epoch < cfg.freeze_epochs):
            model = _wrap(inner, ctx)  # DistributedDataParallel registers the trainable parameters when built
        loss_sum, n_train, fallbacks, lr = _train_epoch(model, loss_fn, train_loader, optimizer, scheduler, ctx,
                                                        f"{desc} {epoch + 1}/{cfg.epochs}")
        train_time = time.perf_counter() - t0
        distributed.sync_buffers(inner, ctx)  # every rank validates rank 0's model, the one that is saved
        val_loss = evaluate(inner, loss_fn, val_loader, ctx)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(n_train, 1), "val_loss": val_loss,
               "seconds": time.perf_counter() - t0, "pass_seconds": train_time, "images": n_train,
               "fallbacks": fallbacks}
        improved = state.record(row, inner, cfg.early_stopping)
        if ctx.is_main:
            log.info("%s epoch %d/%d: train loss %.5g, val loss %.5g%s, lr %.3g, %.1f s", desc, epoch + 1,
                     cfg.epochs, row["train_loss"], val_loss, " (best)" if improved else "", lr, row["seconds"])
            if loss_csv is not None:
                _write_loss_csv(Path(loss_csv), state.history)
            _save_checkpoint(Path(checkpoint), state.checkpoint(inner, optimizer, scheduler, config_hash,
                                                                tracker.run_id))
            tracker.log_metrics({"train_loss": row["train_loss"], "val_loss": val_loss, "lr": lr,
                                 "epoch_seconds": row["seconds"], "augment_fallbacks": fallbacks}, step=epoch + 1)
        if state.stopped:
            log.info("%s: early stop after epoch %d (no val improvement in %d epochs)", desc, epoch + 1, state.bad)
            break
        if stop_after == epoch + 1 and epoch + 1 < cfg.epochs:
            distributed.barrier(ctx)
            raise SystemExit(f"stopped after epoch {epoch + 1} ({STOP_ENV}); rerun to resume from {checkpoint}")
    if ctx.is_main and loss_csv is not None:  # again: resumed from a finished checkpoint, no epoch wrote it
        _write_loss_csv(Path(loss_csv), state.history)
    return state.result()


def _held(hold: nn.Module | None, cfg: TrainConfig, ctx: distributed.Context, desc: str) -> list[nn.Parameter]:
    """The trainable parameters of `hold` that the first cfg.freeze_epochs keep still (none without freezing)."""
    held = [p for p in hold.parameters() if p.requires_grad] if hold is not None and cfg.freeze_epochs else []
    if held and ctx.is_main:
        log.info("%s: the backbone / encoder (%d tensors) held still for the first %d epochs", desc, len(held),
                 cfg.freeze_epochs)
    return held


def _wrap(inner: nn.Module, ctx: distributed.Context) -> nn.Module:
    if not ctx.distributed:
        return inner
    return DistributedDataParallel(inner, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)


def _hold_still(params: list[nn.Parameter], frozen: bool) -> bool:
    """Freeze or thaw `params` (no gradient: Adam skips them, backward is cheaper); returns whether that changed."""
    if not params or params[0].requires_grad != frozen:
        return False
    for p in params:
        p.requires_grad_(not frozen)
    return True


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: Callable, loader: DataLoader, ctx: distributed.Context) -> float:
    """Mean loss over the whole validation set (every rank's share, reduced)."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    n = 0
    for x, y, _ in loader:
        x = x.to(ctx.device, non_blocking=True, memory_format=MEMORY_FORMAT)
        y = y.to(ctx.device, non_blocking=True)
        loss_sum += loss_fn(model(x), y).double() * len(x)
        n += len(x)
    loss_sum, n = distributed.all_sum([loss_sum.item(), n], ctx)
    return loss_sum / max(n, 1)
