"""`lmfusion predict INPUT... --out DIR`: landmarks for DICOM files, study folders, images or a CSV of images.

Per image: <name>.json (the named landmarks in pixels and mm, confidences, flags) and <name>.png (an overlay);
for the batch: summary.csv. A failing input prints one line naming it and the others go on; the exit code is 1
when any input failed.
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

from lmfusion.data.dicom import read_dicom
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


def load_item(item: Item, spacing_arg: list[float] | None) -> tuple[np.ndarray, tuple[float, float] | None, dict]:
    """Pixels, spacing (None when unknown) and provenance of one item."""
    src = item.source
    info: dict = {"input": str(src)}
    if src.is_dir():
        choice = choose_mid_sagittal_t2(src)
        info.update(chosen_file=str(choice.path), selection=choice.reason)
        img = read_dicom(choice.path)
        return img.pixels, img.spacing, info
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    if src.suffix.lower() == ".csv":
        raise DataError(f"{src}: a CSV needs an 'image' column listing image paths relative to it")
    if src.suffix.lower() == ".dcm":
        img = read_dicom(src)
        return img.pixels, img.spacing or item.spacing, info
    if src.suffix.lower() in IMAGE_SUFFIXES:
        pixels = read_image(src)
        spacing = item.spacing
        if spacing is None and spacing_arg:
            spacing = (spacing_arg[0], spacing_arg[-1])
        return pixels, spacing, info
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
    rows, failures = [], 0
    for item in tqdm(items, desc="predict", unit="image", disable=len(items) < 2, file=sys.stderr):
        try:
            pixels, spacing, info = load_item(item, args.spacing)
            if spacing is None:
                log.warning("%s: no pixel spacing (use --spacing); assuming 1.0 mm", item.source)
            prediction = predictor.predict(pixels, spacing)
        except (LmfusionError, MemoryError, cv2.error, ValueError) as e:
            # name the file once: our readers' errors do already, the API's and others' get it prefixed
            message = f"{item.source}: {type(e).__name__}: {e}"
            if isinstance(e, LmfusionError):
                message = str(e) if str(item.source) in str(e) else f"{item.source}: {e}"
            failures += 1
            tqdm.write(f"error: {message}", file=sys.stderr)
            rows.append({"name": item.name, "input": str(item.source), "status": "error", "error": str(e)})
            continue
        record = {**info, "image_size": [int(pixels.shape[1]), int(pixels.shape[0])], **prediction.to_dict()}
        write_json(out / f"{item.name}.json", record)
        write_png(out / f"{item.name}.png", prediction_overlay(pixels, prediction))
        flags = prediction.flags
        row = {"name": item.name, "input": str(item.source), "status": "ok", "error": "",
               "method": prediction.method, "level_margin": round(prediction.level_margin, 4),
               "level_end_fit": round(prediction.level_end_fit, 4),
               "level_uncertain": flags["level_uncertain"], "low_confidence": ";".join(flags["low_confidence"]),
               "order_violated": flags["order_violated"], "implausible_spacing": flags["implausible_spacing"]}
        for n, (x, y) in zip(prediction.names, prediction.xy):
            row[f"{n}_x"], row[f"{n}_y"] = round(float(x), 3), round(float(y), 3)
        rows.append(row)
    pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
    ok = len(items) - failures
    print(f"{ok} of {len(items)} images predicted into {out}" + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0
