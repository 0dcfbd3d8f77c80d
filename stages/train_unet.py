"""Stage train_unet: the U-Net heatmap regressor (BCE with logits on Gaussian targets).

    python stages/train_unet.py PREPARED_DIR HEATMAPS_DIR MODEL_DIR CHECKPOINT METRICS_JSON LOSS_CSV AUGMENT_PNG
        [--params params.yaml] [--pretrained DIR] [--pretrain]

Reads params sections base, augment, heatmap and train_unet; the input size is that of the prepared U-Net images.
Validation uses the heatmaps stage's targets (HEATMAPS_DIR/targets.npy); augmented training samples get theirs
rendered from the moved landmarks at heatmap.sigma (scaled to the input size by lmfusion.config.geometry). Writes
MODEL_DIR/model.pt (best weights by val loss), METRICS_JSON, LOSS_CSV (epoch, train_loss, val_loss) and AUGMENT_PNG;
CHECKPOINT is updated after every epoch and resumed from when it matches the params and data. `weights: synthetic`
starts from DIR/synthetic/model.pt (the synthetic pretraining's model); `--pretrain` trains as that pretraining
(lmfusion.config.pretraining: its data, the pretrain_unet schedule). Also runs under `torchrun --nproc_per_node=N`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmfusion.config import pretraining
from lmfusion.config.geometry import target_sigma
from lmfusion.anatomy import sacrum_anchor
from lmfusion.data.datasets import HeatmapDataset
from lmfusion.data.prepared import load_prepared
from lmfusion.errors import DataError, ParamError
from lmfusion.figures.augment import augmentation_preview
from lmfusion.heatmaps import encode
from lmfusion.stage import stage_main
from lmfusion.training.job import TrainJob, flat_params, stage_arguments, train_stage, training_splits
from lmfusion.training.losses import HeatmapBCE

STAGE = "train_unet"
SECTIONS = ("base", "augment", "heatmap", STAGE)


def load_targets(heatmaps_dir: str, n: int, k: int, size: int) -> np.ndarray:
    """The heatmaps stage's (N, K, S, S) targets, memory-mapped, checked against the prepared images."""
    path = Path(heatmaps_dir) / "targets.npy"
    try:
        targets = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the heatmaps stage first (dvc repro heatmaps)") from None
    except ValueError as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from None
    if targets.shape != (n, k, size, size):
        raise DataError(f"{path}: shape {targets.shape}, expected {(n, k, size, size)} for the prepared images "
                        f"and landmarks (rerun the heatmaps stage)")
    return targets


def _with_anchor(targets: np.ndarray, idx: np.ndarray, xy: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """The stored (n, K, S, S) targets of rows `idx`, with maps rendered for the points of `xy` (N, K', 2) beyond
    the first K (the auxiliary anchor), as float16 like the stored ones."""
    rows = np.asarray(targets[idx])
    if xy.shape[1] == k:
        return rows
    s = rows.shape[-1]
    extra = np.stack([encode(xy[i, k:], s, s, sigma) for i in idx]).astype(np.float16)
    return np.concatenate([rows, extra], 1)


@stage_main
def main() -> None:
    args, outputs = stage_arguments(__doc__, ("prepared", "heatmaps"))
    p = pretraining.load_params(args.params, SECTIONS + ("pretrain",), args.pretrain)
    base, aug, cfg = p["base"], p["augment"], p[STAGE]
    names = tuple(base.landmarks)
    data = load_prepared(args.prepared, names)
    train_idx, val_idx = training_splits(data, args.prepared)
    images = data.unet  # (N, S, S) uint8
    size = images.shape[-1]
    sigma = target_sigma(p["heatmap"], size)  # in U-Net input (= heatmap) pixels
    xy = data.landmarks_at(size)  # (N, K, 2) U-Net input pixels
    targets = load_targets(args.heatmaps, len(images), len(names), size)
    extra = 0
    if cfg.sacrum_channel:  # one more map to learn: the S1 body under the last disc, where the count starts
        anchor = sacrum_anchor(xy, names)
        if anchor is None:
            raise ParamError(f"param {STAGE}.sacrum_channel: needs at least 3 landmarks in base.landmarks "
                             f"(set it false)")
        xy, extra = np.concatenate([xy, anchor[:, None]], 1), 1  # (N, K + 1, 2)
    val_targets = _with_anchor(targets, val_idx, xy, len(names), sigma)  # (N_val, K', S, S); training renders its own

    def preview() -> np.ndarray:
        return augmentation_preview(images[train_idx[:8]], xy[train_idx[:8], :len(names)], aug,
                                    np.random.default_rng(base.seed), names=names)

    train_aug = aug if (aug.translate or aug.rotate or aug.scale) else None
    train_stage(TrainJob(
        stage=pretraining.stage_name(STAGE, args.pretrain), kind="heatmap",
        builder={"arch": cfg.arch, "encoder": cfg.encoder, "n_landmarks": len(names),
                 "encoder_depth": cfg.encoder_depth, "decoder_channels": list(cfg.decoder_channels),
                 "extra_channels": extra, "coord_channels": cfg.coord_channels},
        loss_fn=HeatmapBCE(cfg.peak_weight),
        train_set=HeatmapDataset(images[train_idx], xy[train_idx], sigma, aug=train_aug, seed=base.seed,
                                 required=len(names),
                                 targets=None if train_aug else _with_anchor(targets, train_idx, xy, len(names),
                                                                             sigma)),
        val_set=HeatmapDataset(images[val_idx], xy[val_idx], sigma, aug=None, seed=base.seed, targets=val_targets),
        cfg=cfg, seed=base.seed, params=flat_params(p, SECTIONS),
        data_arrays=[images[train_idx], images[val_idx], xy[train_idx], xy[val_idx], val_targets],
        names=names, input_size=size, preview=preview, script=Path(__file__), pretrained=args.pretrained,
        sets=p["pretrain"].sets, pretrain=args.pretrain), outputs)


if __name__ == "__main__":
    main()
