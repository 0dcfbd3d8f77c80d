"""Dataset readers, one module per format; each turns a dataset into `Study` records (one annotated 2-D image with
its landmarks) plus `Skipped` records for the studies that could not be used.

    tianchi     the spinal disease challenge's DICOM studies with annotation JSON (`data.format: tianchi`, alias
                `challenge`)
    csv         images listed in a CSV with their landmarks (`data.format: csv`)
    rsna2024    the RSNA 2024 lumbar spine layout: two CSVs and DICOM series (`data.format: rsna2024`)
    image       plain PNG / JPEG / TIFF files as grayscale pixels

`READERS` is the one table of `data.format`s: `read_dataset` dispatches on it, its unknown-format error and the
aliases come from it, and tests/test_readers.py checks DataConfig.format's allowed values against it. A new format
is a reader module and one entry here (and its name in that Literal). The reader modules are imported here, at
module level, so that a stage reading any format depends on every reader (lmfusion.deps follows only an
`__init__`'s module-level imports).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lmfusion.data.readers._common import Skipped, Study
from lmfusion.data.readers.tianchi import read_tianchi
from lmfusion.data.readers.csv import read_csv
from lmfusion.data.readers.image import read_image
from lmfusion.data.readers.rsna2024 import read_rsna2024
from lmfusion.errors import DataError, ParamError

__all__ = ["READERS", "Reader", "Study", "Skipped", "format_name", "read_dataset", "read_tianchi", "read_csv",
           "read_image", "read_rsna2024"]


@dataclass(frozen=True)
class Reader:
    """One `data.format`: the function that reads it and the other names params.yaml may give it."""

    read: Callable[..., tuple[list[Study], list[Skipped]]]  # (path, names, on_invalid, progress=) -> studies, skipped
    aliases: tuple[str, ...] = ()


READERS: dict[str, Reader] = {
    "tianchi": Reader(read_tianchi, aliases=("challenge",)),
    "csv": Reader(read_csv),
    "rsna2024": Reader(read_rsna2024),
}


def _allowed() -> str:
    """The table's formats as the error message lists them: 'tianchi' (or 'challenge'), 'csv' or 'rsna2024'."""
    names = [repr(n) + (f" (or {', '.join(map(repr, r.aliases))})" if r.aliases else "") for n, r in READERS.items()]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def format_name(fmt: str) -> str:
    """The table's name of format `fmt` (itself or the format it is an alias of); a ParamError for an unknown one."""
    for name, reader in READERS.items():
        if fmt == name or fmt in reader.aliases:
            return name
    raise ParamError(f"param data.format: must be {_allowed()}, got {fmt!r}")


def read_dataset(fmt: str, path: str | os.PathLike, names: tuple[str, ...], on_invalid: str,
                 progress: bool = False) -> tuple[list[Study], list[Skipped]]:
    """Read a dataset in format `fmt`, a name or an alias in READERS.

    Returns the valid studies and the skipped ones, both sorted by id (numbers in numeric order: study2, study10).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (data.path)")
    return READERS[format_name(fmt)].read(path, names, on_invalid, progress=progress)
