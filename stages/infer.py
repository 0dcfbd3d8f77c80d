"""Stage infer: raw outputs of both trained networks on the val and test splits (no fusion params).

    python stages/infer.py PREPARED_DIR REGRESSOR_DIR HEATMAP_DIR OUT_DIR [--params params.yaml]

Both networks see every image at the test-time zooms of infer.zooms (`Networks.outputs`). Writes OUT_DIR/<split>.npz
with rows (indices into the prepared data), coords_norm (N, K, 2) float32 and heatmaps
(N, K, H, W) float16 probabilities (K + 1 maps, the sacrum map last, from a U-Net trained with
train_unet.sacrum_channel), and OUT_DIR/networks.json with the two models' metas (so the stages after this
one link the training runs without loading torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lmfusion.config import load_params
from lmfusion.data.prepared import load_prepared
from lmfusion.errors import DataError
from lmfusion.io import atomic_path, write_json
from lmfusion.nets.infer import Networks
from lmfusion.stage import stage_main


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prepared")
    ap.add_argument("regressor_dir")
    ap.add_argument("heatmap_dir")
    ap.add_argument("out")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()

    params = load_params(args.params, ("base", "infer"))
    base, zooms = params["base"], params["infer"].zooms
    data = load_prepared(args.prepared, base.landmarks)
    networks = Networks.load(Path(args.regressor_dir) / "model.pt", Path(args.heatmap_dir) / "model.pt")
    if networks.names != tuple(base.landmarks):
        raise DataError(f"{args.regressor_dir}: trained for landmarks {networks.names}, params say "
                        f"{tuple(base.landmarks)}; retrain (dvc repro)")
    if data.unet.shape[-1] != networks.hm_size or data.regressor.shape[-1] != networks.reg_size:
        raise DataError(f"{args.prepared}: image sizes {data.unet.shape[-1]}/{data.regressor.shape[-1]} differ from "
                        f"the models' {networks.hm_size}/{networks.reg_size}; retrain (dvc repro)")
    with atomic_path(args.out, is_dir=True) as tmp:
        for split in ("val", "test"):
            rows = data.split_indices(split)
            coords, heatmaps = networks.outputs(data.unet[rows], data.regressor[rows], zooms=zooms)
            np.savez(tmp / f"{split}.npz", rows=rows, coords_norm=coords, heatmaps=heatmaps)
            print(f"{split}: {len(rows)} images at zooms {list(zooms)} -> coords {coords.shape}, heatmaps "
                  f"{heatmaps.shape}")
        write_json(tmp / "networks.json", {"train_xception": networks.meta["regressor"],
                                           "train_unet": networks.meta["heatmap"]})


if __name__ == "__main__":
    main()
