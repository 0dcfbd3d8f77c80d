"""The RSNA 2024 reader (lmfusion.data.readers.rsna2024): the layout, the instance it chooses, and every bad input
as a skip with its reason or a one-line error naming the study."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from lmfusion.data.dicom import write_dicom
from lmfusion.data.readers import read_dataset
from lmfusion.data.readers.rsna2024 import DISCS, LEVELS, choose_instance, read_rsna2024
from lmfusion.errors import DataError, ParamError

H, W = 48, 40
SAG = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # sagittal: the slice normal is -x
# slice k (in position order) is instance NUMBERS[k]: the numbering does not follow the slices
NUMBERS = (2, 3, 1)
MIDDLE = NUMBERS[1]


def truth_points(i: int) -> np.ndarray:
    """(5, 2) disc landmarks inside an H x W image, top to bottom, different per study."""
    k = np.arange(len(DISCS))
    return np.stack([18.25 + 0.5 * k + 0.1 * i, 5.5 + 8.0 * k], axis=1)


def pixels(i: int, k: int) -> np.ndarray:
    return np.random.default_rng([i, k]).integers(0, 4000, size=(H, W)).astype(np.uint16)


class Layout:
    """A small RSNA-layout dataset: study i (id 100 + i) has a Sagittal T2/STIR series (3 slices), a Sagittal T1
    and an Axial T2; its five Spinal Canal Stenosis rows sit on the middle slice, beside foraminal rows on the T1."""

    def __init__(self, root: Path, n: int):
        self.root = root
        self.described, self.labels = [], []
        for i in range(n):
            study = 100 + i
            self.described += [(study, 10 * study + 1, "Sagittal T2/STIR"), (study, 10 * study + 2, "Sagittal T1"),
                               (study, 10 * study + 3, "Axial T2")]
            for k, number in enumerate(NUMBERS):
                self.write(i, number, pixels(i, k), position=(4.0 * (1 - k), -10.0, 20.0))
            write_dicom(self.series(i, 2) / "1.dcm", pixels(i, 9), spacing=(0.9, 0.9), study_uid=f"1.2.{i}",
                        series_uid=f"1.2.{i}.2", instance_uid=f"1.2.{i}.2.1", orientation=SAG)
            for level, (x, y) in zip(LEVELS, truth_points(i)):
                self.labels.append([study, 10 * study + 1, MIDDLE, "Spinal Canal Stenosis", level, x, y])
                self.labels.append([study, 10 * study + 2, 1, "Left Neural Foraminal Narrowing", level, x + 3, y])

    def series(self, i: int, k: int = 1) -> Path:
        return self.root / "train_images" / str(100 + i) / str(10 * (100 + i) + k)

    def write(self, i: int, number: int, data: np.ndarray, position: tuple[float, float, float],
              spacing: tuple[float, float] | None = (0.7, 0.8)) -> None:
        write_dicom(self.series(i) / f"{number}.dcm", data, spacing=spacing, study_uid=f"1.2.{i}",
                    series_uid=f"1.2.{i}.1", instance_uid=f"1.2.{i}.1.{number}", instance_number=number,
                    orientation=SAG, position=position)

    def rows(self, study: int, level: str | None = None) -> list[list]:
        """The study's Spinal Canal Stenosis rows (of one level when given), to edit in place."""
        return [r for r in self.labels if r[0] == study and r[3] == "Spinal Canal Stenosis"
                and (level is None or r[4] == level)]

    def save(self) -> Path:
        pd.DataFrame(self.described, columns=["study_id", "series_id", "series_description"]).to_csv(
            self.root / "train_series_descriptions.csv", index=False)
        pd.DataFrame(self.labels, columns=["study_id", "series_id", "instance_number", "condition", "level", "x",
                                           "y"]).to_csv(self.root / "train_label_coordinates.csv", index=False)
        return self.root


def test_reads_the_labelled_slice_with_its_spacing_and_discs(tmp_path: Path) -> None:
    root = Layout(tmp_path, 3).save()
    studies, skipped = read_dataset("rsna2024", root, DISCS, "error")
    assert skipped == []
    assert [s.study for s in studies] == ["100", "101", "102"]
    for i, s in enumerate(studies):
        assert s.source == f"train_images/{100 + i}/{10 * (100 + i) + 1}/{MIDDLE}.dcm" and s.split is None
        assert s.spacing == pytest.approx((0.7, 0.8)) and s.off_instance == 0
        np.testing.assert_array_equal(s.pixels, pixels(i, 1).astype(np.float32))
        np.testing.assert_allclose(s.landmarks, truth_points(i))


