"""benchmarks/bench_fusion.py's hard set: cropped studies whose landmarks stay inside, read back by the CSV reader
with the given splits (the training and evaluation it runs are the pipeline's own stages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import load_benchmark
from lmfusion.config import LANDMARKS
from lmfusion.data.readers import read_dataset

REPO = Path(__file__).resolve().parents[1]


def _bench():
    return load_benchmark("bench_fusion")


def test_the_hard_set_is_cropped_around_every_landmark_and_read_back_with_its_splits(tmp_path: Path) -> None:
    bench = _bench()
    image = np.arange(100 * 80, dtype=np.uint16).reshape(100, 80)
    xy = np.array([[30.0, 20.0], [40.0, 60.0]])
    for seed in range(5):
        crop, moved = bench._crop(image, xy, 0.6, np.random.default_rng(seed))
        assert (moved >= 0).all() and (moved[:, 0] < crop.shape[1]).all() and (moved[:, 1] < crop.shape[0]).all()
        x0, y0 = int(xy[0, 0] - moved[0, 0]), int(xy[0, 1] - moved[0, 1])
        assert crop[0, 0] == image[y0, x0]  # the pixels move with the points
    bench.write_hard_set(tmp_path, train=3, test=2, seed=0, style="target", margin=0.3)
    studies, skipped = read_dataset("csv", tmp_path / "landmarks.csv", LANDMARKS, "error")
    assert skipped == [] and [s.split for s in studies] == ["train"] * 3 + ["test"] * 2
    for s in studies:
        h, w = s.pixels.shape
        assert (s.landmarks >= 0).all() and (s.landmarks[:, 0] < w).all() and (s.landmarks[:, 1] < h).all()
