"""DICOM reading and writing with pydicom: 16-bit, RescaleSlope/Intercept, MONOCHROME1, PixelSpacing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID

from lmfusion.errors import DataError


@dataclass(frozen=True)
class DicomImage:
    pixels: np.ndarray  # (H, W) float32, after rescale, MONOCHROME1 inverted so that bright = high signal
    spacing: tuple[float, float] | None  # (x, y) mm per pixel; None when PixelSpacing is missing
    path: Path


def read_header(path: str | os.PathLike) -> pydicom.Dataset:
    """The header only (no pixel data), for finding instances and choosing series."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # pydicom raises several types for broken files
        raise DataError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})") from None


def read_dicom(path: str | os.PathLike) -> DicomImage:
    """Read one single-frame grayscale DICOM image as float32 with rescale applied."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
    except Exception as e:
        raise DataError(f"{path}: not a readable DICOM image ({type(e).__name__}: {e})") from None
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or arr.ndim != 2:
        raise DataError(f"{path}: expected a single-frame grayscale image, got {photometric} with shape {arr.shape}")
    bits = int(getattr(ds, "BitsStored", 16))
    if bits > 16:
        raise DataError(f"{path}: unexpected bit depth {bits} (8 to 16 bits stored are supported)")
    pixels = arr.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1.0) or 1.0) + float(
        getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    if photometric == "MONOCHROME1":
        pixels = pixels.max() + pixels.min() - pixels
    spacing = None
    ps = getattr(ds, "PixelSpacing", None)
    if ps is not None and len(ps) == 2 and float(ps[0]) > 0 and float(ps[1]) > 0:
        # PixelSpacing is (row spacing, column spacing) = (y, x)
        spacing = (float(ps[1]), float(ps[0]))
    return DicomImage(pixels=pixels, spacing=spacing, path=path)


def write_dicom(
    path: str | os.PathLike,
    pixels: np.ndarray,
    *,
    spacing: tuple[float, float] | None,
    study_uid: str,
    series_uid: str,
    instance_uid: str,
    series_description: str = "T2_SAG",
    series_number: int = 1,
    instance_number: int = 1,
    orientation: tuple[float, ...] = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    position: tuple[float, float, float] = (0.0, 0.0, 0.0),
    echo_time: float | None = None,
    repetition_time: float | None = None,
    rescale: tuple[float, float] = (1.0, 0.0),
    monochrome1: bool = False,
    patient_id: str = "anonymous",
) -> None:
    """Write a 16-bit unsigned MR image; deterministic bytes for the same arguments (no dates, no random UIDs).

    `pixels` are the stored values (uint16); `rescale` = (slope, intercept) is written as is. `spacing` is (x, y).
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise ValueError(f"write_dicom expects a 2-D uint16 array, got {pixels.dtype} {pixels.shape}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = instance_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MR"
    ds.PatientID = patient_id
    ds.SeriesDescription = series_description
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.ImagePositionPatient = [float(v) for v in position]
    if echo_time is not None:
        ds.EchoTime = float(echo_time)
    if repetition_time is not None:
        ds.RepetitionTime = float(repetition_time)
    if spacing is not None:
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
    _set_pixels(ds, pixels, rescale, monochrome1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _set_pixels(ds: FileDataset, pixels: np.ndarray, rescale: tuple[float, float], monochrome1: bool) -> None:
    """The image pixel module: 16-bit unsigned stored values, one sample, the rescale written as is."""
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = float(rescale[0])
    ds.RescaleIntercept = float(rescale[1])
    ds.PixelData = np.ascontiguousarray(pixels).astype("<u2").tobytes()
