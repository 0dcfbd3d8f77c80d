"""`lmfusion predict INPUT... --out DIR`: landmarks for DICOM files, folders of studies, images or a CSV of images.

A folder's *.dcm files (recursively) are grouped by StudyInstanceUID, one item per study (`lmfusion.cli.study`
chooses its series and slice, by evidence or the middle one). Per item: <name>.json (the named landmarks in pixels
and mm, and for DICOM inputs in patient LPS mm; confidences, flags, and for a study which series and slice) and
<name>.png (an overlay); per DICOM input <name>.mrk.json (a 3D Slicer point list); for the batch: summary.csv, and
with --rsna-csv the studies' disc levels in RSNA 2024's label coordinates layout. `--workers` threads read the files
and decode the items; the results do not depend on it. A failing input prints one line naming it and the others go
on; the exit code is 1 when any input failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
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
from lmfusion.cli.study import predict_study
from lmfusion.data.series import Instance, group_by_study, read_folder
from lmfusion.errors import DataError, LmfusionError
from lmfusion.figures.drawing import write_png
from lmfusion.figures.predict import prediction_overlay, slice_choice_strip
from lmfusion.io import write_json
from lmfusion.api import LandmarkPredictor, Prediction

log = logging.getLogger("lmfusion.predict")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


@dataclass
class Item:
    """One image to predict: where it came from, and how to get its pixels and spacing."""

    name: str  # output file stem
    source: Path  # the file or folder the user named (or the CSV row's image)
    spacing: tuple[float, float] | None = None  # from the CSV, when given there
    instances: list[Instance] | None = None  # a study's readable DICOM files (folder inputs)


def study_items(folder: Path, workers: int = 1) -> list[Item]:
    """One item per study (StudyInstanceUID) among the folder's *.dcm files: named after the study's folder
    relative to `folder` ('/' -> '_'), or after `folder` when it holds one study (or none: that fails later)."""
    studies = list(group_by_study(read_folder(folder, workers)).values())
    if len(studies) < 2:
        return [Item(folder.name, folder, instances=studies[0] if studies else [])]
    items = []
    for instances in studies:
        where = Path(os.path.commonpath([i.path.parent for i in instances]))
        relative = where.relative_to(folder).as_posix()
        items.append(Item(folder.name if relative == "." else relative.replace("/", "_"), where,
                          instances=instances))
    return items


def expand_inputs(inputs: list[str], workers: int = 1) -> list[Item]:
    """Turn the command line into items; a CSV becomes one item per row, a folder one per study. Unknown paths
    still become items, so they fail one by one with their own message."""
    items: list[Item] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            items += study_items(path, workers)
        elif path.suffix.lower() == ".csv" and path.is_file():
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
    chosen: Path | None = None  # a study's chosen slice


@dataclass
class Outcome:
    """What became of one item: its loaded slice and prediction, or the error that stopped it."""

    item: Item
    loaded: Loaded | None = None
    prediction: Prediction | None = None
    error: Exception | None = None


def _load_dicom(path: Path, info: dict) -> Loaded:
    """A DICOM slice with its geometry: a slice without position, orientation or spacing fails (DataError)."""
    geometry = slice_geometry(read_header(path), path)
    img = read_dicom(path)
    return Loaded(img.pixels, geometry.spacing, info, geometry)


def load_item(item: Item, spacing_arg: list[float] | None) -> Loaded:
    """Pixels, spacing, provenance and (DICOM) geometry of an item that is one image (not a study)."""
    src = item.source
    info: dict = {"input": str(src)}
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


def predict_item(item: Item, predictor: LandmarkPredictor, args: argparse.Namespace) -> tuple[Loaded, Prediction]:
    """The chosen slice (a study's, by `args.slice_choice`) or the image of one item, and its landmarks."""
    if item.instances is not None:
        study = predict_study(item.source, item.instances, predictor, args.slice_choice)
        chosen = study.chosen
        loaded = Loaded(chosen.pixels, chosen.geometry.spacing, {"input": str(item.source), **study.info},
                        chosen.geometry, chosen.path)
        return loaded, study.prediction
    loaded = load_item(item, args.spacing)
    if loaded.spacing is None:
        log.warning("%s: no pixel spacing (use --spacing); assuming 1.0 mm", item.source)
    return loaded, predictor.predict(loaded.pixels, loaded.spacing)


def _attempt(item: Item, predictor: LandmarkPredictor, args: argparse.Namespace) -> Outcome:
    try:
        return Outcome(item, *predict_item(item, predictor, args))
    except (LmfusionError, MemoryError, cv2.error, ValueError) as e:
        return Outcome(item, error=e)


def _error_line(source: Path, e: Exception) -> str:
    """One line naming the input once: our readers' errors do already, the API's and others' get it prefixed."""
    if isinstance(e, LmfusionError):
        return f"error: {e}" if str(source) in str(e) else f"error: {source}: {e}"
    return f"error: {source}: {type(e).__name__}: {e}"


def _write(out: Path, name: str, loaded: Loaded, prediction: Prediction) -> None:
    """<name>.json, <name>.png and, for DICOM, <name>.mrk.json."""
    pixels, geometry = loaded.pixels, loaded.geometry
    write_json(out / f"{name}.json", json_record(loaded.info, (int(pixels.shape[1]), int(pixels.shape[0])),
                                                 prediction, geometry))
    overlay = prediction_overlay(pixels, prediction)
    choice = loaded.info.get("slice_choice")
    if choice and len(choice["tried"]) > 1:  # a study's slices: their evidence under the chosen one
        overlay = np.vstack([overlay, slice_choice_strip(overlay.shape[1], choice)])
    write_png(out / f"{name}.png", overlay)
    if geometry is not None:
        write_json(out / f"{name}{MARKUPS_SUFFIX}", markups(prediction.names, geometry.to_lps(prediction.xy), name,
                                                            f"lmfusion {prediction.method}"))


def _predictor(args: argparse.Namespace) -> LandmarkPredictor:
    """The pipeline's predictor (a folder or an MLflow artifact), after checking the command's own numbers."""
    if args.spacing is not None and (len(args.spacing) not in (1, 2) or min(args.spacing) <= 0):
        raise LmfusionError(f"--spacing {args.spacing}: give one or two positive numbers (mm per pixel, x [y])")
    if args.workers < 1:
        raise LmfusionError(f"--workers {args.workers}: give at least 1")
    options = {"sigma": args.sigma, "method": args.method, "device": args.device}
    if args.mlflow_uri:
        return LandmarkPredictor.from_mlflow(args.mlflow_uri, **options)
    return LandmarkPredictor.from_pipeline(args.pipeline, **options)


def run_predict(args: argparse.Namespace) -> int:
    predictor = _predictor(args)
    how = "as asked" if args.method else "the best on the validation split"
    print(f"method: {predictor.method} ({how})", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = expand_inputs(args.inputs, args.workers)
    studies = bool(items) and all(item.instances is not None for item in items)
    unit, units = ("study", "studies") if studies else ("image", "images")
    rows, rsna, failures = [], [], 0
    with ThreadPoolExecutor(max_workers=args.workers) as pool:  # in order, so the outputs do not depend on it
        outcomes = pool.map(lambda item: _attempt(item, predictor, args), items)
        for o in tqdm(outcomes, total=len(items), desc="predict", unit=unit, disable=len(items) < 2,
                      file=sys.stderr):
            item = o.item
            if o.error is not None:
                failures += 1
                tqdm.write(_error_line(item.source, o.error), file=sys.stderr)
                rows.append({"name": item.name, "input": str(item.source), "status": "error", "error": str(o.error)})
                continue
            _write(out, item.name, o.loaded, o.prediction)
            if o.loaded.chosen is not None:
                rsna += rsna_rows(rsna_ids(item.source, o.loaded.chosen, o.loaded.geometry), o.prediction)
            rows.append(summary_row(item.name, item.source, o.prediction))
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    if args.rsna_csv:
        write_rsna_csv(args.rsna_csv, rsna)
    ok = len(items) - failures
    print(f"{ok} of {len(items)} {units} predicted into {out}" + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0
