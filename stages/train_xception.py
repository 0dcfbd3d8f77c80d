"""Stage train_xception: the Xception + fully connected coordinate regressor (MSE on normalized coordinates).

    python stages/train_xception.py PREPARED_DIR MODEL_DIR CHECKPOINT METRICS_JSON LOSS_CSV AUGMENT_PNG
        [--params params.yaml]

Reads params sections base, augment and train_xception. Writes MODEL_DIR/model.pt (best weights by val loss),
METRICS_JSON, LOSS_CSV (epoch, train_loss, val_loss) and AUGMENT_PNG (augmented training samples); CHECKPOINT is
updated after every epoch and resumed from when it matches the params and data. Also runs under
`torchrun --nproc_per_node=N`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from torch import nn

from lmfusion.config import as_dict, load_params
from lmfusion.coords import from_norm
from lmfusion.data.augment import preview_image
from lmfusion.data.datasets import RegressorDataset
from lmfusion.data.prepared import load_prepared
from lmfusion.errors import DataError
from lmfusion.stage import stage_main
from lmfusion.train_stage import StageOutputs, run_training

STAGE = "train_xception"


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("prepared", "model_dir", "checkpoint", "metrics_json", "loss_csv", "augment_png"):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()

    p = load_params(args.params, ("base", "augment", STAGE))
    base, aug, cfg = p["base"], p["augment"], p[STAGE]
    names = tuple(base.landmarks)
    data = load_prepared(args.prepared, names)
    train_idx, val_idx = data.split_indices("train"), data.split_indices("val")
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError(f"{args.prepared}: needs train and val studies, has {len(train_idx)} and {len(val_idx)}")
    images, targets = data.regressor, data.landmarks_norm  # (N, S, S) uint8, (N, K, 2)
    size = images.shape[-1]

    def preview() -> np.ndarray:
        xy = from_norm(targets[train_idx[:8]], size, size)
        return preview_image(images[train_idx[:8]], xy, aug, np.random.default_rng(base.seed), names=names)

    train_aug = aug if (aug.translate or aug.rotate or aug.scale) else None
    params = {f"{s}.{k}": v for s in ("base", "augment", STAGE) for k, v in as_dict(p[s]).items()}
    metrics = run_training(
        stage=STAGE, kind="regressor",
        builder={"model": cfg.model, "n_landmarks": len(names), "dropout": cfg.dropout},
        loss_fn=nn.MSELoss(),
        train_set=RegressorDataset(images[train_idx], targets[train_idx], aug=train_aug, seed=base.seed),
        val_set=RegressorDataset(images[val_idx], targets[val_idx], aug=None, seed=base.seed),
        cfg=cfg, seed=base.seed, params=params,
        data_arrays=[images[train_idx], images[val_idx], targets[train_idx], targets[val_idx]],
        names=names, input_size=size,
        outputs=StageOutputs(Path(args.model_dir), Path(args.checkpoint), Path(args.metrics_json),
                             Path(args.loss_csv), Path(args.augment_png)),
        preview=preview)
    if metrics is not None:
        print(f"{STAGE}: best val loss {metrics['best_val_loss']:.5g} at epoch {metrics['best_epoch']}/"
              f"{metrics['epochs_run']}, {metrics['seconds_per_epoch']:.1f} s/epoch -> {args.model_dir}")


if __name__ == "__main__":
    main()