def test_a_subset_of_discs_and_names_that_the_format_lacks(tmp_path: Path) -> None:
    root = Layout(tmp_path, 1).save()
    studies, _ = read_rsna2024(root, ("L4-L5", "L5-S1"), "error")
    np.testing.assert_allclose(studies[0].landmarks, truth_points(0)[3:])
    with pytest.raises(ParamError, match=r"param base\.landmarks: .*'L3' is not one of them"):
        read_rsna2024(root, ("L3-L4", "L3"), "error")


def test_case_and_spacing_of_descriptions_and_conditions_do_not_matter(tmp_path: Path) -> None:
    layout = Layout(tmp_path, 1)
    layout.described[0] = (100, 1001, "sagittal  t2/stir")
    for row in layout.rows(100):
        row[3] = "spinal canal stenosis"
    studies, _ = read_rsna2024(layout.save(), DISCS, "error")
    assert len(studies) == 1


def test_a_level_on_a_neighbouring_instance_is_kept_in_plane_and_counted(tmp_path: Path) -> None:
    layout = Layout(tmp_path, 2)
    layout.rows(101, "L5/S1")[0][2] = NUMBERS[2]
    studies, _ = read_rsna2024(layout.save(), DISCS, "error")
    assert studies[1].source.endswith(f"/{MIDDLE}.dcm") and studies[1].off_instance == 1
    np.testing.assert_allclose(studies[1].landmarks, truth_points(1))
    assert studies[0].off_instance == 0


def test_equal_counts_choose_the_middle_slice_by_position_not_by_number(tmp_path: Path) -> None:
    # along the slice normal (-x), slice k sits at -4 (1 - k) mm: -4, 0, 4 for k = 0, 1, 2
    layout = Layout(tmp_path, 1)
    for level, number in zip(LEVELS, (NUMBERS[0], NUMBERS[0], NUMBERS[1], NUMBERS[1], NUMBERS[2])):
        layout.rows(100, level)[0][2] = number
    studies, _ = read_rsna2024(layout.save(), DISCS, "error")
    # slices 0, 0, 1, 1, 2: the median is slice 1 (instance 3); by instance number (2, 2, 3, 3, 1) it would be 2
    assert studies[0].source.endswith(f"/{NUMBERS[1]}.dcm") and studies[0].off_instance == 3


def test_choose_instance() -> None:
    assert choose_instance({"a": 5, "b": 5, "c": 7}, {5: 0.0, 7: 4.0}) == 5
    assert choose_instance({"a": 1, "b": 2, "c": 2, "d": 3, "e": 3}, {1: 8.0, 2: 0.0, 3: 4.0}) == 3
    assert choose_instance({"a": 1, "b": 2}, {1: 4.0, 2: -4.0}) == 2  # equal distance: the lower position


def _describe_as_t1(layout: Layout) -> None:
    layout.described[0] = (100, 1001, "Sagittal T1")


def _drop_from_descriptions(layout: Layout) -> None:
    layout.described = [d for d in layout.described if d[0] != 100]


def _remove_series_folder(layout: Layout) -> None:
    for f in layout.series(0).iterdir():
        f.unlink()
    layout.series(0).rmdir()


def _drop_level(layout: Layout) -> None:
    layout.labels.remove(layout.rows(100, "L3/L4")[0])


def _duplicate_row(layout: Layout) -> None:
    layout.labels.append(list(layout.rows(100, "L2/L3")[0]))


def _missing_instance(layout: Layout) -> None:
    layout.rows(100, "L1/L2")[0][2] = 9


def _corrupt_labelled_slice(layout: Layout) -> None:
    (layout.series(0) / f"{MIDDLE}.dcm").write_bytes(b"not a dicom")


def _corrupt_other_slice(layout: Layout) -> None:
    layout.rows(100, "L1/L2")[0][2] = NUMBERS[0]
    (layout.series(0) / f"{NUMBERS[0]}.dcm").write_bytes(b"not a dicom")


