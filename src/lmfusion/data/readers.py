"""Dataset readers: the spinal disease challenge's DICOM studies with annotation JSON, and images with a CSV.

Both formats become `Study` records (one annotated 2-D image with its landmarks) plus `Skipped` records for the
studies that could not be used. Legend: K landmarks, H x W image; points are (x, y) = (column, row) in the image's
own pixels, pixel centres at integers, so the image covers -0.5 .. W - 0.5.

Challenge layout (`read_tianchi`):
    <root>/<split>/study<N>/image<M>.dcm      any number of series per study
    <root>/<split>_annotation.json            one record per study: studyUid, the annotated instanceUid and its
                                              points, each {coord: [x, y], tag: {identification: "L1", ...}}
CSV layout (`read_csv`): landmarks.csv with columns image (a path relative to the CSV), optional split
(train|test), optional spacing_x, spacing_y (mm per pixel), and <name>_x, <name>_y for every landmark.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from lmfusion.config import LANDMARKS
from lmfusion.data.dicom import read_dicom, read_header
from lmfusion.errors import DataError, ParamError

log = logging.getLogger("lmfusion.data")

# points the challenge annotates besides the configured landmarks; ignored unless base.landmarks names them
_CHALLENGE_POINTS = frozenset(LANDMARKS) | {"T11-T12"}
_RASTER = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


@dataclass(frozen=True)
class Study:
    study: str  # stable, human-readable id: `<split dir>/study<N>` or the image path relative to the CSV
    source: str  # image path relative to the data root (posix)
    pixels: np.ndarray  # (H, W) float32, after rescale, MONOCHROME1 inverted
    spacing: tuple[float, float]  # (x, y) mm per pixel
    landmarks: np.ndarray  # (K, 2) float64, original pixels
    split: str | None  # 'train' / 'test' when the source says so, else None


@dataclass(frozen=True)
class Skipped:
    study: str
    reason: str


class _Invalid(Exception):
    """One study's problem; becomes a Skipped record or a DataError depending on data.on_invalid."""


class _Collector:
    def __init__(self, on_invalid: str) -> None:
        if on_invalid not in ("skip", "error"):
            raise ParamError(f"param data.on_invalid: must be 'skip' or 'error', got {on_invalid!r}")
        self.on_invalid = on_invalid
        self.studies: list[Study] = []
        self.skipped: list[Skipped] = []
        self.seen: set[str] = set()

    def claim(self, study: str, where: str) -> None:
        """Reserve a study id; a second record for the same study is invalid."""
        if study in self.seen:
            raise _Invalid(f"listed more than once in {where}")
        self.seen.add(study)

    def invalid(self, study: str, where: str, reason: str) -> None:
        if self.on_invalid == "error":
            raise DataError(f"{study} ({where}): {reason} (data.on_invalid: skip would leave it out)")
        log.warning("skipping %s (%s): %s", study, where, reason)
        self.skipped.append(Skipped(study, reason))

    def result(self) -> tuple[list[Study], list[Skipped]]:
        return (sorted(self.studies, key=lambda s: _natural(s.study)),
                sorted(self.skipped, key=lambda s: _natural(s.study)))


