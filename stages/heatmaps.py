"""Stage heatmaps: Gaussian target heatmaps for the U-Net, one per landmark.

    python stages/heatmaps.py PREPARED_DIR OUT_DIR PREVIEW_PNG [--params params.yaml]

Writes OUT_DIR/targets.npy, (N, K, S_u, S_u) float16 with peak 1 at each landmark (heatmap.sigma in U-Net input
pixels), row i for row i of the prepared index, and PREVIEW_PNG: the first study's targets overlaid in colour.
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np
from tqdm import tqdm

from lmfusion import pretraining
from lmfusion.coords import rescale
from lmfusion.data.prepared import load_prepared
from lmfusion.errors import DataError
from lmfusion.heatmaps import encode
from lmfusion.io import atomic_path
from lmfusion.figures.drawing import draw_points, landmark_colors, to_bgr, write_png
from lmfusion.stage import stage_main

PREVIEW_SIZE = 512  # side of each panel


def _overlay(image_u8: np.ndarray, heat: np.ndarray, xy: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Heat (H, W) in 0..1 through a colour map, blended onto the image (H, W), landmarks (K, 2) as crosses."""
    img = to_bgr(image_u8).astype(np.float32)
    heat = np.clip(heat, 0.0, 1.0)
    color = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_TURBO).astype(np.float32)
    alpha = 0.8 * np.sqrt(heat)[..., None]  # the square root keeps the Gaussian tails visible
    out = np.clip(img * (1 - alpha) + color * alpha, 0, 255).astype(np.uint8)
    return draw_points(out, xy, landmark_colors(names), radius=3, marker="cross")


def preview(image_u8: np.ndarray, heatmaps: np.ndarray, xy_hm: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """All K heatmaps (K, S, S) as one colour overlay (max over K) on the image (S, S), landmarks (K, 2) on top:
    the whole image, and beside it a zoom on the landmarks so that each Gaussian is several pixels wide."""
    s = image_u8.shape[-1]
    heat = np.asarray(heatmaps, np.float32).max(0)  # (S, S)
    full = cv2.resize(image_u8, (PREVIEW_SIZE, PREVIEW_SIZE), interpolation=cv2.INTER_LINEAR)
    panels = [_overlay(full, cv2.resize(heat, (PREVIEW_SIZE, PREVIEW_SIZE), interpolation=cv2.INTER_LINEAR),
                       rescale(xy_hm, (s, s), (PREVIEW_SIZE, PREVIEW_SIZE)), names)]
    finite = xy_hm[np.isfinite(xy_hm).all(-1)]
    if len(finite):
        centre = finite.mean(0)
        half = max(8.0, 0.6 * float((finite.max(0) - finite.min(0)).max()))  # a square around all landmarks
        x0, y0 = centre - half
        scale = PREVIEW_SIZE / (2 * half)
        warp = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)  # crop and zoom
        zoom = [cv2.warpAffine(a, warp, (PREVIEW_SIZE, PREVIEW_SIZE), flags=cv2.INTER_LINEAR) for a in
                (image_u8, heat)]
        panels.append(_overlay(zoom[0], zoom[1], (xy_hm - [x0, y0]) * scale, names))
    return np.concatenate(panels, axis=1)


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("prepared", "out_dir", "preview_png"):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--pretrain", action="store_true", help="run as the synthetic pretraining (lmfusion.pretraining)")
    args = ap.parse_args()

    p = pretraining.load_params(args.params, ("base", "heatmap"), args.pretrain)
    names, sigma = tuple(p["base"].landmarks), p["heatmap"].sigma
    data = load_prepared(args.prepared, names)
    n, s = len(data.unet), data.unet.shape[-1]
    if n == 0:
        raise DataError(f"{args.prepared}: no studies")
    xy_hm = data.landmarks_at(s)  # (N, K, 2) in U-Net input pixels
    with atomic_path(args.out_dir, is_dir=True) as tmp:
        # written study by study into the file, so memory stays at one study's maps whatever N is
        targets = np.lib.format.open_memmap(tmp / "targets.npy", mode="w+", dtype=np.float16,
                                            shape=(n, len(names), s, s))  # (N, K, S_u, S_u)
        for i in tqdm(range(n), desc="heatmaps", unit="study", file=sys.stderr, leave=False):
            targets[i] = encode(xy_hm[i], s, s, sigma, dtype=np.float16)
        picture = preview(data.unet[0], targets[0], xy_hm[0], names)
        targets.flush()
        del targets
    write_png(args.preview_png, picture)
    print(f"{n} x {len(names)} heatmaps of {s}x{s} px (sigma {sigma:g} px) -> {args.out_dir}")


if __name__ == "__main__":
    main()