def _no_spacing(layout: Layout) -> None:
    layout.write(0, MIDDLE, pixels(0, 1), position=(0.0, -10.0, 20.0), spacing=None)


def _text_coordinate(layout: Layout) -> None:
    layout.rows(100, "L4/L5")[0][5] = "n/a"


def _outside(layout: Layout) -> None:
    layout.rows(100, "L5/S1")[0][6] = H + 5.0


def _two_sagittal_series(layout: Layout) -> None:
    layout.described.append((100, 1009, "Sagittal T2/STIR"))
    layout.labels.append([100, 1009, 1, "Spinal Canal Stenosis", "L1/L2", 20.0, 6.0])


def _unknown_level(layout: Layout) -> None:
    layout.rows(100, "L5/S1")[0][4] = "L5/L6"


def _conflicting_descriptions(layout: Layout) -> None:
    layout.described.append((100, 1001, "Axial T2"))


def _instance_not_a_number(layout: Layout) -> None:
    layout.rows(100, "L2/L3")[0][2] = "2b"


BAD: list[tuple[Callable[[Layout], None], str]] = [
    (_describe_as_t1, "no Sagittal T2/STIR series in train_series_descriptions.csv"),
    (_drop_from_descriptions, "no Sagittal T2/STIR series in train_series_descriptions.csv"),
    (_remove_series_folder, "train_images/100/1001/: series folder missing"),
    (_drop_level, "level L3/L4 missing (no Spinal Canal Stenosis row for it)"),
    (_duplicate_row, f"level L2/L3 labelled 2 times (instances {MIDDLE}, {MIDDLE})"),
    (_missing_instance, "train_images/100/1001/9.dcm (level L1/L2): no such file"),
    (_corrupt_labelled_slice, f"train_images/100/1001/{MIDDLE}.dcm: not a readable DICOM image"),
    (_corrupt_other_slice, f"train_images/100/1001/{NUMBERS[0]}.dcm: not a readable DICOM file"),
    (_no_spacing, f"train_images/100/1001/{MIDDLE}.dcm: no PixelSpacing"),
    (_text_coordinate, "landmark L4-L5 has a non-finite coordinate"),
    (_outside, "landmark L5-S1 at"),
    (_two_sagittal_series, "Spinal Canal Stenosis labelled on 2 Sagittal T2/STIR series (1001, 1009)"),
    (_unknown_level, "unknown Spinal Canal Stenosis level 'L5/L6'"),
    (_conflicting_descriptions, "series 1001 listed with 2 descriptions"),
    (_instance_not_a_number, "level L2/L3: instance_number '2b' is not a whole number"),
]


@pytest.mark.parametrize("edit, why", BAD, ids=[e.__name__.strip("_") for e, _ in BAD])
def test_a_bad_study_is_skipped_with_its_reason_or_stops_naming_it(tmp_path: Path, edit, why: str) -> None:
    layout = Layout(tmp_path, 2)
    edit(layout)
    root = layout.save()
    studies, skipped = read_rsna2024(root, DISCS, "skip")
    assert [s.study for s in studies] == ["101"]
    assert [s.study for s in skipped] == ["100"] and skipped[0].reason.startswith(why), skipped[0].reason
    with pytest.raises(DataError) as err:
        read_rsna2024(root, DISCS, "error")
    message = str(err.value)
    assert message.startswith("100 (train_label_coordinates.csv): ") and why in message and "\n" not in message


def test_missing_or_malformed_tables_name_the_file(tmp_path: Path) -> None:
    root = Layout(tmp_path, 1).save()
    (root / "train_label_coordinates.csv").unlink()
    with pytest.raises(DataError, match=r"train_label_coordinates\.csv: no such file \(data\.format is rsna2024"):
        read_rsna2024(root, DISCS, "skip")
    pd.DataFrame({"study_id": [100], "series_id": [1001]}).to_csv(root / "train_label_coordinates.csv", index=False)
    with pytest.raises(DataError, match=r"train_label_coordinates\.csv: no column 'instance_number'"):
        read_rsna2024(root, DISCS, "skip")
    with pytest.raises(DataError, match="no such file or folder"):
        read_dataset("rsna2024", tmp_path / "nowhere", DISCS, "skip")
