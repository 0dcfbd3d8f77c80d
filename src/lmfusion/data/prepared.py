"""The prepare stage's output: one folder that every later stage reads.

Layout of `build/prepared/`:
    index.csv       one row per study: study, source, split (train|val|test), width, height (original pixels),
                    spacing_x, spacing_y (mm per pixel), <name>_x, <name>_y per landmark (original pixels)
    unet.npy        (N, S_u, S_u) uint8, windowed, equalized, resized to prepare.unet_size
    regressor.npy   (N, S_r, S_r) uint8, the same at prepare.regressor_size
Row i of index.csv is image i of both arrays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lmfusion.coords import rescale, to_norm
from lmfusion.errors import DataError
from lmfusion.io import atomic_path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Prepared:
    """Legend: N studies, K landmarks, S image side."""

    index: pd.DataFrame
    names: tuple[str, ...]
    unet: np.ndarray  # (N, S_u, S_u) uint8
    regressor: np.ndarray  # (N, S_r, S_r) uint8

    @property
    def landmarks(self) -> np.ndarray:
        """(N, K, 2) original pixel coordinates."""
        cols = [c for n in self.names for c in (f"{n}_x", f"{n}_y")]
        return self.index[cols].to_numpy(np.float64).reshape(len(self.index), len(self.names), 2)

    @property
    def sizes(self) -> np.ndarray:
        """(N, 2) original (width, height)."""
        return self.index[["width", "height"]].to_numpy(np.float64)

    @property
    def spacing(self) -> np.ndarray:
        """(N, 2) mm per pixel in (x, y)."""
        return self.index[["spacing_x", "spacing_y"]].to_numpy(np.float64)

    @property
    def landmarks_norm(self) -> np.ndarray:
        """(N, K, 2) in 0..1 of the image (the regressor's targets)."""
        return to_norm(self.landmarks, self.sizes[:, None, 0], self.sizes[:, None, 1])

    def landmarks_at(self, size: int) -> np.ndarray:
        """(N, K, 2) landmarks in the pixels of the images resized to size x size."""
        return rescale(self.landmarks, (self.sizes[:, None, 0], self.sizes[:, None, 1]), (size, size))

    def split_indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.index["split"].to_numpy() == split)


def save_prepared(out_dir: str | os.PathLike, index: pd.DataFrame, unet: np.ndarray, regressor: np.ndarray) -> None:
    """Write the folder atomically: it appears whole or not at all."""
    with atomic_path(out_dir, is_dir=True) as tmp:
        index.to_csv(tmp / "index.csv", index=False, float_format="%.6f")
        np.save(tmp / "unet.npy", unet)
        np.save(tmp / "regressor.npy", regressor)


def load_prepared(in_dir: str | os.PathLike, names: tuple[str, ...]) -> Prepared:
    """Read the prepare stage's folder, checking it against the landmark names in params."""
    in_dir = Path(in_dir)
    try:
        index = pd.read_csv(in_dir / "index.csv", dtype={"study": str, "source": str, "split": str})
        unet = np.load(in_dir / "unet.npy")
        regressor = np.load(in_dir / "regressor.npy")
    except FileNotFoundError as e:
        raise DataError(f"{e.filename}: missing; run the prepare stage first (dvc repro prepare)") from None
    missing = [f"{n}_{a}" for n in names for a in "xy" if f"{n}_{a}" not in index.columns]
    if missing:
        raise DataError(f"{in_dir / 'index.csv'}: no column {missing[0]} for the landmarks in params "
                        f"(base.landmarks changed? rerun prepare)")
    if not (len(index) == len(unet) == len(regressor)):
        raise DataError(f"{in_dir}: index.csv has {len(index)} rows but the arrays hold {len(unet)} and "
                        f"{len(regressor)} images")
    return Prepared(index=index, names=tuple(names), unet=unet, regressor=regressor)
