"""Slice pixels to patient coordinates (DICOM LPS, mm) and the identifiers of the slice they lie on.

DICOM's image plane module: ImageOrientationPatient's first triplet is the direction of increasing column index
(along a row), its second the direction of increasing row index; PixelSpacing is (row spacing, column spacing) =
(y, x); ImagePositionPatient is the centre of the first (top left) pixel. With pixel centres at integer (x, y) =
(column, row):

    P(x, y) = ImagePositionPatient + x * PixelSpacing[1] * IOP[0:3] + y * PixelSpacing[0] * IOP[3:6]

Legend: K landmarks; points are (x, y) in the slice's own pixels, (K, 2); patient points are (K, 3) in LPS mm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmfusion.errors import DataError

_TAGS = {"ImagePositionPatient": ("(0020,0032)", 3), "ImageOrientationPatient": ("(0020,0037)", 6),
         "PixelSpacing": ("(0028,0030)", 2)}


@dataclass(frozen=True)
class SliceGeometry:
    """Where one slice lies in the patient, and which instance, series and study it is."""

    position: tuple[float, float, float]  # ImagePositionPatient: the first pixel's centre, LPS mm
    orientation: tuple[float, ...]  # ImageOrientationPatient: (column direction..., row direction...), 6 cosines
    spacing: tuple[float, float]  # (x, y) mm per pixel, i.e. (PixelSpacing[1], PixelSpacing[0])
    sop_instance_uid: str | None = None
    series_instance_uid: str | None = None
    study_instance_uid: str | None = None
    instance_number: int | None = None

    def to_lps(self, xy: np.ndarray) -> np.ndarray:
        """(K, 2) slice pixels -> (K, 3) LPS mm."""
        return pixel_to_lps(xy, self.position, self.orientation, self.spacing)

    def to_dict(self) -> dict[str, Any]:
        return {"sop_instance_uid": self.sop_instance_uid, "series_instance_uid": self.series_instance_uid,
                "study_instance_uid": self.study_instance_uid, "instance_number": self.instance_number,
                "image_position_patient": list(self.position), "image_orientation_patient": list(self.orientation),
                "coordinate_system": "LPS"}


def pixel_to_lps(xy: np.ndarray, position: tuple[float, ...], orientation: tuple[float, ...],
                 spacing: tuple[float, float]) -> np.ndarray:
    """Patient coordinates (LPS, mm) of slice pixels.

    Args:
        xy: (K, 2) (column, row) pixel coordinates, pixel centres at integers.
        position: ImagePositionPatient (3 values).
        orientation: ImageOrientationPatient (6 values: increasing column direction, then increasing row direction).
        spacing: (x, y) mm per pixel, i.e. (PixelSpacing[1], PixelSpacing[0]).

    Returns:
        (K, 3) float64 LPS points in mm.
    """
    xy = np.asarray(xy, np.float64).reshape(-1, 2)  # (K, 2)
    o = np.asarray(orientation, np.float64)
    along_row, along_column = o[:3] * float(spacing[0]), o[3:6] * float(spacing[1])  # mm per column, per row step
    return np.asarray(position, np.float64) + xy[:, :1] * along_row + xy[:, 1:2] * along_column  # (K, 3)


def _values(ds: Any, tag: str, path: str | os.PathLike) -> tuple[float, ...]:
    code, count = _TAGS[tag]
    raw = getattr(ds, tag, None)
    if raw is None or raw == "":
        raise DataError(f"{path}: no {tag} {code}, so patient coordinates are unknown")
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__"):
        raw = [raw]  # pydicom gives a one-value tag as a scalar
    try:
        values = tuple(float(v) for v in raw)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {tag} {code} is not numeric ({raw!r})") from None
    if len(values) != count or not np.all(np.isfinite(values)):
        raise DataError(f"{path}: {tag} {code} must hold {count} finite numbers, got {list(values)}")
    return values


def slice_geometry(ds: Any, path: str | os.PathLike) -> SliceGeometry:
    """The geometry and identifiers of a DICOM header (a pydicom Dataset); DataError naming `path` and the missing
    or malformed tag."""
    position, orientation, ps = (_values(ds, tag, path) for tag in _TAGS)
    if min(ps) <= 0:
        raise DataError(f"{path}: PixelSpacing (0028,0030) must be positive, got {list(ps)}")
    o = np.asarray(orientation)
    if not (np.allclose(np.linalg.norm(o[:3]), 1, atol=1e-2) and np.allclose(np.linalg.norm(o[3:]), 1, atol=1e-2)):
        raise DataError(f"{path}: ImageOrientationPatient (0020,0037) is not two unit vectors ({list(orientation)})")

    def text(tag: str) -> str | None:
        value = getattr(ds, tag, None)
        return None if value in (None, "") else str(value)

    return SliceGeometry(position=position, orientation=orientation, spacing=(ps[1], ps[0]),
                         sop_instance_uid=text("SOPInstanceUID"), series_instance_uid=text("SeriesInstanceUID"),
                         study_instance_uid=text("StudyInstanceUID"), instance_number=instance_number(ds))


def instance_number(ds: Any) -> int | None:
    """A header's InstanceNumber, None where it is absent or empty."""
    number = getattr(ds, "InstanceNumber", None)
    return None if number in (None, "") else int(number)
