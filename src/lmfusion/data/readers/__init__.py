"""Dataset readers, one module per format; each turns a dataset into `Study` records (one annotated 2-D image with
its landmarks) plus `Skipped` records for the studies that could not be used.

    tianchi     the spinal disease challenge's DICOM studies with annotation JSON (`data.format: tianchi`, alias
                `challenge`)
    csv         images listed in a CSV with their landmarks (`data.format: csv`)
    rsna2024    the RSNA 2024 lumbar spine layout: two CSVs and DICOM series (`data.format: rsna2024`)
    image       plain PNG / JPEG / TIFF files as grayscale pixels
"""

from __future__ import annotations

import os
from pathlib import Path

from lmfusion.data.readers._common import Skipped, Study
from lmfusion.config import FORMAT_ALIASES
from lmfusion.data.readers.tianchi import read_tianchi
from lmfusion.data.readers.csv import read_csv
from lmfusion.data.readers.image import read_image
from lmfusion.data.readers.rsna2024 import read_rsna2024
from lmfusion.errors import DataError, ParamError

__all__ = ["Study", "Skipped", "read_dataset", "read_tianchi", "read_csv", "read_image", "read_rsna2024"]


def read_dataset(fmt: str, path: str | os.PathLike, names: tuple[str, ...], on_invalid: str,
                 progress: bool = False) -> tuple[list[Study], list[Skipped]]:
    """Read a dataset in format `fmt` ('tianchi' or its alias 'challenge', 'csv' or 'rsna2024').

    Returns the valid studies and the skipped ones, both sorted by id (numbers in numeric order: study2, study10).
    """
    path, fmt = Path(path), FORMAT_ALIASES.get(fmt, fmt)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (data.path)")
    if fmt == "tianchi":
        return read_tianchi(path, names, on_invalid, progress=progress)
    if fmt == "csv":
        return read_csv(path, names, on_invalid, progress=progress)
    if fmt == "rsna2024":
        return read_rsna2024(path, names, on_invalid, progress=progress)
    raise ParamError(f"param data.format: must be 'tianchi' (or 'challenge'), 'csv' or 'rsna2024', got {fmt!r}")
