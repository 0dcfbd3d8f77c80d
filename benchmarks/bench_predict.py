"""Per-image latency of `lmfusion predict` on this machine, split by step, with the models loaded once.

    python benchmarks/bench_predict.py [--pipeline .] [--n 20]

Runs on the test studies of the prepared data (their original DICOMs): load (read the DICOM), preprocess (window,
equalize, resize to both sizes), regressor, U-Net, decode (every method, the chain included), write (JSON +
overlay PNG).
Target: at most 1 s per image on the CPU at the default sizes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lmfusion.data.dicom import read_dicom
from lmfusion.data.prepared import load_prepared
from lmfusion.io import write_json
from lmfusion.figures.drawing import write_png
from lmfusion.figures.predict import prediction_overlay
from lmfusion.api import LandmarkPredictor, Prediction, quality_flags
from lmfusion.nets.infer import to_input


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default=".")
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    root = Path(args.pipeline)
    t0 = time.perf_counter()
    predictor = LandmarkPredictor.from_pipeline(root)
    load_models = time.perf_counter() - t0
    net = predictor.networks
    data = load_prepared(root / "build" / "prepared", predictor.names)
    rows = data.split_indices("test")[: args.n]
    steps = {k: [] for k in ("load", "preprocess", "regressor", "unet", "decode", "write")}
    with tempfile.TemporaryDirectory() as out, torch.no_grad():
        for i, row in enumerate(rows):
            t = time.perf_counter()
            img = read_dicom(root / "data" / data.index["source"].iloc[row])
            steps["load"].append(time.perf_counter() - t)
            t = time.perf_counter()
            hm_u8, reg_u8 = predictor.preprocess(img.pixels)
            steps["preprocess"].append(time.perf_counter() - t)
            t = time.perf_counter()
            coords = net.regressor(to_input(reg_u8[None])).numpy()  # (1, K, 2)
            steps["regressor"].append(time.perf_counter() - t)
            t = time.perf_counter()
            heatmaps = torch.sigmoid(net.unet(to_input(hm_u8[None]))).numpy().astype(np.float16)
            steps["unet"].append(time.perf_counter() - t)
            t = time.perf_counter()
            h, w = img.pixels.shape
            dec = predictor.decoder.decode(coords, heatmaps, np.array([[w, h]], np.float64), np.array([img.spacing]))
            steps["decode"].append(time.perf_counter() - t)
            t = time.perf_counter()
            m = predictor.method
            xy, conf = dec.xy[m][0], dec.scores[m][0]
            result = Prediction(predictor.names, xy, img.spacing, conf, m,
                                quality_flags(predictor.names, xy, conf, img.spacing, True), float(dec.margin[0]))
            write_json(Path(out) / f"{i}.json", result.to_dict())
            write_png(Path(out) / f"{i}.png", prediction_overlay(img.pixels, result))
            steps["write"].append(time.perf_counter() - t)
    print(f"model load (once per batch): {load_models:.2f} s; {len(rows)} images; torch threads "
          f"{torch.get_num_threads()}; sizes U-Net {net.hm_size} px, regressor {net.reg_size} px")
    total = np.sum([np.array(v) for v in steps.values()], axis=0)
    for k, v in steps.items():
        print(f"  {k:12s} {1000 * np.median(v):8.1f} ms (median)   {1000 * np.max(v):8.1f} ms (max)")
    print(f"  {'per image':12s} {1000 * np.median(total):8.1f} ms (median)   {1000 * np.max(total):8.1f} ms (max)"
          f"   target <= 1000 ms: {'met' if np.max(total) <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
