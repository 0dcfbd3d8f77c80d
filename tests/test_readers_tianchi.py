"""The challenge layout's reader (lmfusion.data.readers.tianchi; data.format tianchi, or its alias challenge):
DICOM + annotation JSON, its quirks and broken studies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from helpers import SPLIT, H, W, points_of, study_pixels, truth_points, write_challenge
from lmfusion.config import LANDMARKS
from lmfusion.data.dicom import write_dicom
from lmfusion.data.readers import read_dataset, read_tianchi
from lmfusion.errors import DataError

ANN = f"{SPLIT}_annotation.json"


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
    alias, _ = read_dataset("challenge", tmp_path, LANDMARKS, "error")  # the format's other name
    assert [s.source for s in alias] == [s.source for s in studies]


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
