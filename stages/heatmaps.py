"""Stage heatmaps: Gaussian target heatmaps for the U-Net, one per landmark.

    python stages/heatmaps.py PREPARED_DIR OUT_DIR PREVIEW_PNG [--params params.yaml]

Writes OUT_DIR/targets.npy, (N, K, S_u, S_u) float16 with peak 1 at each landmark (heatmap.sigma, given at
heatmap.reference_size, scaled to S_u by lmfusion.config.geometry), row i for row i of the prepared index, and
PREVIEW_PNG: the first study's targets overlaid in colour.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

from lmfusion.config import pretraining
from lmfusion.config.geometry import target_sigma
from lmfusion.data.prepared import load_prepared
from lmfusion.errors import DataError
from lmfusion.figures.drawing import write_png
from lmfusion.figures.heatmaps import targets_preview
from lmfusion.heatmaps import encode
from lmfusion.io import atomic_path
from lmfusion.stage import stage_main

@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("prepared", "out_dir", "preview_png"):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--pretrain", action="store_true", help="run as the synthetic pretraining (lmfusion.config.pretraining)")
    args = ap.parse_args()

    p = pretraining.load_params(args.params, ("base", "heatmap"), args.pretrain)
    names = tuple(p["base"].landmarks)
    data = load_prepared(args.prepared, names)
    n, s = len(data.unet), data.unet.shape[-1]
    sigma = target_sigma(p["heatmap"], s)  # in U-Net input (= heatmap) pixels
    if n == 0:
        raise DataError(f"{args.prepared}: no studies")
    xy_hm = data.landmarks_at(s)  # (N, K, 2) in U-Net input pixels
    with atomic_path(args.out_dir, is_dir=True) as tmp:
        # written study by study into the file, so memory stays at one study's maps whatever N is
        targets = np.lib.format.open_memmap(tmp / "targets.npy", mode="w+", dtype=np.float16,
                                            shape=(n, len(names), s, s))  # (N, K, S_u, S_u)
        for i in tqdm(range(n), desc="heatmaps", unit="study", file=sys.stderr, leave=False):
            targets[i] = encode(xy_hm[i], s, s, sigma, dtype=np.float16)
        picture = targets_preview(data.unet[0], targets[0], xy_hm[0], names)
        targets.flush()
        del targets
    write_png(args.preview_png, picture)
    print(f"{n} x {len(names)} heatmaps of {s}x{s} px (sigma {sigma:g} px) -> {args.out_dir}")


if __name__ == "__main__":
    main()
