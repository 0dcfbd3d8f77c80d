"""The CSV reader (lmfusion.data.readers.csv): images listed with their landmarks, spacing and split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import H, W, study_pixels, truth_points, write_image
from lmfusion.config import LANDMARKS
from lmfusion.data.dicom import write_dicom
from lmfusion.data.readers import read_csv, read_dataset
from lmfusion.errors import DataError


def csv_row(image: str, xy: np.ndarray, **extra: object) -> dict:
    row = {"image": image, **extra}
    for n, (x, y) in zip(LANDMARKS, xy):
        row[f"{n}_x"], row[f"{n}_y"] = x, y
    return row


def write_csv(path: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows).to_csv(path, index=False)


def test_csv_reads_16_bit_png_relative_paths_default_spacing(tmp_path: Path) -> None:
    img16 = np.random.default_rng(0).integers(0, 65536, size=(H, W)).astype(np.uint16)
    write_image(tmp_path / "images" / "a.png", img16)
    gray_bgr = np.repeat(study_pixels(1)[..., None].astype(np.uint8), 3, axis=2)
    write_image(tmp_path / "images" / "b.png", gray_bgr)  # stored as colour, really gray
    write_csv(tmp_path / "landmarks.csv", [csv_row("images/b.png", truth_points(1)),
                                           csv_row("images/a.png", truth_points(0))])
    studies, skipped = read_csv(tmp_path, LANDMARKS, "error")  # the folder: landmarks.csv inside it
    assert skipped == [] and [s.study for s in studies] == ["images/a.png", "images/b.png"]
    a, b = studies
    np.testing.assert_array_equal(a.pixels, img16.astype(np.float32))
    np.testing.assert_array_equal(b.pixels, gray_bgr[..., 0].astype(np.float32))
    assert a.spacing == (1.0, 1.0) and a.split is None and a.source == "images/a.png"
    np.testing.assert_allclose(a.landmarks, truth_points(0))


def test_csv_spacing_split_and_dicom(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", study_pixels(0).astype(np.uint8))
    write_dicom(tmp_path / "b.dcm", study_pixels(1), spacing=(0.6, 0.9), study_uid="1", series_uid="1.1",
                instance_uid="1.1.1")
    write_csv(tmp_path / "set.csv", [csv_row("a.png", truth_points(0), split="train", spacing_x=0.5, spacing_y=0.4),
                                     csv_row("b.dcm", truth_points(1), split="TEST", spacing_x=None, spacing_y=None)])
    (a, b), _ = read_dataset("csv", tmp_path / "set.csv", LANDMARKS, "error")
    assert (a.split, a.spacing) == ("train", (0.5, 0.4))
    assert b.split == "test" and b.spacing == pytest.approx((0.6, 0.9))  # from the DICOM when the CSV has none


def test_csv_missing_column_names_csv_and_column(tmp_path: Path) -> None:
    row = csv_row("a.png", truth_points(0))
    del row["L4_y"]
    write_csv(tmp_path / "landmarks.csv", [row])
    with pytest.raises(DataError, match="landmarks.csv: no column 'L4_y'"):
        read_csv(tmp_path / "landmarks.csv", LANDMARKS, "skip")


def test_csv_invalid_rows(tmp_path: Path) -> None:
    colour = np.zeros((H, W, 3), np.uint8)
    colour[..., 2] = 200
    write_image(tmp_path / "colour.png", colour)
    write_image(tmp_path / "ok.png", study_pixels(0).astype(np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    outside = truth_points(0).copy()
    outside[0] = [-3.0, 5.0]
    write_csv(tmp_path / "landmarks.csv", [
        csv_row("ok.png", truth_points(0), split="train"), csv_row("colour.png", truth_points(0), split="train"),
        csv_row("broken.png", truth_points(0), split="train"), csv_row("gone.png", truth_points(0), split="train"),
        csv_row("ok.png", truth_points(0), split="train"), csv_row("ok2.png", outside, split="train"),
    ])
    write_image(tmp_path / "ok2.png", study_pixels(0).astype(np.uint8))
    studies, skipped = read_csv(tmp_path, LANDMARKS, "skip")
    assert [s.study for s in studies] == ["ok.png"]
    reasons = {s.study: s.reason for s in skipped}
    assert "colour image" in reasons["colour.png"]
    assert "not a readable image" in reasons["broken.png"]
    assert "no such file" in reasons["gone.png"]
    assert "more than once" in reasons["ok.png"]
    assert "outside" in reasons["ok2.png"]
    with pytest.raises(DataError, match="^colour.png \\(landmarks.csv\\): .*colour image"):
        read_csv(tmp_path, LANDMARKS, "error")
