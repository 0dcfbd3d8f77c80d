"""`lmfusion predict INPUT... --out DIR`: landmarks for DICOM files, study folders, images or a CSV of images.

Per image: <name>.json (the named landmarks in pixels and mm, and for DICOM inputs in patient LPS mm; confidences,
flags) and <name>.png (an overlay); per DICOM input <name>.mrk.json (a 3D Slicer point list); for the batch:
summary.csv, and with --rsna-csv the study folders' disc levels in RSNA 2024's label coordinates layout. A failing
input prints one line naming it and the others go on; the exit code is 1 when any input failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from lmfusion.cli.outputs import (MARKUPS_SUFFIX, json_record, markups, rsna_ids, rsna_rows, summary_row,
                                  write_rsna_csv)
from lmfusion.data.dicom import read_dicom, read_header
from lmfusion.data.patient import SliceGeometry, slice_geometry
from lmfusion.data.readers import read_image
from lmfusion.data.series import choose_mid_sagittal_t2
from lmfusion.errors import DataError, LmfusionError
from lmfusion.figures.drawing import write_png
from lmfusion.figures.predict import prediction_overlay
from lmfusion.io import write_json
from lmfusion.api import LandmarkPredictor

log = logging.getLogger("lmfusion.predict")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


@dataclass
class Item:
    """One image to predict: where it came from, and how to get its pixels and spacing."""

    name: str  # output file stem
    source: Path  # the file or folder the user named (or the CSV row's image)
    spacing: tuple[float, float] | None = None  # from the CSV, when given there


def expand_inputs(inputs: list[str]) -> list[Item]:
    """Turn the command line into items; a CSV becomes one item per row. Unknown paths still become items, so
    they fail one by one with their own message."""
    items: list[Item] = []
    for raw in inputs:
        path = Path(raw)
        if path.suffix.lower() == ".csv" and path.is_file():
            try:
                table = pd.read_csv(path)
            except Exception as e:
                items.append(Item(path.stem, path))  # fails later with the CSV named
                log.debug("unreadable CSV %s: %s", path, e)
                continue
            if "image" not in table.columns:
                items.append(Item(path.stem, path))
                continue
            for _, row in table.iterrows():
                spacing = None
                if "spacing_x" in table.columns and "spacing_y" in table.columns:
                    spacing = (float(row["spacing_x"]), float(row["spacing_y"]))
                img = path.parent / str(row["image"])
                items.append(Item(Path(str(row["image"])).with_suffix("").as_posix().replace("/", "_"), img, spacing))
        else:
            items.append(Item(path.stem if path.is_file() else path.name, path))
    seen: dict[str, int] = {}
    for it in items:  # unique output names
        n = seen.get(it.name, 0)
        seen[it.name] = n + 1
        if n:
            it.name = f"{it.name}_{n + 1}"
    return items


@dataclass
class Loaded:
    """One item's pixels, spacing (None when unknown), provenance and, for DICOM, where the slice lies."""

    pixels: np.ndarray  # (H, W)
    spacing: tuple[float, float] | None
    info: dict
    geometry: SliceGeometry | None = None
    chosen: Path | None = None  # a study folder's chosen slice


def _load_dicom(path: Path, info: dict, chosen: Path | None = None) -> Loaded:
    """A DICOM slice with its geometry: a slice without position, orientation or spacing fails (DataError)."""
    geometry = slice_geometry(read_header(path), path)
    img = read_dicom(path)
    return Loaded(img.pixels, geometry.spacing, info, geometry, chosen)


def load_item(item: Item, spacing_arg: list[float] | None) -> Loaded:
    """Pixels, spacing, provenance and (DICOM) geometry of one item."""
    src = item.source
    info: dict = {"input": str(src)}
    if src.is_dir():
        choice = choose_mid_sagittal_t2(src)
        info.update(chosen_file=str(choice.path), selection=choice.reason)
        return _load_dicom(choice.path, info, choice.path)
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    if src.suffix.lower() == ".csv":
        raise DataError(f"{src}: a CSV needs an 'image' column listing image paths relative to it")
    if src.suffix.lower() == ".dcm":
        return _load_dicom(src, info)
    if src.suffix.lower() in IMAGE_SUFFIXES:
        pixels = read_image(src)
        spacing = item.spacing
        if spacing is None and spacing_arg:
            spacing = (spacing_arg[0], spacing_arg[-1])
        return Loaded(pixels, spacing, info)
    raise DataError(f"{src}: unsupported file type '{src.suffix}' (use .dcm, .png, .jpg, .tif, a study folder "
                    "or a CSV)")


def run_predict(args: argparse.Namespace) -> int:
    if args.spacing is not None and (len(args.spacing) not in (1, 2) or min(args.spacing) <= 0):
        raise LmfusionError(f"--spacing {args.spacing}: give one or two positive numbers (mm per pixel, x [y])")
    if args.mlflow_uri:
        predictor = LandmarkPredictor.from_mlflow(args.mlflow_uri, sigma=args.sigma, method=args.method,
                                                  device=args.device)
    else:
        predictor = LandmarkPredictor.from_pipeline(args.pipeline, sigma=args.sigma, method=args.method,
                                                    device=args.device)
    how = "as asked" if args.method else "the best on the validation split"
    print(f"method: {predictor.method} ({how})", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = expand_inputs(args.inputs)
    rows, rsna, failures = [], [], 0
    for item in tqdm(items, desc="predict", unit="image", disable=len(items) < 2, file=sys.stderr):
        try:
            loaded = load_item(item, args.spacing)
            if loaded.spacing is None:
                log.warning("%s: no pixel spacing (use --spacing); assuming 1.0 mm", item.source)
            prediction = predictor.predict(loaded.pixels, loaded.spacing)
        except (LmfusionError, MemoryError, cv2.error, ValueError) as e:
            # name the file once: our readers' errors do already, the API's and others' get it prefixed
            message = f"{item.source}: {type(e).__name__}: {e}"
            if isinstance(e, LmfusionError):
                message = str(e) if str(item.source) in str(e) else f"{item.source}: {e}"
            failures += 1
            tqdm.write(f"error: {message}", file=sys.stderr)
            rows.append({"name": item.name, "input": str(item.source), "status": "error", "error": str(e)})
            continue
        pixels, geometry = loaded.pixels, loaded.geometry
        write_json(out / f"{item.name}.json", json_record(loaded.info, (int(pixels.shape[1]), int(pixels.shape[0])),
                                                          prediction, geometry))
        write_png(out / f"{item.name}.png", prediction_overlay(pixels, prediction))
        if geometry is not None:
            write_json(out / f"{item.name}{MARKUPS_SUFFIX}",
                       markups(prediction.names, geometry.to_lps(prediction.xy), item.name,
                               f"lmfusion {prediction.method}"))
        if loaded.chosen is not None:
            rsna += rsna_rows(rsna_ids(item.source, loaded.chosen, geometry), prediction)
        rows.append(summary_row(item.name, item.source, prediction))
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    if args.rsna_csv:
        write_rsna_csv(args.rsna_csv, rsna)
    ok = len(items) - failures
    print(f"{ok} of {len(items)} images predicted into {out}" + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0
