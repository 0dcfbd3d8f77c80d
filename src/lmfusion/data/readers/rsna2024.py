"""The RSNA 2024 Lumbar Spine Degenerative Classification layout (`data.format: rsna2024`).

Layout:
    <root>/train_series_descriptions.csv    study_id, series_id, series_description (Sagittal T1, Sagittal
                                            T2/STIR, Axial T2)
    <root>/train_label_coordinates.csv      study_id, series_id, instance_number, condition, level, x, y
    <root>/train_images/<study_id>/<series_id>/<instance_number>.dcm

The landmarks are the disc levels of the `Spinal Canal Stenosis` rows on the study's Sagittal T2/STIR series
(`L1/L2` -> `L1-L2`, ...); base.landmarks names any of the five. The image is the instance holding most of them; a
level labelled on another instance of the series keeps its (x, y), which is in the same plane's pixel grid, and is
counted in `Study.off_instance`. Instance numbers need not follow the slice order, so where order matters (which
of two equally labelled instances) the slices are ordered by ImagePositionPatient along the slice normal.

Legend: K landmarks, H x W image; points are (x, y) = (column, row) in the image's own pixels.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmfusion.data.dicom import read_dicom, read_header
from lmfusion.data.readers._common import Skipped, Study, Collector, Invalid, check_landmarks, progress_bar, reason
from lmfusion.errors import DataError, ParamError

DESCRIPTIONS = "train_series_descriptions.csv"
LABELS = "train_label_coordinates.csv"
IMAGES = "train_images"
CONDITION = "Spinal Canal Stenosis"
SERIES = "Sagittal T2/STIR"
LEVELS = {"L1/L2": "L1-L2", "L2/L3": "L2-L3", "L3/L4": "L3-L4", "L4/L5": "L4-L5", "L5/S1": "L5-S1"}
DISCS = tuple(LEVELS.values())  # the landmark names this format can give, top to bottom
_COLUMNS = {DESCRIPTIONS: ("study_id", "series_id", "series_description"),
            LABELS: ("study_id", "series_id", "instance_number", "condition", "level", "x", "y")}


def _norm(text: Any) -> str:
    """Case- and space-insensitive form of a description, condition or level."""
    return " ".join(str(text).split()).lower()


def _read_table(root: Path, name: str) -> pd.DataFrame:
    """One of the two CSVs, ids as text (no float rounding of long ids); DataError naming the file."""
    path = root / name
    if not path.is_file():
        raise DataError(f"{path}: no such file (data.format is rsna2024: {DESCRIPTIONS}, {LABELS} and "
                        f"{IMAGES}/<study_id>/<series_id>/<instance_number>.dcm)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: not a readable CSV ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    missing = [c for c in _COLUMNS[name] if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (needed: {', '.join(_COLUMNS[name])})")
    table = table[list(_COLUMNS[name])].apply(lambda col: col.str.strip())
    for c in ("x", "y") if name == LABELS else ():
        table[c] = pd.to_numeric(table[c], errors="coerce")  # text becomes NaN: an invalid study, not a crash
    return table


def _sagittal_series(series: pd.DataFrame) -> list[str]:
    """The study's Sagittal T2/STIR series ids; a series listed with two descriptions is invalid."""
    out = []
    for sid, group in series.groupby("series_id", sort=True):
        descriptions = sorted(set(group["series_description"]))
        if len(descriptions) > 1:
            raise Invalid(f"series {sid} listed with {len(descriptions)} descriptions in {DESCRIPTIONS} "
                          f"({', '.join(repr(d) for d in descriptions)})")
        if _norm(descriptions[0]) == _norm(SERIES):
            out.append(str(sid))
    return out


