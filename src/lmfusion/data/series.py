"""Choose the mid-sagittal T2 slice of a study folder holding several series.

The plane comes from ImageOrientationPatient (the slice normal is the cross product of the row and column
direction cosines; sagittal when it points mostly along the patient's left-right x axis), T2 from SeriesDescription
(or EchoTime >= 60 ms when the description says neither T1 nor T2), and the middle slice from the positions
(ImagePositionPatient) projected on the normal.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmfusion.data.dicom import read_header
from lmfusion.errors import DataError

_T2 = re.compile(r"t2", re.IGNORECASE)
_T1 = re.compile(r"t1", re.IGNORECASE)


@dataclass(frozen=True)
class Choice:
    path: Path
    reason: str  # which series and slice, and why, for the user


def _normal(orientation: list[float]) -> np.ndarray:
    o = np.asarray(orientation, dtype=np.float64)
    return np.cross(o[:3], o[3:6])


def _weighting(description: str, echo_time: float | None) -> str:
    if _T2.search(description) and not _T1.search(description):
        return "T2"
    if _T1.search(description) and not _T2.search(description):
        return "T1"
    if echo_time is not None:
        return "T2" if echo_time >= 60 else "T1"
    return "unknown"


def choose_mid_sagittal_t2(folder: str | os.PathLike) -> Choice:
    """Pick the middle slice of the sagittal T2 series in `folder` (searched recursively for *.dcm)."""
    folder = Path(folder)
    files = sorted(folder.rglob("*.dcm"))
    if not files:
        raise DataError(f"{folder}: no .dcm files in this study folder")
    series: dict[str, list[tuple[Path, object]]] = {}
    for f in files:
        try:
            ds = read_header(f)
        except DataError:
            continue  # one unreadable file does not hide the rest of the study
        uid = str(getattr(ds, "SeriesInstanceUID", f.parent))
        series.setdefault(uid, []).append((f, ds))
    candidates = []
    for uid, items in series.items():
        ds0 = items[0][1]
        orientation = getattr(ds0, "ImageOrientationPatient", None)
        if orientation is None or len(orientation) != 6:
            continue
        n = _normal([float(v) for v in orientation])
        if np.argmax(np.abs(n)) != 0:
            continue  # not sagittal
        description = str(getattr(ds0, "SeriesDescription", ""))
        te = getattr(ds0, "EchoTime", None)
        weighting = _weighting(description, float(te) if te not in (None, "") else None)
        candidates.append((weighting == "T2", len(items), uid, description, weighting, n, items))
    if not candidates:
        raise DataError(f"{folder}: no sagittal series (by ImageOrientationPatient) among {len(files)} DICOM files")
    # T2 first, then the series with the most slices
    is_t2, _, uid, description, weighting, normal, items = max(candidates, key=lambda c: (c[0], c[1]))
    if not is_t2:
        raise DataError(f"{folder}: no sagittal T2 series (found sagittal {weighting}: '{description}')")

    def position(item: tuple[Path, object]) -> float:
        pos = getattr(item[1], "ImagePositionPatient", None)
        return float(np.dot(normal, [float(v) for v in pos])) if pos is not None else 0.0

    ordered = sorted(items, key=lambda it: (position(it), int(getattr(it[1], "InstanceNumber", 0) or 0)))
    mid = (len(ordered) - 1) // 2 if len(ordered) % 2 else len(ordered) // 2
    path = ordered[mid][0]
    reason = (f"series '{description}' (sagittal T2, {len(ordered)} slices), slice {mid + 1} of {len(ordered)} by "
              f"ImagePositionPatient: {path.relative_to(folder)}")
    return Choice(path=path, reason=reason)
