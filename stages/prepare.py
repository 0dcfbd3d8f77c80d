"""Stage prepare: read the dataset, window, equalize and resize every study to both network sizes, split.

    python stages/prepare.py DATA_PATH OUT_DIR METRICS_JSON MONTAGE_PNG [--params params.yaml]

Writes OUT_DIR (index.csv, unet.npy, regressor.npy: see lmfusion.data.prepared), METRICS_JSON (study counts per
split, the skipped studies and why, the studies whose levels were labelled on several slices, the range of pixel
spacings and matrix sizes, the lumbosacral turn's min, median and max) and MONTAGE_PNG (16 prepared U-Net inputs with their landmarks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from lmfusion.anatomy import lumbosacral_turn_deg
from lmfusion.config import pretraining
from lmfusion.data.prepared import save_prepared
from lmfusion.data.preprocess import preprocess_sizes
from lmfusion.data.readers import Study, read_dataset
from lmfusion.data.readers.tianchi import synthetic_summary
from lmfusion.data.splits import assign_splits
from lmfusion.errors import DataError
from lmfusion.figures.drawing import write_png
from lmfusion.figures.prepared import prepared_montage
from lmfusion.io import write_json
from lmfusion.stage import stage_main


def index_table(studies: list[Study], splits: list[str], names: tuple[str, ...]) -> pd.DataFrame:
    """One row per study in the layout of lmfusion.data.prepared."""
    rows = []
    for s, split in zip(studies, splits):
        h, w = s.pixels.shape
        row = {"study": s.study, "source": s.source, "split": split, "width": w, "height": h,
               "spacing_x": s.spacing[0], "spacing_y": s.spacing[1]}
        for n, (x, y) in zip(names, s.landmarks):
            row[f"{n}_x"], row[f"{n}_y"] = x, y
        rows.append(row)
    return pd.DataFrame(rows)


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("data_path", "out_dir", "metrics_json", "montage_png"):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--pretrain", action="store_true", help="run as the synthetic pretraining (lmfusion.config.pretraining)")
    args = ap.parse_args()

    p = pretraining.load_params(args.params, ("base", "data", "prepare"), args.pretrain)
    base, data_cfg, cfg = p["base"], p["data"], p["prepare"]
    names = tuple(base.landmarks)
    studies, skipped = read_dataset(data_cfg.format, args.data_path, names, data_cfg.on_invalid, progress=True)
    if not studies:
        example = f"; e.g. {skipped[0].study}: {skipped[0].reason}" if skipped else ""
        raise DataError(f"{args.data_path}: no valid study ({len(skipped)} skipped{example})")
    splits = assign_splits([s.study for s in studies], [s.split for s in studies], val_size=cfg.val_size,
                           test_size=cfg.test_size, seed=base.seed)

    unet = np.empty((len(studies), cfg.unet_size, cfg.unet_size), np.uint8)  # (N, S_u, S_u)
    regressor = np.empty((len(studies), cfg.regressor_size, cfg.regressor_size), np.uint8)  # (N, S_r, S_r)
    for i, s in enumerate(tqdm(studies, desc="preprocess", unit="study", file=sys.stderr, leave=False)):
        unet[i], regressor[i] = preprocess_sizes(s.pixels, (cfg.unet_size, cfg.regressor_size), cfg)
    index = index_table(studies, splits, names)
    spacing = index[["spacing_x", "spacing_y"]].to_numpy()
    matrix = index[["width", "height"]].to_numpy()
    metrics = {
        "studies": len(studies),
        **{split: splits.count(split) for split in ("train", "val", "test")},
        "skipped": len(skipped),
        "skipped_studies": [{"study": s.study, "reason": s.reason} for s in skipped],
        # rsna2024: studies with levels labelled on several slices (the others' (x, y) kept on the chosen one)
        "multi_instance": sum(s.off_instance > 0 for s in studies),
        "spacing_mm": {"min": round(float(spacing.min()), 4), "max": round(float(spacing.max()), 4)},
        "matrix_px": {"min": int(matrix.min()), "max": int(matrix.max())},
    }
    turn = lumbosacral_turn_deg(np.stack([s.landmarks for s in studies]), spacing, names)
    if turn is not None:  # how steep the lumbosacral junctions are: the hardest studies to count
        metrics["lumbosacral_turn_deg"] = {k: round(float(f(turn)), 2) for k, f in
                                           (("min", np.min), ("median", np.median), ("max", np.max))}
    synthetic = synthetic_summary(args.data_path) if Path(args.data_path).is_dir() else None
    if synthetic is not None:  # `lmfusion synth` data: how many studies show each hard case
        metrics["synthetic_cases"] = synthetic["cases"]
    picture = prepared_montage(index, unet, names, turn)
    save_prepared(args.out_dir, index, unet, regressor)
    write_png(args.montage_png, picture)
    write_json(args.metrics_json, metrics)
    print(f"{len(studies)} studies ({metrics['train']} train, {metrics['val']} val, {metrics['test']} test), "
          f"{len(skipped)} skipped -> {args.out_dir}")


if __name__ == "__main__":
    main()
