"""Time of the chain decode (candidates, DP, margin, sub-pixel) on a batch of studies, on this machine.

    python benchmarks/bench_chain.py [--predictions build/outputs/test.npz] [--n 50] [--repeats 3]

With --predictions, decodes the cached U-Net heatmaps and regressor outputs of that file (its first n studies,
repeated to n when it has fewer); otherwise n synthetic studies: random background with a Gaussian peak per landmark
and a weaker impostor a level down. The chain model is fitted on the regressed points themselves: only the time is
measured here, not the accuracy. Target: at most 2 s for 50 studies of 11 x 256 x 256 on the CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lmfusion.config import load_params
from lmfusion.config.geometry import decode_geometry
from lmfusion.decoding import chain, fit
from lmfusion.heatmaps import encode

MM_PER_HM_PX = 1.3  # a typical 512 px, 0.65 mm/px study on a 256 px heatmap


def _synthetic(n: int, k: int = 11, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) float16 heatmaps and (N, K, 2) regressed points in heatmap px."""
    rng = np.random.default_rng(seed)
    truth = np.stack([np.full(k, 120.0), 40.0 + 16.0 * np.arange(k)], -1) + rng.normal(0, 3, (n, k, 2))
    hm = np.empty((n, k, size, size), np.float16)
    for i in range(n):  # one study at a time keeps the float32 working set small
        peaks = np.maximum(encode(truth[i], size, size, 2.0) * 0.9,
                           encode(truth[i] + [0.0, 32.0], size, size, 2.0) * 0.3)  # (K, H, W)
        hm[i] = peaks + rng.uniform(0, 1e-3, (k, size, size))
    return hm, truth + rng.normal(0, 4, truth.shape)


def _load(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        hm, coords = z["heatmaps"], z["coords_norm"]
    take = np.resize(np.arange(len(hm)), n)  # repeat the studies when the file has fewer than n
    size = np.array(hm.shape[:-3:-1], np.float64)  # (W, H)
    return hm[take], coords[take] * size - 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictions", default=None, help="an .npz with heatmaps and coords_norm")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-candidates", type=int, default=8)
    ap.add_argument("--lend-penalty", type=float, default=None)
    ap.add_argument("--unit", default="mm", choices=chain.UNITS)
    ap.add_argument("--params", default="params.yaml", help="params.yaml for the chain's lengths (chain.rival_sep...)")
    args = ap.parse_args()
    hm, reg = _load(args.predictions, args.n) if args.predictions else _synthetic(args.n)
    mm = np.full((len(reg), 2), MM_PER_HM_PX)
    model = fit.fit_chain_model(reg, mm, args.unit)
    p = load_params(args.params, ("heatmap", "fusion", "chain"))
    geometry = decode_geometry(p["heatmap"], p["fusion"], p["chain"], hm.shape[-1])  # the params' lengths, scaled
    settings = chain.ChainSettings(n_candidates=args.n_candidates, lend_penalty=args.lend_penalty,
                                   rival_sep=geometry.rival_sep, end_radius=geometry.end_radius)
    sigma = np.full(hm.shape[1], 4.0)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        chain.decode(hm, reg, mm, sigma, model, settings, min_product=1e-4)
        times.append(time.perf_counter() - t)
    source = args.predictions or "synthetic"
    print(f"{len(hm)} studies of {hm.shape[1]} x {hm.shape[2]} x {hm.shape[3]} ({source}), {settings}")
    print(f"  decode {np.median(times):.3f} s (median of {args.repeats}), {np.min(times):.3f} s (min)   "
          f"target <= 2 s: {'met' if np.median(times) <= 2.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
