"""What `lmfusion predict` writes (lmfusion.cli.outputs): the JSON's patient coordinates, the 3D Slicer markups and
the RSNA 2024 style CSV, read back through the project's rsna2024 reader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmfusion.api import Prediction
from lmfusion.cli.outputs import (MARKUPS_SCHEMA, RSNA_COLUMNS, json_record, markups, rsna_ids, rsna_rows,
                                  write_rsna_csv)
from lmfusion.data.patient import SliceGeometry, slice_geometry
from lmfusion.data.readers.rsna2024 import DESCRIPTIONS, DISCS, IMAGES, LABELS, read_rsna2024
from lmfusion.data.series import choose_series, read_folder
from lmfusion.synth.rsna2024 import write_rsna_dataset

GEOMETRY = SliceGeometry(position=(5.0, -90.0, 60.0), orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                         spacing=(0.5, 0.8), sop_instance_uid="1.2.3.4", series_instance_uid="1.2.3",
                         study_instance_uid="1.2", instance_number=2)


def _prediction(names: tuple[str, ...], xy: np.ndarray) -> Prediction:
    flags = {"level_uncertain": False, "low_confidence": [], "order_violated": False, "implausible_spacing": False}
    return Prediction(names, np.asarray(xy, np.float64), (0.5, 0.8), np.full(len(names), 0.9), "chain", flags)


def test_json_record_has_patient_coordinates_only_with_geometry() -> None:
    pred = _prediction(("L1-L2", "L2"), [[10.0, 0.0], [0.0, 10.0]])
    record = json_record({"input": "s"}, (64, 64), pred, GEOMETRY)
    assert [lm["xyz_lps_mm"] for lm in record["landmarks"]] == [[5.0, -85.0, 60.0], [5.0, -90.0, 52.0]]
    assert record["patient"]["sop_instance_uid"] == "1.2.3.4" and record["patient"]["instance_number"] == 2
    assert record["patient"]["series_instance_uid"] == "1.2.3" and record["patient"]["study_instance_uid"] == "1.2"
    plain = json_record({"input": "a.png"}, (64, 64), pred, None)
    assert plain["patient"] is None and all(lm["xyz_lps_mm"] is None for lm in plain["landmarks"])
    json.dumps(record, allow_nan=False)


def test_markups_follow_the_slicer_schema(tmp_path: Path) -> None:
    names = ("L1-L2", "L2")
    lps = GEOMETRY.to_lps(np.array([[10.0, 0.0], [0.0, 10.0]]))
    path = tmp_path / "s.mrk.json"
    path.write_text(json.dumps(markups(names, lps, "s")))
    doc = json.loads(path.read_text())
    assert doc["@schema"] == MARKUPS_SCHEMA and len(doc["markups"]) == 1
    points = doc["markups"][0]
    assert points["type"] == "Fiducial" and points["coordinateSystem"] == "LPS"
    assert [p["label"] for p in points["controlPoints"]] == list(names)
    np.testing.assert_allclose([p["position"] for p in points["controlPoints"]], lps)


@pytest.fixture(scope="module")
def rsna(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rsna") / "data"
    write_rsna_dataset(out, n=3, seed=1)
    return out


def test_rsna_csv_round_trips_through_the_reader(rsna: Path, tmp_path: Path) -> None:
    truth, _ = read_rsna2024(rsna, DISCS, "error")
    rows = []
    for study in truth:
        folder = rsna / IMAGES / study.study
        series, _ = choose_series(read_folder(folder), folder)
        middle = series.instances[series.middle]
        assert middle.path == rsna / study.source  # the series' middle slice is the annotated one
        geometry = slice_geometry(middle.header, middle.path)
        names = ("L1", *DISCS)  # a vertebra the CSV has no row for
        xy = np.vstack([[0.0, 0.0], study.landmarks])
        rows += rsna_rows(rsna_ids(folder, middle.path, geometry), _prediction(names, xy))
    back = tmp_path / "back"
    back.mkdir()
    write_rsna_csv(back / LABELS, rows)
    assert tuple(pd.read_csv(back / LABELS).columns) == RSNA_COLUMNS and len(rows) == 5 * len(truth)
    shutil.copy(rsna / DESCRIPTIONS, back / DESCRIPTIONS)  # the reader's companion files, as they were
    (back / IMAGES).symlink_to(rsna / IMAGES)
    again, skipped = read_rsna2024(back, DISCS, "error")
    assert skipped == [] and [s.study for s in again] == [s.study for s in truth]
    for a, t in zip(again, truth):
        assert a.source == t.source and a.off_instance == 0
        np.testing.assert_allclose(a.landmarks, t.landmarks, atol=1e-3)


def test_rsna_ids_outside_a_series_folder_use_the_series_uid(tmp_path: Path) -> None:
    (tmp_path / "study9").mkdir()
    assert rsna_ids(tmp_path / "study9", tmp_path / "study9" / "x.dcm", GEOMETRY) == ("study9", "1.2.3", 2)
    assert rsna_ids(tmp_path / "study9", tmp_path / "study9" / "42" / "x.dcm", GEOMETRY) == ("study9", "42", 2)
