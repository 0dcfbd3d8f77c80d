"""What every reader shares: the Study and Skipped records, the skip-or-error policy, landmark checks.

Legend: K landmarks, H x W image; points are (x, y) = (column, row) in the image's own pixels, pixel centres at
integers, so the image covers -0.5 .. W - 0.5.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm import tqdm

from lmfusion.errors import DataError, ParamError

log = logging.getLogger("lmfusion.data")



@dataclass(frozen=True)
class Study:
    study: str  # stable, human-readable id: `<split dir>/study<N>` or the image path relative to the CSV
    source: str  # image path relative to the data root (posix)
    pixels: np.ndarray  # (H, W) float32, after rescale, MONOCHROME1 inverted
    spacing: tuple[float, float]  # (x, y) mm per pixel
    landmarks: np.ndarray  # (K, 2) float64, original pixels
    split: str | None  # 'train' / 'test' when the source says so, else None
    off_instance: int = 0  # landmarks labelled on another slice of the series, kept in-plane (rsna2024)


@dataclass(frozen=True)
class Skipped:
    study: str
    reason: str


class Invalid(Exception):
    """One study's problem; becomes a Skipped record or a DataError depending on data.on_invalid."""


class Collector:
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
            raise Invalid(f"listed more than once in {where}")
        self.seen.add(study)

    def invalid(self, study: str, where: str, reason: str) -> None:
        if self.on_invalid == "error":
            raise DataError(f"{study} ({where}): {reason} (data.on_invalid: skip would leave it out)")
        log.warning("skipping %s (%s): %s", study, where, reason)
        self.skipped.append(Skipped(study, reason))

    def result(self) -> tuple[list[Study], list[Skipped]]:
        return (sorted(self.studies, key=lambda s: natural_key(s.study)),
                sorted(self.skipped, key=lambda s: natural_key(s.study)))


def natural_key(study: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts study2 before study10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", study) if part)


def progress_bar(items: Iterable[Any], desc: str, progress: bool) -> Iterable[Any]:
    return tqdm(items, desc=desc, unit="study", disable=not progress, file=sys.stderr, leave=False)


def check_landmarks(coords: dict[str, Any], names: tuple[str, ...], width: int, height: int) -> np.ndarray:
    """(K, 2) float64 from {name: (x, y)}, checked to be complete, finite and inside the image."""
    missing = [n for n in names if n not in coords]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise Invalid(f"landmark {missing[0]} missing{more}")
    xy = np.full((len(names), 2), np.nan)
    for k, n in enumerate(names):
        c = coords[n]
        try:
            if isinstance(c, str) or len(c) != 2:
                raise ValueError
            x, y = float(c[0]), float(c[1])
        except (TypeError, ValueError):
            raise Invalid(f"landmark {n} has coordinate {c!r}, expected two numbers") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise Invalid(f"landmark {n} has a non-finite coordinate ({x}, {y})")
        if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
            raise Invalid(f"landmark {n} at ({x:.1f}, {y:.1f}) lies outside the {width}x{height} image")
        xy[k] = x, y
    return xy


def reason(e: DataError, path: Path, rel: str) -> str:
    """A reader's message about `path`, reworded with the path relative to the data root."""
    msg = str(e)
    prefix = f"{path}: "
    return f"{rel}: {msg[len(prefix):] if msg.startswith(prefix) else msg}"
