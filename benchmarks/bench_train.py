"""Training throughput: the real loop (DataLoader, on-the-fly augmentation, Adam, schedule) against the same
model's training step on ready-made tensors, for each network at its params.yaml size and batch.

    python benchmarks/bench_train.py [--params params.yaml] [--batches 4] [--workers N] [--threads N] [--contiguous]

The ready-made step is the ceiling; the loop should reach at least 90% of it. Both run in the loop's memory format
(channels_last); --contiguous times the ready-made step in torch's default one instead, which shows what the
format gains. Images are synthetic (noise with
bright dots at 11 landmarks). Each figure is the best of two timings (the loop: epochs 2 and 3 of a 3-epoch fit;
the first epoch warms the allocator up), which keeps the ratio steady on a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lmfusion.training import distributed
from lmfusion.training import loop as train
from lmfusion.config import load_params
from lmfusion.config.geometry import target_sigma
from lmfusion.data.datasets import HeatmapDataset, RegressorDataset
from lmfusion.heatmaps import encode
from lmfusion.nets.infer import to_input
from lmfusion.nets.models import build_unet, build_regressor
from lmfusion.training.losses import CoordinateLoss


def synthetic(n: int, size: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S) uint8 images and (N, K, 2) pixel landmarks."""
    xy = np.stack([rng.uniform(0.35, 0.65, (n, k)), np.linspace(0.15, 0.85, k) + rng.normal(0, 0.01, (n, k))],
                  axis=-1) * size  # (N, K, 2)
    dots = encode(xy, size, size, sigma=size / 100).max(1)
    return np.clip(rng.normal(60, 20, (n, size, size)) + 160 * dots, 0, 255).astype(np.uint8), xy


def ready_made(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
               with_step: bool, memory_format: torch.memory_format) -> float:
    """Images per second of forward + backward (+ Adam step) on fixed tensors, after one warm-up step."""
    model, x = model.to(memory_format=memory_format), x.to(memory_format=memory_format)
    opt = train.make_optimizer(model, train.TrainConfig(lr=1e-4))
    model.train()
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if with_step:
            opt.step()
    return steps * len(x) / (time.perf_counter() - t0)


def loop(model: nn.Module, loss_fn: nn.Module, train_set, val_set, cfg) -> float:
    """Images per second of fit's training passes: the best of epochs 2 and 3."""
    with tempfile.TemporaryDirectory() as tmp:
        result = train.fit(model, loss_fn, train_set, val_set, cfg, seed=0, checkpoint=Path(tmp) / "ck.pt",
                           config_hash="bench")
    return max(h["images"] / h["pass_seconds"] for h in result.history[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--batches", type=int, default=4, help="timed batches per measurement")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: from params)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    ap.add_argument("--contiguous", action="store_true",
                    help="time the ready-made step in torch's default memory format, not the loop's")
    ap.add_argument("--networks", nargs="+", default=["xception", "unet"], choices=["xception", "unet"])
    args = ap.parse_args()
    p = load_params(args.params, ("base", "prepare", "heatmap", "augment", "train_xception", "train_unet"))
    ctx = distributed.setup()
    if args.threads:
        torch.set_num_threads(args.threads)
    k = len(p["base"].landmarks)
    rng = np.random.default_rng(0)
    print(f"device {ctx.device}, {torch.get_num_threads()} threads")
    print(f"{'network':10} {'size':>4} {'batch':>5} {'workers':>7} {'fwd+bwd':>9} {'+adam':>9} {'loop':>9} "
          f"{'loop/fwd+bwd':>12}  (images/s)")
    for net in args.networks:
        cfg = p["train_xception"] if net == "xception" else p["train_unet"]
        cfg = dataclasses.replace(cfg, epochs=3, warmup_epochs=0, early_stopping=0, weights=None,
                                  num_workers=cfg.num_workers if args.workers is None else args.workers)
        size = p["prepare"].regressor_size if net == "xception" else p["prepare"].unet_size
        n = cfg.batch_size * args.batches
        images, xy = synthetic(n, size, k, rng)
        torch.manual_seed(0)
        if net == "xception":
            model = build_regressor(cfg.model, k, cfg.dropout, head=cfg.head, input_size=size)
            loss_fn = CoordinateLoss(cfg.loss, size)
            train_set = RegressorDataset(images, (xy + 0.5) / size, p["augment"], seed=0)
            val_set = RegressorDataset(images[:1], (xy[:1] + 0.5) / size, None, seed=0)
            y = torch.rand(cfg.batch_size, k, 2)
        else:
            model = build_unet(cfg.arch, cfg.encoder, k, cfg.encoder_depth, cfg.decoder_channels)
            loss_fn = nn.BCEWithLogitsLoss()
            sigma = target_sigma(p["heatmap"], size)
            train_set = HeatmapDataset(images, xy, sigma, p["augment"], seed=0)
            val_set = HeatmapDataset(images[:1], xy[:1], sigma, None, seed=0)
            y = torch.from_numpy(encode(xy[:cfg.batch_size], size, size, sigma, np.float32))
        x = to_input(images[:cfg.batch_size])
        fmt = torch.contiguous_format if args.contiguous else train.MEMORY_FORMAT
        bound = ready_made(model, loss_fn, x, y, args.batches, False, fmt)
        bound_step = ready_made(model, loss_fn, x, y, args.batches, True, fmt)
        real = loop(model, loss_fn, train_set, val_set, cfg)
        bound = max(bound, ready_made(model, loss_fn, x, y, args.batches, False, fmt))
        bound_step = max(bound_step, ready_made(model, loss_fn, x, y, args.batches, True, fmt))
        print(f"{net:10} {size:4d} {cfg.batch_size:5d} {cfg.num_workers:7d} {bound:9.2f} {bound_step:9.2f} "
              f"{real:9.2f} {real / bound:11.0%}", flush=True)
    distributed.cleanup(ctx)


if __name__ == "__main__":
    sys.exit(main())
