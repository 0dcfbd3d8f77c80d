"""What `lmfusion predict` writes besides the overlay: the per-image JSON record (with patient coordinates for DICOM
inputs), a 3D Slicer markups file, the rows of an RSNA 2024 style coordinates CSV, and summary.csv's row.

Legend: K landmarks; xy (K, 2) in the slice's pixels, lps (K, 3) in patient mm.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lmfusion.data.readers.rsna2024 import CONDITION, LEVELS
from lmfusion.io import atomic_path

if TYPE_CHECKING:  # the API loads torch; these writers do not need it
    from lmfusion.api import Prediction
    from lmfusion.data.patient import SliceGeometry

MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
                  "markups-schema-v1.0.3.json#")
MARKUPS_SUFFIX = ".mrk.json"
# the columns of RSNA 2024's train_label_coordinates.csv, so the project's rsna2024 reader reads the file back
RSNA_COLUMNS = ("study_id", "series_id", "instance_number", "condition", "level", "x", "y")


def json_record(info: dict[str, Any], image_size: tuple[int, int], prediction: Prediction,
                geometry: SliceGeometry | None) -> dict[str, Any]:
    """The <name>.json record: provenance, the prediction, and per landmark `xyz_lps_mm` (null without DICOM
    geometry) with the slice's identifiers under `patient` (null likewise)."""
    record = {**info, "image_size": list(image_size), **prediction.to_dict()}
    lps = geometry.to_lps(prediction.xy) if geometry is not None else None
    for k, landmark in enumerate(record["landmarks"]):
        landmark["xyz_lps_mm"] = None if lps is None else [round(float(v), 3) for v in lps[k]]
    record["patient"] = geometry.to_dict() if geometry is not None else None
    return record


def markups(names: tuple[str, ...], lps: np.ndarray, name: str, description: str = "") -> dict[str, Any]:
    """A 3D Slicer point list (markups JSON, schema v1.0.3) with one control point per landmark, LPS mm."""
    points = [{"id": str(k + 1), "label": n, "description": description, "position": [float(v) for v in p],
               "selected": True, "locked": True, "visibility": True, "positionStatus": "defined"}
              for k, (n, p) in enumerate(zip(names, np.asarray(lps, np.float64)))]
    return {"@schema": MARKUPS_SCHEMA,
            "markups": [{"type": "Fiducial", "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm",
                         "locked": True, "labelFormat": "%N-%d", "controlPoints": points, "measurements": []}]}


def rsna_ids(study_folder: Path, chosen: Path, geometry: SliceGeometry) -> tuple[str, str, int]:
    """(study_id, series_id, instance_number) of a study folder's chosen slice: the folder's name, the name of the
    chosen file's folder when it lies in a series folder below the study folder (RSNA's
    train_images/<study_id>/<series_id>/<n>.dcm) else SeriesInstanceUID, and InstanceNumber (else 1)."""
    in_series_folder = chosen.parent.resolve() != study_folder.resolve()
    series = chosen.parent.name if in_series_folder else (geometry.series_instance_uid or "")
    number = geometry.instance_number if geometry.instance_number is not None else 1
    return study_folder.name, series, number


def rsna_rows(ids: tuple[str, str, int], prediction: Prediction) -> list[dict[str, Any]]:
    """The five disc levels (those the pipeline predicts) as `Spinal Canal Stenosis` rows; x, y in the slice's
    pixels, the convention of the RSNA data and of the rsna2024 reader."""
    where = {n: p for n, p in zip(prediction.names, prediction.xy)}
    study, series, number = ids
    return [{"study_id": study, "series_id": series, "instance_number": number, "condition": CONDITION,
             "level": level, "x": round(float(where[name][0]), 3), "y": round(float(where[name][1]), 3)}
            for level, name in LEVELS.items() if name in where]


def write_rsna_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """The RSNA 2024 style coordinates CSV (RSNA_COLUMNS), written atomically; a header only when no rows."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=list(RSNA_COLUMNS)).to_csv(tmp, index=False, lineterminator="\n")


def summary_row(name: str, source: Path, prediction: Prediction) -> dict[str, Any]:
    """summary.csv's row for one predicted image."""
    flags = prediction.flags
    row = {"name": name, "input": str(source), "status": "ok", "error": "",
           "method": prediction.method, "level_margin": round(prediction.level_margin, 4),
           "level_end_fit": round(prediction.level_end_fit, 4), "level_check": prediction.level_check,
           "check_answered": prediction.check_answered,
           "level_uncertain": flags["level_uncertain"], "low_confidence": ";".join(flags["low_confidence"]),
           "order_violated": flags["order_violated"], "implausible_spacing": flags["implausible_spacing"]}
    for n, (x, y) in zip(prediction.names, prediction.xy):
        row[f"{n}_x"], row[f"{n}_y"] = round(float(x), 3), round(float(y), 3)
    return row


__all__ = ["MARKUPS_SCHEMA", "MARKUPS_SUFFIX", "RSNA_COLUMNS", "json_record", "markups", "rsna_ids",
           "rsna_rows", "summary_row", "write_rsna_csv"]