def _level_rows(labels: pd.DataFrame, sagittal: list[str], names: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """(series id, {name: (instance number, x, y)}) of the wanted levels, checked for series, duplicates, gaps."""
    if not sagittal:
        raise Invalid(f"no {SERIES} series in {DESCRIPTIONS}")
    rows = labels[(labels["condition"].map(_norm) == _norm(CONDITION)) & labels["series_id"].isin(sagittal)]
    if rows.empty:
        raise Invalid(f"no {CONDITION} rows on its {SERIES} series ({', '.join(sagittal)}) in {LABELS}")
    if rows["series_id"].nunique() > 1:
        raise Invalid(f"{CONDITION} labelled on {rows['series_id'].nunique()} {SERIES} series "
                      f"({', '.join(sorted(set(rows['series_id'])))}): which one is the image is ambiguous")
    by_norm = {_norm(k): k for k in LEVELS}
    found: dict[str, list[tuple[Any, Any, Any]]] = {}
    for level, inst, x, y in zip(rows["level"], rows["instance_number"], rows["x"], rows["y"]):
        if _norm(level) not in by_norm:
            raise Invalid(f"unknown {CONDITION} level {level!r} (expected {', '.join(LEVELS)})")
        found.setdefault(LEVELS[by_norm[_norm(level)]], []).append((inst, x, y))
    wanted: dict[str, Any] = {}
    for name in names:
        level = next(k for k, v in LEVELS.items() if v == name)
        hits = found.get(name, [])
        if not hits:
            raise Invalid(f"level {level} missing (no {CONDITION} row for it)")
        if len(hits) > 1:
            raise Invalid(f"level {level} labelled {len(hits)} times (instances {', '.join(h[0] for h in hits)})")
        inst, x, y = hits[0]
        try:
            number = int(inst)
        except ValueError:
            raise Invalid(f"level {level}: instance_number {inst!r} is not a whole number") from None
        wanted[name] = (number, x, y)
    return str(rows["series_id"].iloc[0]), wanted


def _slice_position(path: Path, rel: str) -> float:
    """The slice's position along its normal (mm), from ImagePositionPatient and ImageOrientationPatient; the
    InstanceNumber when the file has no geometry."""
    try:
        ds = read_header(path)
    except DataError as e:
        raise Invalid(reason(e, path, rel)) from None
    orientation, position = getattr(ds, "ImageOrientationPatient", None), getattr(ds, "ImagePositionPatient", None)
    if orientation is None or position is None or len(orientation) != 6 or len(position) != 3:
        return float(getattr(ds, "InstanceNumber", 0) or 0)
    o = np.asarray(orientation, np.float64)
    return float(np.dot(np.cross(o[:3], o[3:]), np.asarray(position, np.float64)))


def choose_instance(levels: dict[str, int], positions: dict[int, float]) -> int:
    """The instance holding most levels; among equals, the one nearest the middle (median position) of all the
    labelled levels' slices, then the lower position. `levels`: name -> instance; `positions`: instance -> mm."""
    counts = Counter(levels.values())
    most = max(counts.values())
    centre = float(np.median([positions[i] for i in levels.values()]))
    return min((i for i, c in counts.items() if c == most), key=lambda i: (abs(positions[i] - centre), positions[i]))


def _rsna_study(root: Path, study: str, series: pd.DataFrame, labels: pd.DataFrame, names: tuple[str, ...]) -> Study:
    """One study: its Sagittal T2/STIR instance with the wanted levels; Invalid when it cannot be used."""
    series_id, wanted = _level_rows(labels, _sagittal_series(series), names)
    folder = root / IMAGES / study / series_id
    rel = f"{IMAGES}/{study}/{series_id}"
    if not folder.is_dir():
        raise Invalid(f"{rel}/: series folder missing")
    files = {}
    for name, (number, _, _) in wanted.items():
        files[number] = folder / f"{number}.dcm"
        if not files[number].is_file():
            level = next(k for k, v in LEVELS.items() if v == name)
            raise Invalid(f"{rel}/{number}.dcm (level {level}): no such file")
    levels = {name: number for name, (number, _, _) in wanted.items()}
    positions = ({n: _slice_position(f, f"{rel}/{n}.dcm") for n, f in files.items()} if len(files) > 1
                 else {n: 0.0 for n in files})
    chosen = choose_instance(levels, positions)
    try:
        img = read_dicom(files[chosen])
    except DataError as e:
        raise Invalid(reason(e, files[chosen], f"{rel}/{chosen}.dcm")) from None
    if img.spacing is None:
        raise Invalid(f"{rel}/{chosen}.dcm: no PixelSpacing (0028,0030), so distances in mm are unknown")
    h, w = img.pixels.shape
    xy = check_landmarks({name: (x, y) for name, (_, x, y) in wanted.items()}, names, w, h)
    return Study(study=study, source=f"{rel}/{chosen}.dcm", pixels=img.pixels, spacing=img.spacing, landmarks=xy,
                 split=None, off_instance=sum(n != chosen for n in levels.values()))


def check_rsna_names(names: tuple[str, ...]) -> None:
    """base.landmarks must name disc levels that the Spinal Canal Stenosis rows hold."""
    other = [n for n in names if n not in DISCS]
    if other:
        raise ParamError(f"param base.landmarks: data.format rsna2024 has the disc levels {', '.join(DISCS)}; "
                         f"{other[0]!r} is not one of them")


def read_rsna2024(root: str | os.PathLike, names: tuple[str, ...], on_invalid: str,
                  progress: bool = False) -> tuple[list[Study], list[Skipped]]:
    """Read every study listed in the two CSVs of `root` (a study in either file counts)."""
    root = Path(root)
    names = tuple(names)
    check_rsna_names(names)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; the rsna2024 format is {DESCRIPTIONS}, {LABELS} and {IMAGES}/")
    descriptions, labels = _read_table(root, DESCRIPTIONS), _read_table(root, LABELS)
    series_of = dict(tuple(descriptions.groupby("study_id", sort=False)))
    labels_of = dict(tuple(labels.groupby("study_id", sort=False)))
    empty_series, empty_labels = descriptions.iloc[:0], labels.iloc[:0]
    out = Collector(on_invalid)
    for study in progress_bar(sorted(set(series_of) | set(labels_of)), f"read {IMAGES}", progress):
        try:
            if not study:
                raise Invalid("empty study_id")
            out.studies.append(_rsna_study(root, study, series_of.get(study, empty_series),
                                           labels_of.get(study, empty_labels), names))
        except Invalid as e:
            out.invalid(study or "(empty study_id)", LABELS, str(e))
    return out.result()
