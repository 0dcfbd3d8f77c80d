"""`lmfusion predict` and LandmarkPredictor on the tiny trained pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from helpers import run
from lmfusion.data.dicom import read_dicom
from lmfusion.decoding import METHODS

pytestmark = pytest.mark.slow

NAMES = ["T12-L1", "L1", "L1-L2", "L2", "L2-L3", "L3", "L3-L4", "L4", "L4-L5", "L5", "L5-S1"]


def _annotated_instance(root: Path, study_dir: Path) -> str:
    ann = json.loads((root / "data" / f"{study_dir.parent.name}_annotation.json").read_text())
    import pydicom

    study_uid = pydicom.dcmread(next(study_dir.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
    return next(s["data"][0]["instanceUid"] for s in ann if s["studyUid"] == study_uid)


def _check_schema(record: dict) -> None:
    assert [lm["name"] for lm in record["landmarks"]] == NAMES
    for lm in record["landmarks"]:
        assert set(lm) == {"name", "x", "y", "x_mm", "y_mm", "confidence", "xyz_lps_mm"}
        assert 0.0 <= lm["confidence"] <= 1.0
    assert {"low_confidence", "order_violated", "implausible_spacing", "spacing_assumed",
            "level_uncertain"} <= set(record["flags"])
    assert "level_margin" in record and record["method"] in METHODS
    ys = [lm["y"] for lm in record["landmarks"]]
    assert record["flags"]["order_violated"] == (not all(a < b for a, b in zip(ys, ys[1:])))


def test_study_folder_middle_rule_chooses_the_annotated_slice(tiny_pipeline, tmp_path):
    root = tiny_pipeline["root"]
    study = sorted((root / "data" / "lumbar_train150").iterdir())[0]
    proc = run(["lmfusion", "predict", str(study), "--out", str(tmp_path), "--pipeline", str(root), "--slice-choice",
                "middle"], root)
    record = json.loads((tmp_path / f"{study.name}.json").read_text())
    best = json.loads((root / "models" / "decoder.json").read_text())["best_method"]
    assert record["method"] == best and f"method: {best} (the best on the validation split)" in proc.stderr
    import pydicom

    chosen = pydicom.dcmread(record["chosen_file"], stop_before_pixels=True)
    assert chosen.SOPInstanceUID == _annotated_instance(root, study)
    assert record["series"]["weighting"] == "T2" and record["slice_choice"]["rule"] == "middle"
    _check_schema(record)
    assert record["flags"]["spacing_assumed"] is False
    assert (tmp_path / f"{study.name}.png").stat().st_size > 0
    # patient coordinates from the chosen slice's geometry, and the same points in the Slicer markups
    assert record["patient"]["sop_instance_uid"] == chosen.SOPInstanceUID
    assert record["patient"]["instance_number"] == int(chosen.InstanceNumber)
    ipp, iop = np.array(chosen.ImagePositionPatient, float), np.array(chosen.ImageOrientationPatient, float)
    row_mm, col_mm = float(chosen.PixelSpacing[0]), float(chosen.PixelSpacing[1])
    for lm in record["landmarks"]:
        want = ipp + lm["x"] * col_mm * iop[:3] + lm["y"] * row_mm * iop[3:]
        np.testing.assert_allclose(lm["xyz_lps_mm"], want, atol=2e-3)
    doc = json.loads((tmp_path / f"{study.name}.mrk.json").read_text())
    points = doc["markups"][0]
    assert doc["@schema"].endswith("markups-schema-v1.0.3.json#") and points["type"] == "Fiducial"
    assert points["coordinateSystem"] == "LPS" and [p["label"] for p in points["controlPoints"]] == NAMES
    np.testing.assert_allclose([p["position"] for p in points["controlPoints"]],
                               [lm["xyz_lps_mm"] for lm in record["landmarks"]], atol=2e-3)


def test_png_with_spacing_and_csv_batch_with_a_corrupt_file(tiny_pipeline, tmp_path):
    root = tiny_pipeline["root"]
    dcm = sorted((root / "data" / "lumbar_train150").glob("*/*.dcm"))[0]
    pixels = read_dicom(dcm).pixels
    img = np.clip(pixels / pixels.max() * 255, 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.png"), img[::-1].copy())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    run(["lmfusion", "predict", str(tmp_path / "a.png"), "--spacing", "0.7", "--out", str(tmp_path / "one"),
         "--pipeline", str(root)], root)
    record = json.loads((tmp_path / "one" / "a.json").read_text())
    assert record["spacing_mm"] == [0.7, 0.7] and record["flags"]["spacing_assumed"] is False
    assert record["patient"] is None and not (tmp_path / "one" / "a.mrk.json").exists()
    assert record["landmarks"][0]["x_mm"] == pytest.approx(record["landmarks"][0]["x"] * 0.7, abs=1e-2)
    _check_schema(record)

    pd.DataFrame({"image": ["a.png", "broken.png", "b.png"]}).to_csv(tmp_path / "batch.csv", index=False)
    proc = run(["lmfusion", "predict", str(tmp_path / "batch.csv"), "--out", str(tmp_path / "batch"),
                "--pipeline", str(root)], root, check=False)
    assert proc.returncode == 1
    assert "broken.png" in proc.stderr and "1 failed" in proc.stdout
    summary = pd.read_csv(tmp_path / "batch" / "summary.csv")
    assert sorted(summary["status"]) == ["error", "ok", "ok"]
    assert {"method", "level_margin", "level_uncertain"} <= set(summary.columns)
    assert (tmp_path / "batch" / "a.json").exists() and (tmp_path / "batch" / "b.json").exists()
    assert not (tmp_path / "batch" / "broken.json").exists()


def test_rsna_csv_round_trip_and_a_slice_without_geometry(tiny_pipeline, tmp_path):
    import shutil

    from lmfusion.data.dicom import write_dicom
    from lmfusion.data.readers.rsna2024 import DESCRIPTIONS, DISCS, IMAGES, LABELS, read_rsna2024
    from lmfusion.synth.rsna2024 import write_rsna_dataset

    root = tiny_pipeline["root"]
    write_rsna_dataset(tmp_path / "rsna", n=1, seed=3)
    study = next((tmp_path / "rsna" / IMAGES).iterdir())
    flat = np.full((64, 64), 100, np.uint16)
    write_dicom(tmp_path / "nospacing.dcm", flat, spacing=None, study_uid="1.2", series_uid="1.2.3",
                instance_uid="1.2.3.4")
    back = tmp_path / "back"
    proc = run(["lmfusion", "predict", str(study), str(tmp_path / "nospacing.dcm"), "--out", str(tmp_path / "out"),
                "--rsna-csv", str(back / LABELS), "--pipeline", str(root)], root, check=False)
    assert proc.returncode == 1 and "1 failed" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nospacing.dcm" in errors[0] and "PixelSpacing" in errors[0]
    record = json.loads((tmp_path / "out" / f"{study.name}.json").read_text())
    assert (tmp_path / "out" / f"{study.name}.mrk.json").exists()
    shutil.copy(tmp_path / "rsna" / DESCRIPTIONS, back / DESCRIPTIONS)
    (back / IMAGES).symlink_to(tmp_path / "rsna" / IMAGES)
    studies, skipped = read_rsna2024(back, DISCS, "error")
    assert skipped == [] and [s.study for s in studies] == [study.name]
    assert Path(back / studies[0].source).resolve() == Path(record["chosen_file"]).resolve()
    xy = {lm["name"]: (lm["x"], lm["y"]) for lm in record["landmarks"]}
    np.testing.assert_allclose(studies[0].landmarks, [xy[d] for d in DISCS], atol=1e-3)


def test_missing_model_is_one_line_error(tiny_pipeline, tmp_path):
    proc = run(["lmfusion", "predict", "x.png", "--out", str(tmp_path), "--pipeline", str(tmp_path)],
               tiny_pipeline["root"], check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_api_matches_the_evaluate_stage(tiny_pipeline):
    from lmfusion import LandmarkPredictor
    from lmfusion.data.prepared import load_prepared
    from lmfusion.decoding import LandmarkDecoder
    from lmfusion.evaluation import decode_split, load_split

    root = tiny_pipeline["root"]
    data = load_prepared(root / "build" / "prepared", tuple(NAMES))
    test = load_split(root / "build" / "outputs", "test", data)
    decoded = decode_split(test, LandmarkDecoder.load(root / "models" / "decoder.json"))
    predictor = LandmarkPredictor.from_pipeline(root)
    row = int(test.rows[0])
    image = read_dicom(root / "data" / data.index["source"].iloc[row])
    result = predictor.predict(image.pixels, spacing=image.spacing)
    np.testing.assert_allclose(result.xy, decoded.xy[predictor.method][0], atol=1e-6)
