"""Synthetic studies in the RSNA 2024 layout (lmfusion.synth.rsna2024) and `lmfusion synth --format`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmfusion.config import LANDMARKS
from lmfusion.data.dicom import read_header
from lmfusion.data.readers.rsna2024 import DISCS, read_rsna2024
from lmfusion.synth import generate_study
from lmfusion.synth.rsna2024 import write_rsna_dataset
from lmfusion.errors import DataError

SEED, N = 0, 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rsna") / "data"
    summary = write_rsna_dataset(out, n=N, seed=SEED)
    assert summary["studies"] == N and summary["images"] == 5 * N and summary["series"] == 3 * N
    return out


def _labels(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "train_label_coordinates.csv")


def test_layout_series_and_conditions(dataset: Path) -> None:
    described = pd.read_csv(dataset / "train_series_descriptions.csv")
    assert list(described.columns) == ["study_id", "series_id", "series_description"]
    assert described.groupby("study_id")["series_description"].apply(sorted).map(tuple).unique().tolist() == [
        ("Axial T2", "Sagittal T1", "Sagittal T2/STIR")]
    labels = _labels(dataset)
    assert list(labels.columns) == ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]
    assert set(labels["condition"]) == {"Spinal Canal Stenosis", "Left Neural Foraminal Narrowing",
                                        "Right Neural Foraminal Narrowing", "Left Subarticular Stenosis",
                                        "Right Subarticular Stenosis"}
    for row in described.itertuples():
        files = sorted((dataset / "train_images" / str(row.study_id) / str(row.series_id)).glob("*.dcm"))
        assert len(files) == (3 if row.series_description == "Sagittal T2/STIR" else 1)


def test_instance_numbers_do_not_follow_the_slice_order(dataset: Path) -> None:
    described = pd.read_csv(dataset / "train_series_descriptions.csv")
    out_of_order = 0
    for row in described[described["series_description"] == "Sagittal T2/STIR"].itertuples():
        folder = dataset / "train_images" / str(row.study_id) / str(row.series_id)
        headers = {f.name: read_header(f) for f in folder.glob("*.dcm")}
        assert all(name == f"{int(h.InstanceNumber)}.dcm" for name, h in headers.items())
        by_position = sorted(headers.values(), key=lambda h: -float(h.ImagePositionPatient[0]))  # the normal is -x
        numbers = [int(h.InstanceNumber) for h in by_position]
        assert sorted(numbers) == [1, 2, 3]
        out_of_order += numbers != [1, 2, 3]
    assert out_of_order >= N // 2


def test_reader_gives_the_generator_discs_and_counts_levels_on_other_slices(dataset: Path) -> None:
    studies, skipped = read_rsna2024(dataset, DISCS, "error")
    assert len(studies) == N and skipped == []
    for i, study in enumerate(sorted(studies, key=lambda s: int(s.study))):
        truth = generate_study(np.random.default_rng([SEED, i]), LANDMARKS)
        np.testing.assert_allclose(study.landmarks, truth.landmarks[[LANDMARKS.index(d) for d in DISCS]])
        assert study.spacing == pytest.approx(truth.spacing)
    scs = _labels(dataset).query("condition == 'Spinal Canal Stenosis'")
    spread = scs.groupby("study_id")["instance_number"].nunique()
    assert sum(s.off_instance for s in studies) == int((spread > 1).sum()) >= 1


def test_same_seed_same_bytes_and_nothing_overwritten(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_rsna_dataset(again, n=N, seed=SEED)
    files = sorted(f.relative_to(dataset) for f in dataset.rglob("*") if f.is_file())
    assert files == sorted(f.relative_to(again) for f in again.rglob("*") if f.is_file())
    assert all((dataset / f).read_bytes() == (again / f).read_bytes() for f in files)
    with pytest.raises(DataError, match="not an empty folder"):
        write_rsna_dataset(again, n=1, seed=SEED)


def test_cli_format_option(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "lmfusion.cli", "synth", "--out", str(tmp_path / "d"), "--n", "2", "--format",
           "rsna2024", "--montage", str(tmp_path / "m.png")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d" / "train_label_coordinates.csv").is_file() and (tmp_path / "m.png").stat().st_size > 0
    bad = subprocess.run(cmd[:-4] + ["--format", "dicom"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'dicom'" in bad.stderr
