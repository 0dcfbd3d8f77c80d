"""Stage train_xception: the Xception + fully connected coordinate regressor (train_xception.loss: MSE on normalized
coordinates, the paper's, or Smooth L1 / Wing in input pixels).

    python stages/train_xception.py PREPARED_DIR MODEL_DIR CHECKPOINT METRICS_JSON LOSS_CSV AUGMENT_PNG
        [--params params.yaml] [--pretrained DIR] [--pretrain]

Reads params sections base, augment and train_xception. Writes MODEL_DIR/model.pt (best weights by val loss),
METRICS_JSON, LOSS_CSV (epoch, train_loss, val_loss) and AUGMENT_PNG (augmented training samples); CHECKPOINT is
updated after every epoch and resumed from when it matches the params and data. `weights: synthetic` starts from
DIR/synthetic/model.pt (the synthetic pretraining's model); `--pretrain` trains as that pretraining
(lmfusion.config.pretraining: its data, the pretrain_xception schedule). Also runs under `torchrun --nproc_per_node=N`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmfusion.config import pretraining
from lmfusion.coords import from_norm
from lmfusion.data.datasets import RegressorDataset
from lmfusion.data.prepared import load_prepared
from lmfusion.figures.augment import augmentation_preview
from lmfusion.stage import stage_main
from lmfusion.training.job import TrainJob, flat_params, stage_arguments, train_stage, training_splits
from lmfusion.training.losses import CoordinateLoss

STAGE = "train_xception"
SECTIONS = ("base", "augment", STAGE)


@stage_main
def main() -> None:
    args, outputs = stage_arguments(__doc__, ("prepared",))
    p = pretraining.load_params(args.params, SECTIONS + ("pretrain",), args.pretrain)
    base, aug, cfg = p["base"], p["augment"], p[STAGE]
    names = tuple(base.landmarks)
    data = load_prepared(args.prepared, names)
    train_idx, val_idx = training_splits(data, args.prepared)
    images, targets = data.regressor, data.landmarks_norm  # (N, S, S) uint8, (N, K, 2)
    size = images.shape[-1]

    def preview() -> np.ndarray:
        xy = from_norm(targets[train_idx[:8]], size, size)
        return augmentation_preview(images[train_idx[:8]], xy, aug, np.random.default_rng(base.seed),
                                    names=names)

    train_aug = aug if (aug.translate or aug.rotate or aug.scale) else None
    train_stage(TrainJob(
        stage=pretraining.stage_name(STAGE, args.pretrain), kind="regressor",
        builder={"model": cfg.model, "n_landmarks": len(names), "dropout": cfg.dropout, "head": cfg.head,
                 "input_size": size},
        loss_fn=CoordinateLoss(cfg.loss, size),
        train_set=RegressorDataset(images[train_idx], targets[train_idx], aug=train_aug, seed=base.seed),
        val_set=RegressorDataset(images[val_idx], targets[val_idx], aug=None, seed=base.seed),
        cfg=cfg, seed=base.seed, params=flat_params(p, SECTIONS),
        data_arrays=[images[train_idx], images[val_idx], targets[train_idx], targets[val_idx]],
        names=names, input_size=size, preview=preview, script=Path(__file__), pretrained=args.pretrained,
        sets=p["pretrain"].sets, pretrain=args.pretrain), outputs)


if __name__ == "__main__":
    main()