def _natural(study: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts study2 before study10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", study) if part)


def read_dataset(fmt: str, path: str | os.PathLike, names: tuple[str, ...], on_invalid: str,
                 progress: bool = False) -> tuple[list[Study], list[Skipped]]:
    """Read a dataset in format `fmt` ('tianchi' or 'csv').

    Returns the valid studies and the skipped ones, both sorted by id (numbers in numeric order: study2, study10).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (data.path)")
    if fmt == "tianchi":
        return read_tianchi(path, names, on_invalid, progress=progress)
    if fmt == "csv":
        return read_csv(path, names, on_invalid, progress=progress)
    raise ParamError(f"param data.format: must be 'tianchi' or 'csv', got {fmt!r}")


def _progress(items: Iterable[Any], desc: str, progress: bool) -> Iterable[Any]:
    return tqdm(items, desc=desc, unit="study", disable=not progress, file=sys.stderr, leave=False)


def _landmarks(coords: dict[str, Any], names: tuple[str, ...], width: int, height: int) -> np.ndarray:
    """(K, 2) float64 from {name: (x, y)}, checked to be complete, finite and inside the image."""
    missing = [n for n in names if n not in coords]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise _Invalid(f"landmark {missing[0]} missing{more}")
    xy = np.full((len(names), 2), np.nan)
    for k, n in enumerate(names):
        c = coords[n]
        try:
            if isinstance(c, str) or len(c) != 2:
                raise ValueError
            x, y = float(c[0]), float(c[1])
        except (TypeError, ValueError):
            raise _Invalid(f"landmark {n} has coordinate {c!r}, expected two numbers") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise _Invalid(f"landmark {n} has a non-finite coordinate ({x}, {y})")
        if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
            raise _Invalid(f"landmark {n} at ({x:.1f}, {y:.1f}) lies outside the {width}x{height} image")
        xy[k] = x, y
    return xy


def _reason(e: DataError, path: Path, rel: str) -> str:
    """A reader's message about `path`, reworded with the path relative to the data root."""
    msg = str(e)
    prefix = f"{path}: "
    return f"{rel}: {msg[len(prefix):] if msg.startswith(prefix) else msg}"


# ---------------------------------------------------------------- challenge format


def _load_annotation(ann: Path) -> list[tuple[str, str | None, list[tuple[str, Any]]]]:
    """(studyUid, annotated instanceUid or None, [(identification, coord)]) per record; DataError if malformed."""
    try:
        records = json.loads(ann.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{ann}: not a readable annotation JSON ({type(e).__name__}: {e})") from None
    if not isinstance(records, list):
        raise DataError(f"{ann}: malformed annotation: expected a list of study records, got {type(records).__name__}")
    out = []
    for i, rec in enumerate(records):
        try:
            uid = rec["studyUid"]
            if not isinstance(uid, str) or not isinstance(rec["data"], list):
                raise TypeError("studyUid must be a string and data a list")
            if not rec["data"] or not rec["data"][0]["annotation"]:
                out.append((uid, None, []))  # annotated nothing: invalid study, not a malformed file
                continue
            entry = rec["data"][0]  # the challenge annotates one slice per study
            points = entry["annotation"][0]["data"]["point"]
            out.append((uid, str(entry["instanceUid"]),
                        [(str(p["tag"]["identification"]).strip(), p["coord"]) for p in points]))
        except (KeyError, TypeError, IndexError, AttributeError) as e:
            raise DataError(f"{ann}: malformed annotation in record {i} ({type(e).__name__}: {e})") from None
    return out


@dataclass
class _SplitIndex:
    """The DICOM headers of one split folder, read once."""

    instances: dict[str, Path]  # SOPInstanceUID -> file
    studies: dict[str, Path]  # StudyInstanceUID -> study folder
    unreadable: dict[Path, list[str]]  # study folder -> unreadable file names


def _index_split(split_dir: Path, progress: bool) -> _SplitIndex:
    index = _SplitIndex({}, {}, {})
    folders = sorted(p for p in split_dir.iterdir() if p.is_dir())
    for folder in _progress(folders, f"index {split_dir.name}", progress):
        for f in sorted(folder.rglob("*.dcm")):
            try:
                ds = read_header(f)
            except DataError:
                index.unreadable.setdefault(folder, []).append(f.relative_to(folder).as_posix())
                continue
            if "SOPInstanceUID" in ds:
                index.instances.setdefault(str(ds.SOPInstanceUID), f)
            if "StudyInstanceUID" in ds:
                index.studies.setdefault(str(ds.StudyInstanceUID), folder)
    return index


def _tianchi_study(root: Path, study: str, path: Path | None, instance: str | None, where: str,
                   unreadable: list[str], points: list[tuple[str, Any]], names: tuple[str, ...]) -> Study:
    """One record of the annotation JSON; `path` is the annotated instance's file when it was found."""
    if instance is None:
        raise _Invalid("no annotated image in the record")
    if path is None:
        raise _Invalid(f"annotated image (SOPInstanceUID {instance}) not found among {where}"
                       + (f"; unreadable: {', '.join(unreadable)}" if unreadable else ""))
    coords: dict[str, Any] = {}
    for ident, coord in points:
        if ident not in names:
            if ident in _CHALLENGE_POINTS:
                continue  # annotated by the challenge but not asked for (e.g. T11-T12)
            raise _Invalid(f"unknown landmark {ident!r}")
        if ident in coords:
            raise _Invalid(f"landmark {ident} annotated twice")
        coords[ident] = coord
    name = path.relative_to(root / study).as_posix()  # the file within its study folder, for messages
    try:
        img = read_dicom(path)
    except DataError as e:
        raise _Invalid(_reason(e, path, name)) from None
    if img.spacing is None:
        raise _Invalid(f"{name}: no PixelSpacing (0028,0030), so distances in mm are unknown")
    h, w = img.pixels.shape
    xy = _landmarks(coords, names, w, h)
    return Study(study=study, source=path.relative_to(root).as_posix(), pixels=img.pixels, spacing=img.spacing,
                 landmarks=xy, split=None)


def read_tianchi(root: str | os.PathLike, names: tuple[str, ...], on_invalid: str,
                 progress: bool = False) -> tuple[list[Study], list[Skipped]]:
    """Read every `<split>_annotation.json` in `root` with the DICOM studies of its `<split>/` folder."""
    root = Path(root)
    names = tuple(names)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; the challenge format is <split>/study<N>/*.dcm with "
                        "<split>_annotation.json beside each split folder")
    annotations = sorted(root.glob("*_annotation.json"))
    if not annotations:
        raise DataError(f"{root}: no *_annotation.json file (data.format is tianchi)")
    out = _Collector(on_invalid)
    for ann in annotations:
        records = _load_annotation(ann)
        split_dir = root / ann.name[: -len("_annotation.json")]
        if not split_dir.is_dir():
            raise DataError(f"{ann}: its image folder {split_dir.name}/ is missing")
        index = _index_split(split_dir, progress)
        for uid, instance, points in _progress(records, f"read {split_dir.name}", progress):
            path = index.instances.get(instance) if instance else None
            folder = split_dir / path.relative_to(split_dir).parts[0] if path else index.studies.get(uid)
            if folder is not None:
                study, where = f"{split_dir.name}/{folder.name}", "its DICOM files"
                unreadable = index.unreadable.get(folder, [])
            else:  # no readable file of this study: name it by its studyUid, list the folders nobody claims
                study, where = f"{split_dir.name}/{uid}", f"the DICOM files in {split_dir.name}/"
                claimed = set(index.studies.values())
                unreadable = [f"{d.name}/{f}" for d, fs in index.unreadable.items() if d not in claimed for f in fs]
            try:
                out.claim(study, ann.name)
                out.studies.append(_tianchi_study(root, study, path, instance, where, unreadable, points, names))
            except _Invalid as e:
                out.invalid(study, ann.name, str(e))
    return out.result()


# ---------------------------------------------------------------- images + CSV


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A PNG, JPEG or TIFF image, 8 or 16 bit grayscale, as (H, W) float32; colour with equal channels is gray."""
    path = Path(path)
    try:
        img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, ValueError, cv2.error) as e:
        raise DataError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    if img is None or img.size == 0:
        raise DataError(f"{path}: not a readable image")
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: pixel type {img.dtype} is not supported (8 or 16 bit grayscale)")
    if img.ndim == 2:
        return img.astype(np.float32)
    color = img[..., :3].astype(np.float32)  # (H, W, C) without alpha
    spread = float((color.max(-1) - color.min(-1)).max())
    tolerance = 2 if path.suffix.lower() in (".jpg", ".jpeg") else 0  # lossy chroma of a gray picture
    if spread > tolerance:
        raise DataError(f"{path}: a colour image (channels differ by up to {spread:g}); expected grayscale")
    return color.mean(-1)


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
        raise _Invalid(_reason(e, path, study)) from None
    split = None
    if has_split:
        split = str(row["split"]).strip().lower() if isinstance(row["split"], str) else ""
        if split not in ("train", "test"):
            raise _Invalid(f"split is {row['split']!r}, expected train or test")
    spacing = file_spacing or (1.0, 1.0)
    if has_spacing and not (pd.isna(row["spacing_x"]) and pd.isna(row["spacing_y"])):
        sx, sy = float(row["spacing_x"]), float(row["spacing_y"])
        if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0):
            raise _Invalid(f"spacing ({sx}, {sy}) must be two numbers > 0 (mm per pixel)")
        spacing = (sx, sy)
    h, w = pixels.shape
    xy = _landmarks({n: (row[f"{n}_x"], row[f"{n}_y"]) for n in names}, names, w, h)
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
    out = _Collector(on_invalid)
    rows = table.to_dict("records")
    for i, row in enumerate(_progress(rows, f"read {csv.name}", progress)):
        image = row["image"]
        if not (isinstance(image, str) and image.strip()):
            out.invalid(f"row {i + 2}", csv.name, "no image path")
            continue
        study = PurePosixPath(image.strip().replace("\\", "/")).as_posix()
        try:
            out.claim(study, csv.name)
            out.studies.append(_csv_row(row, study, csv, names, has_split, has_spacing))
        except _Invalid as e:
            out.invalid(study, csv.name, str(e))
    return out.result()
