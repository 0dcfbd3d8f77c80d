"""One study of `lmfusion predict`: its sagittal series, the slices tried, and the slice chosen by evidence.

The series comes from `lmfusion.data.series.choose_series` (T2, then STIR, then T1). With the rule "evidence" every
readable slice of the series' central band is decoded in one batch (one plain pass, whatever infer.zooms says) and
the slice at the peak of `lmfusion.decoding.evidence.slice_evidence` is kept (`peak_centre`; the middle slice when no
score is finite), its landmarks at the pipeline's test-time zooms; with "middle" only the middle slice is decoded.
The record's `series` and `slice_choice` say what was chosen and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lmfusion.data.dicom import read_dicom
from lmfusion.data.patient import SliceGeometry, instance_number, slice_geometry
from lmfusion.data.series import Instance, Series, choose_series
from lmfusion.decoding.evidence import peak_centre, slice_evidence
from lmfusion.errors import DataError, ParamError

if TYPE_CHECKING:  # the CLI loads the predictor only for the predict command
    from lmfusion.api import LandmarkPredictor, Prediction

SLICE_CHOICES = ("evidence", "middle")


@dataclass(frozen=True)
class Slice:
    """One readable slice of the chosen series: its index in the series, pixels and geometry."""

    index: int
    path: Path
    pixels: np.ndarray  # (H, W)
    geometry: SliceGeometry


@dataclass(frozen=True)
class StudyResult:
    """A study's chosen slice, its prediction, and the record's explanation of the choice."""

    chosen: Slice
    prediction: Prediction
    info: dict[str, Any]


def _read_slices(series: Series, indices: range) -> tuple[list[Slice], list[str]]:
    """The readable slices among `indices` (pixels and geometry), and why each other one was skipped."""
    slices, skipped = [], []
    for k in indices:
        path = series.instances[k].path
        try:
            geometry = slice_geometry(series.instances[k].header, path)
            slices.append(Slice(k, path, read_dicom(path).pixels, geometry))
        except DataError as e:
            skipped.append(str(e))
    return slices, skipped


def _tried(series: Series, slices: list[Slice], scores: list[float]) -> list[dict[str, Any]]:
    return [{"instance_number": s.geometry.instance_number, "position_mm": series.positions[s.index],
             "score": round(float(score), 4) if np.isfinite(score) else None} for s, score in zip(slices, scores)]


def predict_study(folder: Path, instances: list[Instance], predictor: LandmarkPredictor, rule: str) -> StudyResult:
    """The landmarks of a study on the slice `rule` (one of SLICE_CHOICES) chooses; DataError naming `folder` when
    no slice can be read."""
    if rule not in SLICE_CHOICES:
        raise ParamError(f"slice choice {rule!r}: must be one of {', '.join(SLICE_CHOICES)}")
    series, skipped_series = choose_series(instances, folder)
    indices = series.band() if rule == "evidence" else range(series.middle, series.middle + 1)
    slices, unreadable = _read_slices(series, indices)
    if not slices:
        raise DataError(f"{folder}: no usable slice of series '{series.description}': {unreadable[0]}")
    nearest_middle = int(np.argmin([abs(s.index - series.middle) for s in slices]))
    pick, found = nearest_middle, None
    if len(slices) > 1:  # the band's evidence from one plain pass each
        found = predictor.predict_batch([s.pixels for s in slices], [s.geometry.spacing for s in slices], (1.0,))
        scores = [slice_evidence(p) for p in found]
        pick = peak_centre([s.index for s in slices], scores, nearest_middle)
    chosen = slices[pick]
    if found is not None and predictor.zooms == (1.0,):
        prediction = found[pick]
    else:  # the chosen slice at the pipeline's test-time zooms (infer.zooms)
        prediction = predictor.predict(chosen.pixels, chosen.geometry.spacing)
    if found is None:
        scores = [slice_evidence(prediction)]
    middle = series.instances[series.middle]
    info = {"chosen_file": str(chosen.path), "series": {**series.to_dict(), "skipped": skipped_series},
            "slice_choice": {"rule": rule, "chosen_instance": chosen.geometry.instance_number,
                             "middle_instance": instance_number(middle.header),
                             "tried": _tried(series, slices, scores), "skipped": unreadable}}
    return StudyResult(chosen, prediction, info)


__all__ = ["SLICE_CHOICES", "Slice", "StudyResult", "predict_study"]
