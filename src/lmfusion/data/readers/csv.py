"""Images listed in a CSV with their landmarks (`data.format: csv`).

Layout: landmarks.csv with columns image (a path relative to the CSV: png, jpg, tif or dcm), optional split
(train|test), optional spacing_x, spacing_y (mm per pixel), and <name>_x, <name>_y for every landmark.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from lmfusion.data.dicom import read_dicom
from lmfusion.data.readers._common import Skipped, Study, Collector, Invalid, check_landmarks, progress_bar, reason, log
from lmfusion.data.readers.image import read_image
from lmfusion.errors import DataError

_RASTER = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def _read_pixels(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    if path.suffix.lower() == ".dcm":
        img = read_dicom(path)
        return img.pixels, img.spacing
    if path.suffix.lower() in _RASTER:
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        return read_image(path), None
    raise DataError(f"{path}: unsupported file type {path.suffix!r} (png, jpg, tif or dcm)")


def _csv_row(row: dict[str, Any], study: str, csv: Path, names: tuple[str, ...], has_split: bool,
             has_spacing: bool) -> Study:
    path = csv.parent / study
    try:
        pixels, file_spacing = _read_pixels(path)
    except DataError as e:
        raise Invalid(reason(e, path, study)) from None
    split = None
    if has_split:
        split = str(row["split"]).strip().lower() if isinstance(row["split"], str) else ""
        if split not in ("train", "test"):
            raise Invalid(f"split is {row['split']!r}, expected train or test")
    spacing = file_spacing or (1.0, 1.0)
    if has_spacing and not (pd.isna(row["spacing_x"]) and pd.isna(row["spacing_y"])):
        sx, sy = float(row["spacing_x"]), float(row["spacing_y"])
        if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0):
            raise Invalid(f"spacing ({sx}, {sy}) must be two numbers > 0 (mm per pixel)")
        spacing = (sx, sy)
    h, w = pixels.shape
    xy = check_landmarks({n: (row[f"{n}_x"], row[f"{n}_y"]) for n in names}, names, w, h)
    return Study(study=study, source=study, pixels=pixels, spacing=spacing, landmarks=xy, split=split)


def read_csv(path: str | os.PathLike, names: tuple[str, ...], on_invalid: str,
             progress: bool = False) -> tuple[list[Study], list[Skipped]]:
    """Read images listed in a CSV (or in `landmarks.csv` of a folder); image paths are relative to the CSV."""
    path = Path(path)
    names = tuple(names)
    csv = path / "landmarks.csv" if path.is_dir() else path
    if not csv.is_file():
        raise DataError(f"{csv}: no such file (data.format is csv: a landmarks.csv or the path of a CSV)")
    try:
        table = pd.read_csv(csv, dtype={"image": str, "split": str})
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{csv}: not a readable CSV ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    needed = ["image"] + [f"{n}_{a}" for n in names for a in "xy"]
    if ("spacing_x" in table.columns) != ("spacing_y" in table.columns):
        needed += ["spacing_x", "spacing_y"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DataError(f"{csv}: no column {missing[0]!r} (needed: image, <name>_x and <name>_y for each of "
                        f"base.landmarks; optional: split, spacing_x and spacing_y)")
    has_split, has_spacing = "split" in table.columns, "spacing_x" in table.columns
    if not has_spacing:
        log.warning("%s: no spacing_x / spacing_y columns; distances in mm assume the DICOM's PixelSpacing or "
                    "1.0 mm per pixel", csv)
    for c in needed[1:] + (["spacing_x", "spacing_y"] if has_spacing else []):
        table[c] = pd.to_numeric(table[c], errors="coerce")  # text becomes NaN: an invalid row, not a crash
    out = Collector(on_invalid)
    rows = table.to_dict("records")
    for i, row in enumerate(progress_bar(rows, f"read {csv.name}", progress)):
        image = row["image"]
        if not (isinstance(image, str) and image.strip()):
            out.invalid(f"row {i + 2}", csv.name, "no image path")
            continue
        study = PurePosixPath(image.strip().replace("\\", "/")).as_posix()
        try:
            out.claim(study, csv.name)
            out.studies.append(_csv_row(row, study, csv, names, has_split, has_spacing))
        except Invalid as e:
            out.invalid(study, csv.name, str(e))
    return out.result()
