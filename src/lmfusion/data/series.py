"""The studies, series and slices of a folder of DICOM files, chosen from their headers alone.

Files are grouped into studies by StudyInstanceUID and into series by SeriesInstanceUID. The plane comes from
ImageOrientationPatient (the slice normal is the cross product of the row and column direction cosines; sagittal when
it points mostly along the patient's left-right x axis). A study's series is its sagittal one of the first weighting
in WEIGHTINGS (T2, then STIR, then T1, then unknown), and within a weighting the one with the most slices; a series
whose slices disagree in orientation is skipped with a reason. Slices are ordered by ImagePositionPatient projected
on the normal; the middle one, and the central band around it that `lmfusion predict` tries, come from that order.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmfusion.data.dicom import read_header
from lmfusion.errors import DataError

WEIGHTINGS = ("T2", "STIR", "T1", "unknown")  # the order of preference
STIR_INVERSION_MS = (100.0, 250.0)  # an InversionTime in this range nulls fat: a STIR
BAND_FRACTION = 1 / 3  # the central band: the middle slice +- ceil(n * BAND_FRACTION) + BAND_SHOULDERS slices
BAND_SHOULDERS = 2  # a mid-plane a third of the series off the middle keeps slices on both sides of its peak
ORIENTATION_TOLERANCE = 1e-3  # cosines of one series' slices differing by less are the same orientation
_T2 = re.compile(r"t2", re.IGNORECASE)
_T1 = re.compile(r"t1", re.IGNORECASE)
_STIR = re.compile(r"stir|tirm", re.IGNORECASE)


@dataclass(frozen=True)
class Instance:
    """One readable DICOM file and its header (a pydicom Dataset without pixel data)."""

    path: Path
    header: Any


@dataclass(frozen=True)
class Series:
    """A sagittal series: its slices ordered along the slice normal, with their positions on it."""

    uid: str
    description: str
    weighting: str  # one of WEIGHTINGS
    instances: tuple[Instance, ...]
    positions: tuple[float, ...]  # mm along the slice normal, one per instance, ascending

    @property
    def middle(self) -> int:
        """The index of the middle slice (of an even count, the upper of the two)."""
        return len(self.instances) // 2

    def band(self) -> range:
        """The indices of the central band: the middle slice +- ceil(n * BAND_FRACTION) + BAND_SHOULDERS slices."""
        n = len(self.instances)
        reach = math.ceil(n * BAND_FRACTION) + BAND_SHOULDERS
        return range(max(0, self.middle - reach), min(n, self.middle + reach + 1))

    def to_dict(self) -> dict[str, Any]:
        return {"description": self.description, "weighting": self.weighting, "series_instance_uid": self.uid,
                "slices": len(self.instances)}


def _header(path: Path) -> Instance | None:
    try:
        return Instance(path, read_header(path))
    except DataError:
        return None  # one unreadable file does not hide the rest of the study


def read_folder(folder: str | os.PathLike, workers: int = 1) -> list[Instance]:
    """The readable *.dcm files below `folder` (recursively, sorted by path), headers read by `workers` threads."""
    files = sorted(Path(folder).rglob("*.dcm"))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [i for i in pool.map(_header, files) if i is not None]


def group_by_study(instances: list[Instance]) -> dict[str, list[Instance]]:
    """Instances by StudyInstanceUID (by folder where the tag is missing), in the order first met."""
    studies: dict[str, list[Instance]] = {}
    for inst in instances:
        uid = str(getattr(inst.header, "StudyInstanceUID", "") or f"folder:{inst.path.parent}")
        studies.setdefault(uid, []).append(inst)
    return studies


def _number(ds: Any, tag: str) -> float | None:
    try:
        return float(getattr(ds, tag, None))
    except (TypeError, ValueError):
        return None  # absent, empty or not numeric


def weighting(description: str, echo_time: float | None, inversion_time: float | None) -> str:
    """STIR by description (STIR, TIRM) or by an InversionTime that nulls fat, else T2 or T1 by description, else
    by EchoTime (>= 60 ms: T2)."""
    lo, hi = STIR_INVERSION_MS
    if _STIR.search(description) or (inversion_time is not None and lo <= inversion_time <= hi):
        return "STIR"
    if _T2.search(description) and not _T1.search(description):
        return "T2"
    if _T1.search(description) and not _T2.search(description):
        return "T1"
    if echo_time is not None:
        return "T2" if echo_time >= 60 else "T1"
    return "unknown"


def _orientation(ds: Any) -> tuple[float, ...] | None:
    raw = getattr(ds, "ImageOrientationPatient", None)
    try:
        values = tuple(round(float(v), 4) for v in raw)
    except (TypeError, ValueError):
        return None
    return values if len(values) == 6 else None


def _is_sagittal(orientation: tuple[float, ...] | None) -> bool:
    if orientation is None:
        return False
    normal = np.cross(orientation[:3], orientation[3:])
    return bool(np.argmax(np.abs(normal)) == 0)


def _mixed(orientations: set[tuple[float, ...] | None]) -> bool:
    """Whether a series' slices disagree in orientation by more than scanners' rounding (1e-3 of a cosine)."""
    if None in orientations:
        return len(orientations) > 1
    values = np.array(sorted(orientations))
    return bool(np.abs(values - values[0]).max() > ORIENTATION_TOLERANCE)


def _position(ds: Any, normal: np.ndarray) -> float:
    pos = getattr(ds, "ImagePositionPatient", None)
    try:
        return float(np.dot(normal, [float(v) for v in pos]))
    except (TypeError, ValueError):
        return 0.0  # no position: ordered by InstanceNumber among the others at 0


def _series(uid: str, instances: list[Instance], orientation: tuple[float, ...]) -> Series:
    ds0 = instances[0].header
    normal = np.cross(orientation[:3], orientation[3:])
    ordered = sorted((_position(i.header, normal), int(_number(i.header, "InstanceNumber") or 0), k)
                     for k, i in enumerate(instances))
    description = str(getattr(ds0, "SeriesDescription", ""))
    kind = weighting(description, _number(ds0, "EchoTime"), _number(ds0, "InversionTime"))
    return Series(uid, description, kind, tuple(instances[k] for *_, k in ordered),
                  tuple(round(p, 3) for p, *_ in ordered))


def sagittal_series(instances: list[Instance]) -> tuple[list[Series], list[str]]:
    """The sagittal series among `instances`, and why each series with sagittal slices that was skipped was."""
    by_uid: dict[str, list[Instance]] = {}
    for inst in instances:
        by_uid.setdefault(str(getattr(inst.header, "SeriesInstanceUID", inst.path.parent)), []).append(inst)
    found, skipped = [], []
    for uid, members in by_uid.items():
        orientations = {_orientation(i.header) for i in members}
        if not any(_is_sagittal(o) for o in orientations):
            continue
        if _mixed(orientations):
            description = getattr(members[0].header, "SeriesDescription", "")
            skipped.append(f"series '{description}' ({uid}): mixed orientations ({len(orientations)} different "
                           f"ImageOrientationPatient among {len(members)} slices)")
            continue
        found.append(_series(uid, members, min(orientations)))
    return found, skipped


def choose_series(instances: list[Instance], where: str | os.PathLike) -> tuple[Series, list[str]]:
    """The study's preferred sagittal series (T2, STIR, T1, unknown; then the most slices), and the reasons series
    were skipped; DataError naming `where` when there is none."""
    if not instances:
        raise DataError(f"{where}: no readable .dcm files in this study folder")
    found, skipped = sagittal_series(instances)
    if not found:
        if skipped:
            raise DataError(f"{where}: no usable sagittal series: {'; '.join(skipped)}")
        raise DataError(f"{where}: no sagittal series (by ImageOrientationPatient) among {len(instances)} DICOM "
                        "files")
    best = min(found, key=lambda s: (WEIGHTINGS.index(s.weighting), -len(s.instances)))
    return best, skipped


__all__ = ["BAND_FRACTION", "BAND_SHOULDERS", "ORIENTATION_TOLERANCE", "STIR_INVERSION_MS", "WEIGHTINGS", "Instance",
           "Series", "choose_series", "group_by_study", "read_folder", "sagittal_series", "weighting"]
