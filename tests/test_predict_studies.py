"""`lmfusion predict` on folders of whole DICOM studies (lmfusion.data.series, lmfusion.cli.study,
lmfusion.decoding.evidence): grouping by study, the series fallback, the slice chosen by evidence, --workers, and one
error line per bad study.

The fast tests run the command in-process with stand-in networks whose landmarks are surest on the slice carrying a
bright corner mark; the slow ones use the tiny trained pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest

from helpers import run
from lmfusion.api import LandmarkPredictor
from lmfusion.cli.main import build_parser
from lmfusion.config import LANDMARKS, PrepareConfig
from lmfusion.data.dicom import write_dicom
from lmfusion.data.series import Series, choose_series, read_folder, sagittal_series, weighting
from lmfusion.decoding import LandmarkDecoder
from lmfusion.decoding.evidence import peak_centre

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SIDE = 64  # every written slice's matrix


class _CornerMark:
    """Stands in for the trained networks: fixed landmarks whose U-Net probability is the preprocessed image's top
    left corner brightness, so a slice with a bright corner mark has the most evidence."""

    names = tuple(LANDMARKS)
    hm_size = reg_size = 32

    def outputs(self, hm_images: np.ndarray, reg_images: np.ndarray, batch_size: int = 8,
                zooms: tuple[float, ...] = (1.0,)):
        n, k, s = len(hm_images), len(self.names), self.hm_size
        xy = np.stack([np.full(k, 0.5), np.linspace(0.1, 0.9, k)], axis=-1)  # (K, 2) normalized
        heatmaps = np.zeros((n, k, s, s), np.float16)
        peak = hm_images[:, :4, :4].mean(axis=(1, 2)) / 255.0  # (N,)
        cols, rows = np.rint(xy[:, 0] * (s - 1)).astype(int), np.rint(xy[:, 1] * (s - 1)).astype(int)
        heatmaps[:, np.arange(k), rows, cols] = peak[:, None]
        return np.repeat(xy[None], n, axis=0).astype(np.float32), heatmaps


@pytest.fixture
def predict_cli(monkeypatch, capsys):
    """Run `lmfusion predict` in-process with the stand-in networks: (exit code, stdout, stderr)."""
    stub = LandmarkPredictor(_CornerMark(), PrepareConfig(), LandmarkDecoder(np.full(len(LANDMARKS), np.inf), 0.0),
                             method="argmax")
    monkeypatch.setattr(LandmarkPredictor, "from_pipeline", classmethod(lambda cls, *a, **k: stub))

    def predict(*argv: str) -> tuple[int, str, str]:
        args = build_parser().parse_args(["predict", *argv])
        code = args.func(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return predict


def write_series(folder: Path, study: str, series: str, n: int, *, description: str = "T2_SAG",
                 orientation: tuple[float, ...] = SAGITTAL, marked: int | None = None,
                 spacing: tuple[float, float] | None = (0.7, 0.7)) -> list[Path]:
    """n slices 4 mm apart, instance numbers 1..n along the slice normal (-x); slice `marked` gets a bright top left
    corner."""
    paths = []
    for k in range(n):
        pixels = np.random.default_rng([int(series.replace(".", "")), k]).integers(0, 1000, (SIDE, SIDE))
        if k == marked:
            pixels[:8, :8] = 4000
        path = folder / f"{series}_{k + 1}.dcm"
        write_dicom(path, pixels.astype(np.uint16), spacing=spacing, study_uid=study, series_uid=series,
                    instance_uid=f"{series}.{k + 1}", series_description=description, instance_number=k + 1,
                    orientation=orientation, position=(-4.0 * (k - n // 2), 0.0, 0.0))
        paths.append(path)
    return paths


def edit_header(path: Path, **tags) -> None:
    ds = pydicom.dcmread(path)
    for tag, value in tags.items():
        setattr(ds, tag, value)
    ds.save_as(path)


def _record(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ---------------------------------------------------------------- choosing the series and the slice

@pytest.mark.parametrize("description, echo, inversion, want", [
    ("T2_TSE_SAG", None, None, "T2"), ("SAG T1 FSE", None, None, "T1"), ("SAG STIR", None, None, "STIR"),
    ("t2_tirm_sag", None, None, "STIR"), ("SAG IR", 60.0, 150.0, "STIR"), ("SAG FLAIR", 100.0, 2200.0, "T2"),
    ("SAG", 12.0, None, "T1"), ("SAG", None, None, "unknown")])
def test_weighting(description, echo, inversion, want) -> None:
    assert weighting(description, echo, inversion) == want


def test_series_preference_t2_then_stir_then_t1_then_most_slices(tmp_path: Path) -> None:
    write_series(tmp_path, "9", "1.1", 3, description="SAG T1")
    write_series(tmp_path, "9", "1.2", 5, description="SAG STIR")
    assert choose_series(read_folder(tmp_path), tmp_path)[0].weighting == "STIR"
    write_series(tmp_path, "9", "1.3", 3, description="T2 SAG")
    write_series(tmp_path, "9", "1.4", 4, description="T2 SAG")
    series, skipped = choose_series(read_folder(tmp_path), tmp_path)
    assert (series.uid, series.weighting, len(series.instances), skipped) == ("1.4", "T2", 4, [])
    assert [i.path.name for i in series.instances] == [f"1.4_{k}.dcm" for k in (1, 2, 3, 4)]
    assert series.positions == (-8.0, -4.0, 0.0, 4.0) and series.middle == 2


@pytest.mark.parametrize("n, band", [(1, [0]), (3, [0, 1, 2]), (9, list(range(9))), (15, list(range(15))),
                                     (21, list(range(1, 20))), (31, list(range(2, 29)))])
def test_the_central_band(n, band) -> None:  # the middle +- (a third of the series + 2 slices of the peak's shoulders)
    series = Series("1", "", "T2", tuple(range(n)), tuple(float(k) for k in range(n)))
    assert list(series.band()) == band


def test_the_peak_centre_not_the_single_best_slice() -> None:
    assert peak_centre(range(7), [0.1, 0.2, 0.8, 0.79, 0.81, 0.2, 0.1], 0) == 3  # a flat top: its centre
    # the run above 0.75 of the best around it (1..4) decides; an isolated high slice elsewhere (6) does not
    assert peak_centre(range(7), [0.1, 0.8, 0.81, 0.8, 0.78, 0.1, 0.7], 0) == 2
    assert peak_centre([0, 1, 3, 4], [0.2, 0.9, 0.9, 0.2], 0) in (1, 2)  # slice 2 unreadable: a neighbour of it
    assert peak_centre(range(3), [np.nan, np.nan, np.nan], 1) == 1 and peak_centre(range(2), [0.0, -1.0], 1) == 1
    assert peak_centre(range(3), [np.nan, 0.4, -np.inf], 0) == 1


# ---------------------------------------------------------------- the command on folders of studies

def test_a_folder_of_studies_with_the_series_fallback(predict_cli, tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    write_series(root / "a", "1", "1.1", 5, marked=1)
    write_series(root / "a", "1", "1.2", 1, description="T2 AX", orientation=AXIAL)
    write_series(root / "site" / "b", "2", "2.1", 3, description="SAG T1")
    write_series(root / "c", "3", "3.1", 3, description="SAG IR", marked=2)
    for path in (root / "c").glob("*.dcm"):
        edit_header(path, InversionTime=150.0)
    code, stdout, _ = predict_cli(str(root), "--out", str(out))
    assert code == 0 and "3 of 3 studies predicted" in stdout
    a, b, c = (_record(out, name) for name in ("a", "site_b", "c"))
    assert a["series"] == {"description": "T2_SAG", "weighting": "T2", "series_instance_uid": "1.1", "slices": 5,
                           "skipped": []}
    assert (b["series"]["weighting"], c["series"]["weighting"]) == ("T1", "STIR")
    choice = a["slice_choice"]
    assert (choice["rule"], choice["chosen_instance"], choice["middle_instance"]) == ("evidence", 2, 3)
    assert [t["instance_number"] for t in choice["tried"]] == [1, 2, 3, 4, 5]
    assert [t["position_mm"] for t in choice["tried"]] == [-8.0, -4.0, 0.0, 4.0, 8.0]
    assert max(choice["tried"], key=lambda t: t["score"])["instance_number"] == 2
    assert a["patient"]["instance_number"] == 2 and a["chosen_file"].endswith("1.1_2.dcm")
    assert c["slice_choice"]["chosen_instance"] == 3
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["name"]) == ["a", "c", "site_b"] and set(summary["status"]) == {"ok"}
    assert (out / "site_b.mrk.json").exists() and (out / "c.png").exists()
    # the overlay of a study carries the evidence of its slices beneath the chosen one
    assert cv2.imread(str(out / "a.png")).shape[0] > SIDE == cv2.imread(str(out / "a.png")).shape[1]


def test_one_study_folder_is_named_after_it_and_middle_is_the_old_rule(predict_cli, tmp_path: Path) -> None:
    write_series(tmp_path / "s7", "7", "7.1", 4, marked=0)
    code, _, _ = predict_cli(str(tmp_path / "s7"), "--out", str(tmp_path / "out"), "--slice-choice", "middle")
    choice = _record(tmp_path / "out", "s7")["slice_choice"]
    assert code == 0 and choice["rule"] == "middle" and choice["chosen_instance"] == choice["middle_instance"] == 3
    assert [t["instance_number"] for t in choice["tried"]] == [3]
    assert cv2.imread(str(tmp_path / "out" / "s7.png")).shape[:2] == (SIDE, SIDE)  # one slice tried: no strip


def test_bad_studies_each_give_one_error_line(predict_cli, tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    write_series(root / "good", "1", "1.1", 3)
    write_series(root / "axial", "2", "2.1", 3, description="T2 AX", orientation=AXIAL)
    mixed = write_series(root / "mixed", "3", "3.1", 3)
    edit_header(mixed[0], ImageOrientationPatient=list(AXIAL))
    write_series(root / "nospacing", "4", "4.1", 3, spacing=None)
    truncated = write_series(tmp_path / "single", "5", "5.1", 1)[0]
    truncated.write_bytes(truncated.read_bytes()[:truncated.stat().st_size // 2])
    code, stdout, stderr = predict_cli(str(root), str(truncated), "--out", str(out))
    errors = _errors(stderr)
    assert code == 1 and "1 of 5 images predicted" in stdout and "4 failed" in stdout
    assert len(errors) == 4  # in the order of the files: axial, good, mixed, nospacing, then the truncated file
    assert errors[0].startswith(f"error: {root / 'axial'}: no sagittal series")
    assert errors[1].startswith(f"error: {root / 'mixed'}: no usable sagittal series") and "mixed orient" in errors[1]
    assert errors[2].startswith(f"error: {root / 'nospacing'}: ") and "PixelSpacing" in errors[2]
    assert errors[3].startswith(f"error: {truncated}: not a readable DICOM image")
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["status"]) == ["error", "ok", "error", "error", "error"]
    assert (out / "good.json").exists() and not (out / "mixed.json").exists()


def test_a_mixed_series_is_skipped_and_a_truncated_slice_too(predict_cli, tmp_path: Path) -> None:
    study = tmp_path / "s"
    mixed = write_series(study, "1", "1.1", 5)
    edit_header(mixed[4], ImageOrientationPatient=list(AXIAL))
    slices = write_series(study, "1", "1.2", 3, description="SAG T1")
    slices[0].write_bytes(slices[0].read_bytes()[:slices[0].stat().st_size // 2])
    code, _, stderr = predict_cli(str(study), "--out", str(tmp_path / "out"))
    record = _record(tmp_path / "out", "s")
    assert code == 0 and _errors(stderr) == []
    assert record["series"]["weighting"] == "T1" and "mixed orientations" in record["series"]["skipped"][0]
    tried = record["slice_choice"]["tried"]
    assert [t["instance_number"] for t in tried] == [2, 3]
    assert "1.2_1.dcm: not a readable DICOM image" in record["slice_choice"]["skipped"][0]


def test_orientations_that_differ_by_rounding_are_one_series(tmp_path: Path) -> None:
    slices = write_series(tmp_path, "1", "1.1", 3)
    edit_header(slices[1], ImageOrientationPatient=[0.0, 0.99999, 0.00004, 0.0, -0.00003, -1.0])
    found, skipped = sagittal_series(read_folder(tmp_path))
    assert [len(s.instances) for s in found] == [3] and skipped == []


def test_workers_give_the_same_outputs(predict_cli, tmp_path: Path) -> None:
    for i in range(4):
        write_series(tmp_path / "in" / f"s{i}", str(i + 1), f"{i + 1}.1", 3 + i, marked=i % 3)
    write_series(tmp_path / "in" / "bad", "9", "9.1", 2, orientation=AXIAL)
    results = [predict_cli(str(tmp_path / "in"), "--out", str(tmp_path / f"w{w}"), "--workers", str(w))
               for w in (1, 3)]
    assert results[0][0] == results[1][0] == 1 and _errors(results[0][2]) == _errors(results[1][2])
    files = sorted(p.name for p in (tmp_path / "w1").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "w3").iterdir()) and len(files) == 4 * 3 + 1
    for name in files:
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w3" / name).read_bytes(), name


# ---------------------------------------------------------------- the tiny trained pipeline

@pytest.mark.slow
def test_predict_batch_matches_predict(tiny_pipeline) -> None:
    from lmfusion.data.dicom import read_dicom

    root = tiny_pipeline["root"]
    predictor = LandmarkPredictor.from_pipeline(root)
    images = [read_dicom(p) for p in sorted((root / "data" / "lumbar_train150").glob("*/*.dcm"))[:5]]
    batch = predictor.predict_batch([i.pixels for i in images], [i.spacing for i in images])
    # a batched convolution rounds differently, and the maps are float16 (3 significant digits), which the
    # sub-pixel refinement turns into up to a few thousandths of a pixel: 0.02 px is far below any error that counts
    for image, together in zip(images, batch):
        alone = predictor.predict(image.pixels, image.spacing)
        np.testing.assert_allclose(together.xy, alone.xy, atol=0.02)
        np.testing.assert_allclose(together.confidence, alone.confidence, atol=1e-3)
        assert together.flags == alone.flags


@pytest.mark.slow
def test_a_folder_of_studies_on_the_tiny_pipeline(tiny_pipeline, tmp_path: Path) -> None:
    root = tiny_pipeline["root"]
    proc = run(["lmfusion", "predict", str(root / "data" / "lumbar_train150"), "--out", str(tmp_path),
                "--pipeline", str(root), "--workers", "2"], root)
    studies = sorted(p.name for p in (root / "data" / "lumbar_train150").iterdir())
    assert f"{len(studies)} of {len(studies)} studies predicted" in proc.stdout
    for name in studies:
        record = _record(tmp_path, name)
        choice = record["slice_choice"]
        assert record["series"]["weighting"] == "T2" and len(choice["tried"]) == record["series"]["slices"]
        tried = choice["tried"]
        peak = tried[peak_centre(range(len(tried)), [t["score"] for t in tried], -1)]
        assert choice["chosen_instance"] == peak["instance_number"] == record["patient"]["instance_number"]
