"""Readers: the challenge layout (DICOM + annotation JSON) with its quirks and broken studies, and the CSV format."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest

from lmfusion.config import LANDMARKS
from lmfusion.data.dicom import write_dicom
from lmfusion.data.readers import read_csv, read_dataset, read_image, read_tianchi
from lmfusion.errors import DataError

SPLIT = "lumbar_train150"
ANN = f"{SPLIT}_annotation.json"
H, W = 48, 40


def truth_points(i: int) -> np.ndarray:
    """(K, 2) landmarks inside an H x W image, top to bottom, different per study."""
    k = np.arange(len(LANDMARKS))
    return np.stack([18.25 + 0.5 * k + 0.1 * i, 3.5 + 4.0 * k], axis=1)


def study_pixels(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 4000, size=(H, W)).astype(np.uint16)


def point_list(xy: np.ndarray, names: tuple[str, ...] = LANDMARKS) -> list[dict]:
    return [{"coord": [float(x), float(y)],
             "tag": {"identification": n, ("disc" if "-" in n else "vertebra"): "v2"}, "zIndex": 5}
            for n, (x, y) in zip(names, xy)]


def write_challenge(root: Path, n: int, split: str = SPLIT, spacing: tuple[float, float] | None = (0.7, 0.8),
                    edit=None) -> list[dict]:
    """`n` studies in the challenge layout: per study a T1 slice and the annotated T2 slice (image2.dcm).

    `edit(i, record, folder)` may change study i's record or files. Returns the records written to the JSON.
    """
    records = []
    for i in range(n):
        folder = root / split / f"study{i}"
        uid = f"1.2.826.0.1.{i}"
        write_dicom(folder / "image1.dcm", study_pixels(100 + i), spacing=spacing, study_uid=uid,
                    series_uid=f"{uid}.1", instance_uid=f"{uid}.1.1", series_description="T1_SAG")
        write_dicom(folder / "image2.dcm", study_pixels(i), spacing=spacing, study_uid=uid,
                    series_uid=f"{uid}.2", instance_uid=f"{uid}.2.1")
        rec = {"studyUid": uid, "version": "v0.1",
               "data": [{"seriesUid": f"{uid}.2", "instanceUid": f"{uid}.2.1",
                         "annotation": [{"annotator": 54, "data": {"point": point_list(truth_points(i))}}]}]}
        if edit is not None:
            edit(i, rec, folder)
        records.append(rec)
    (root / f"{split}_annotation.json").write_text(json.dumps(records))
    return records


def points_of(rec: dict) -> list[dict]:
    return rec["data"][0]["annotation"][0]["data"]["point"]


def test_reads_studies_sorted_with_pixels_spacing_and_landmarks(tmp_path: Path) -> None:
    write_challenge(tmp_path, 3)
    studies, skipped = read_dataset("tianchi", tmp_path, LANDMARKS, "error")
    assert skipped == []
    assert [s.study for s in studies] == [f"{SPLIT}/study{i}" for i in range(3)]
    for i, s in enumerate(studies):
        assert s.source == f"{SPLIT}/study{i}/image2.dcm" and s.split is None
        assert s.spacing == pytest.approx((0.7, 0.8))
        assert s.pixels.dtype == np.float32 and s.pixels.shape == (H, W)
        np.testing.assert_array_equal(s.pixels, study_pixels(i).astype(np.float32))
        np.testing.assert_allclose(s.landmarks, truth_points(i))


def test_study_ids_in_numeric_order(tmp_path: Path) -> None:
    write_challenge(tmp_path, 11)
    studies, _ = read_tianchi(tmp_path, LANDMARKS, "error")
    assert [s.study for s in studies] == [f"{SPLIT}/study{i}" for i in range(11)]


def test_monochrome1_rescale_and_16_bit(tmp_path: Path) -> None:
    stored = np.linspace(0, 65535, H * W).reshape(H, W).astype(np.uint16)

    def edit(i: int, rec: dict, folder: Path) -> None:
        write_dicom(folder / "image2.dcm", stored, spacing=(0.5, 0.5), study_uid=rec["studyUid"],
                    series_uid=f"{rec['studyUid']}.2", instance_uid=f"{rec['studyUid']}.2.1",
                    rescale=(2.0, -100.0) if i == 0 else (1.0, 0.0), monochrome1=i == 0)

    write_challenge(tmp_path, 2, edit=edit)
    (inverted, plain), _ = read_tianchi(tmp_path, LANDMARKS, "error")
    values = stored.astype(np.float64) * 2.0 - 100.0
    np.testing.assert_allclose(inverted.pixels, values.max() + values.min() - values, rtol=1e-6)
    assert inverted.pixels[0, 0] == pytest.approx(values.max())  # stored 0 is white in MONOCHROME1
    np.testing.assert_array_equal(plain.pixels, stored.astype(np.float32))
    assert plain.pixels.max() == 65535


def test_challenge_quirks_are_accepted(tmp_path: Path) -> None:
    def edit(i: int, rec: dict, folder: Path) -> None:
        pts = points_of(rec)
        pts.append({"coord": [20.0, 1.0], "tag": {"identification": "T11-T12", "disc": "v1"}, "zIndex": 5})
        pts[0]["tag"]["disc"] = "v2,v5"
        np.random.default_rng(i).shuffle(pts)

    write_challenge(tmp_path, 2, edit=edit)
    studies, skipped = read_tianchi(tmp_path, LANDMARKS, "error")
    assert skipped == [] and len(studies) == 2
    for i, s in enumerate(studies):
        np.testing.assert_allclose(s.landmarks, truth_points(i))  # indexed by name, not by order


def test_landmark_subset_ignores_other_challenge_points(tmp_path: Path) -> None:
    write_challenge(tmp_path, 1)
    (study,), _ = read_tianchi(tmp_path, ("L3", "L1"), "error")
    np.testing.assert_allclose(study.landmarks, truth_points(0)[[LANDMARKS.index("L3"), LANDMARKS.index("L1")]])


def _duplicate(rec: dict, folder: Path) -> None:
    points_of(rec).append(dict(points_of(rec)[3]))


def _drop(rec: dict, folder: Path) -> None:
    del points_of(rec)[LANDMARKS.index("L3")]


def _nan(rec: dict, folder: Path) -> None:
    points_of(rec)[2]["coord"] = [float("nan"), 10.0]


def _outside(rec: dict, folder: Path) -> None:
    points_of(rec)[4]["coord"] = [W + 3.0, 10.0]


def _unknown(rec: dict, folder: Path) -> None:
    points_of(rec)[0]["tag"]["identification"] = "S1-S2x"


def _no_spacing(rec: dict, folder: Path) -> None:
    write_dicom(folder / "image2.dcm", study_pixels(1), spacing=None, study_uid=rec["studyUid"],
                series_uid=f"{rec['studyUid']}.2", instance_uid=f"{rec['studyUid']}.2.1")


def _corrupt(rec: dict, folder: Path) -> None:
    (folder / "image2.dcm").write_bytes(b"\x00garbage" * 50)


def _colour(rec: dict, folder: Path) -> None:
    ds = pydicom.dcmread(folder / "image2.dcm")
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.zeros((H, W, 3), np.uint8).tobytes()
    ds.save_as(folder / "image2.dcm")


def _lost(rec: dict, folder: Path) -> None:
    (folder / "image2.dcm").unlink()


BROKEN = {
    "duplicate": (_duplicate, "landmark L2 annotated twice"),
    "missing": (_drop, "landmark L3 missing"),
    "nan": (_nan, "landmark L1-L2 has a non-finite coordinate"),
    "outside": (_outside, "landmark L2-L3 at (43.0, 10.0) lies outside the 40x48 image"),
    "unknown": (_unknown, "unknown landmark 'S1-S2x'"),
    "no_spacing": (_no_spacing, "image2.dcm: no PixelSpacing (0028,0030)"),
    "corrupt": (_corrupt, "not found among its DICOM files; unreadable: image2.dcm"),
    "colour": (_colour, "image2.dcm: expected a single-frame grayscale image"),
    "lost": (_lost, "annotated image (SOPInstanceUID 1.2.826.0.1.1.2.1) not found"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_invalid_study_is_skipped_or_stops(tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    fn, reason = BROKEN[case]
    write_challenge(tmp_path, 3, edit=lambda i, rec, folder: fn(rec, folder) if i == 1 else None)
    studies, skipped = read_tianchi(tmp_path, LANDMARKS, "skip")
    assert [s.study for s in studies] == [f"{SPLIT}/study0", f"{SPLIT}/study2"]
    assert len(skipped) == 1 and skipped[0].study == f"{SPLIT}/study1", skipped
    assert reason in skipped[0].reason
    assert f"{SPLIT}/study1" in caplog.text and "WARNING" in caplog.text
    with pytest.raises(DataError, match=f"^{SPLIT}/study1 \\({ANN}\\): ") as err:
        read_tianchi(tmp_path, LANDMARKS, "error")
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_study_without_any_readable_file_is_named_by_uid(tmp_path: Path) -> None:
    def edit(i: int, rec: dict, folder: Path) -> None:
        if i == 0:
            for f in folder.glob("*.dcm"):
                f.write_bytes(b"not a dicom")

    write_challenge(tmp_path, 2, edit=edit)
    studies, skipped = read_tianchi(tmp_path, LANDMARKS, "skip")
    assert [s.study for s in studies] == [f"{SPLIT}/study1"]
    assert skipped[0].study == f"{SPLIT}/1.2.826.0.1.0" and "study0/image1.dcm" in skipped[0].reason


@pytest.mark.parametrize("text", ["[{\"studyUid\": ", "{\"studyUid\": \"1\"}", "[{\"studyUid\": \"1\"}]"])
@pytest.mark.parametrize("on_invalid", ["skip", "error"])
def test_malformed_json_is_always_an_error(tmp_path: Path, text: str, on_invalid: str) -> None:
    write_challenge(tmp_path, 1)
    (tmp_path / ANN).write_text(text)
    with pytest.raises(DataError, match=ANN):
        read_tianchi(tmp_path, LANDMARKS, on_invalid)


def test_several_split_folders_and_missing_layout(tmp_path: Path) -> None:
    write_challenge(tmp_path, 2)
    write_challenge(tmp_path, 1, split="lumbar_train51")
    studies, _ = read_dataset("tianchi", tmp_path, LANDMARKS, "error")
    assert [s.study for s in studies] == ["lumbar_train51/study0", "lumbar_train150/study0", "lumbar_train150/study1"]
    with pytest.raises(DataError, match="no \\*_annotation.json"):
        read_tianchi(tmp_path / SPLIT, LANDMARKS, "skip")
    with pytest.raises(DataError, match="no such file or folder"):
        read_dataset("tianchi", tmp_path / "nowhere", LANDMARKS, "skip")


# ---------------------------------------------------------------- CSV


def write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def csv_row(image: str, xy: np.ndarray, **extra: object) -> dict:
    row = {"image": image, **extra}
    for n, (x, y) in zip(LANDMARKS, xy):
        row[f"{n}_x"], row[f"{n}_y"] = x, y
    return row


def write_csv(path: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows).to_csv(path, index=False)


def test_csv_reads_16_bit_png_relative_paths_default_spacing(tmp_path: Path) -> None:
    img16 = np.random.default_rng(0).integers(0, 65536, size=(H, W)).astype(np.uint16)
    write_png(tmp_path / "images" / "a.png", img16)
    gray_bgr = np.repeat(study_pixels(1)[..., None].astype(np.uint8), 3, axis=2)
    write_png(tmp_path / "images" / "b.png", gray_bgr)  # stored as colour, really gray
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
    write_png(tmp_path / "a.png", study_pixels(0).astype(np.uint8))
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
    write_png(tmp_path / "colour.png", colour)
    write_png(tmp_path / "ok.png", study_pixels(0).astype(np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    outside = truth_points(0).copy()
    outside[0] = [-3.0, 5.0]
    write_csv(tmp_path / "landmarks.csv", [
        csv_row("ok.png", truth_points(0), split="train"), csv_row("colour.png", truth_points(0), split="train"),
        csv_row("broken.png", truth_points(0), split="train"), csv_row("gone.png", truth_points(0), split="train"),
        csv_row("ok.png", truth_points(0), split="train"), csv_row("ok2.png", outside, split="train"),
    ])
    write_png(tmp_path / "ok2.png", study_pixels(0).astype(np.uint8))
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


def test_read_image_rejects_colour_and_accepts_gray(tmp_path: Path) -> None:
    write_png(tmp_path / "g.png", np.full((4, 5), 7, np.uint8))
    assert read_image(tmp_path / "g.png").shape == (4, 5)
    write_png(tmp_path / "c.png", np.dstack([np.zeros((4, 5), np.uint8)] * 2 + [np.full((4, 5), 9, np.uint8)]))
    with pytest.raises(DataError, match="colour"):
        read_image(tmp_path / "c.png")
    ramp = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    assert cv2.imwrite(str(tmp_path / "g.jpg"), np.dstack([ramp] * 3), [cv2.IMWRITE_JPEG_QUALITY, 80])
    gray = read_image(tmp_path / "g.jpg")  # a gray picture saved as colour JPEG
    assert gray.shape == (16, 32) and np.abs(gray - ramp).max() < 12
