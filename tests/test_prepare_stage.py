"""The prepare and heatmaps stage scripts on a tiny challenge-format dataset: outputs, metrics, failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import SPLIT, peaks_xy, points_of, truth_points, write_challenge
from lmfusion.config import LANDMARKS, PrepareConfig
from lmfusion.data.dicom import read_dicom
from lmfusion.data.prepared import load_prepared
from lmfusion.data.preprocess import preprocess
from lmfusion.figures.prepared import MONTAGE_COUNT, montage_picks

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"prepare": {"unet_size": 64, "regressor_size": 32, "val_size": 1, "test_size": 1},
          "heatmap": {"sigma": 6.0}}  # at heatmap.reference_size 256: 1.5 px at unet_size 64


def stage(name: str, *args: object, params: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py"), *map(str, args), "--params",
                           str(params)], capture_output=True, text=True, cwd=params.parent)


def drop_l3(i: int, rec: dict, folder: Path) -> None:
    if i == 4:
        del points_of(rec)[LANDMARKS.index("L3")]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("stage")
    write_challenge(root / "data", 6, edit=drop_l3)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    prep = stage("prepare", root / "data", root / "prepared", root / "prepare.json", root / "montage.png",
                 params=params)
    assert prep.returncode == 0, prep.stderr
    hm = stage("heatmaps", root / "prepared", root / "heatmaps", root / "preview.png", params=params)
    assert hm.returncode == 0, hm.stderr
    return {"root": root, "params": params, "prepare": prep}


def test_prepared_folder(run: dict) -> None:
    root = run["root"]
    data = load_prepared(root / "prepared", LANDMARKS)
    ids = [f"{SPLIT}/study{i}" for i in (0, 1, 2, 3, 5)]
    assert list(data.index["study"]) == ids
    assert list(data.index.columns[:7]) == ["study", "source", "split", "width", "height", "spacing_x", "spacing_y"]
    assert sorted(data.index["split"]) == ["test", "train", "train", "train", "val"]
    assert data.unet.shape == (5, 64, 64) and data.unet.dtype == np.uint8
    assert data.regressor.shape == (5, 32, 32) and data.regressor.dtype == np.uint8
    cfg = PrepareConfig(**PARAMS["prepare"])
    pixels = read_dicom(root / "data" / data.index["source"][2]).pixels
    np.testing.assert_array_equal(data.unet[2], preprocess(pixels, 64, cfg))  # the one preprocessing path
    np.testing.assert_array_equal(data.regressor[2], preprocess(pixels, 32, cfg))
    np.testing.assert_allclose(data.landmarks, np.stack([truth_points(i) for i in (0, 1, 2, 3, 5)]), atol=1e-6)
    np.testing.assert_allclose(data.spacing, [[0.7, 0.8]] * 5)
    assert (data.sizes == [40, 48]).all()
    assert list(data.index["source"]) == [f"{i}/image2.dcm" for i in ids]
    assert "WARNING" in run["prepare"].stderr and f"{SPLIT}/study4" in run["prepare"].stderr


def test_metrics_and_montage(run: dict) -> None:
    root = run["root"]
    metrics = json.loads((root / "prepare.json").read_text())
    assert {k: metrics[k] for k in ("studies", "train", "val", "test", "skipped")} == {
        "studies": 5, "train": 3, "val": 1, "test": 1, "skipped": 1}
    assert metrics["skipped_studies"] == [{"study": f"{SPLIT}/study4", "reason": "landmark L3 missing"}]
    assert metrics["spacing_mm"] == {"min": 0.7, "max": 0.8}
    assert metrics["matrix_px"] == {"min": 40, "max": 48}
    montage = cv2.imread(str(root / "montage.png"))
    assert montage is not None and montage.shape[2] == 3 and montage.std() > 0


def test_heatmap_targets(run: dict) -> None:
    root = run["root"]
    data = load_prepared(root / "prepared", LANDMARKS)
    targets = np.load(root / "heatmaps" / "targets.npy")
    assert targets.shape == (5, len(LANDMARKS), 64, 64) and targets.dtype == np.float16
    xy, scores = peaks_xy(targets.astype(np.float32), subpixel=True)
    np.testing.assert_allclose(xy, data.landmarks_at(64), atol=0.02)
    assert (scores > 0.8).all()
    preview = cv2.imread(str(root / "preview.png"))
    assert preview is not None and preview.shape[:2] == (512, 1024)  # whole image and zoom
    assert [p.name for p in (root / "heatmaps").iterdir()] == ["targets.npy"]


def test_rerun_is_deterministic(run: dict, tmp_path: Path) -> None:
    root = run["root"]
    again = stage("prepare", root / "data", tmp_path / "prepared", tmp_path / "m.json", tmp_path / "m.png",
                  params=run["params"])
    assert again.returncode == 0, again.stderr
    for name in ("index.csv", "unet.npy", "regressor.npy"):
        assert (tmp_path / "prepared" / name).read_bytes() == (root / "prepared" / name).read_bytes()


def test_failing_runs_leave_no_output(run: dict, tmp_path: Path) -> None:
    root = run["root"]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**PARAMS, "data": {"on_invalid": "error"}}))
    proc = stage("prepare", root / "data", tmp_path / "prepared", tmp_path / "m.json", tmp_path / "m.png",
                 params=params)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {SPLIT}/study4 ({SPLIT}_annotation.json): landmark L3 missing "
        "(data.on_invalid: skip would leave it out)")
    proc = stage("heatmaps", tmp_path / "prepared", tmp_path / "heatmaps", tmp_path / "p.png", params=params)
    assert proc.returncode == 1 and "run the prepare stage first" in proc.stderr
    params.write_text(yaml.safe_dump({**PARAMS, "prepare": {**PARAMS["prepare"], "val_size": 3, "test_size": 2}}))
    proc = stage("prepare", root / "data", tmp_path / "prepared", tmp_path / "m.json", tmp_path / "m.png",
                 params=params)
    assert proc.returncode == 2 and "5 studies are available" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no output, no temporary left over


def test_no_valid_study_is_an_error(tmp_path: Path) -> None:
    write_challenge(tmp_path / "data", 1, edit=lambda i, rec, folder: drop_l3(4, rec, folder))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    proc = stage("prepare", tmp_path / "data", tmp_path / "prepared", tmp_path / "m.json", tmp_path / "m.png",
                 params=params)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].endswith(
        f"no valid study (1 skipped; e.g. {SPLIT}/study0: landmark L3 missing)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "params.yaml"]


def test_montage_shows_the_hard_fields_of_view_first() -> None:
    names = ("A", "B")
    # study 2: spine in the top tenth (small, high); 3: lowest; 4: largest matrix; 5: non-square
    ys = [(0.3, 0.7), (0.35, 0.75), (0.05, 0.1), (0.5, 0.98), (0.2, 0.8), (0.25, 0.75)] + [(0.3, 0.7)] * 20
    index = pd.DataFrame({"A_x": 10.0, "B_x": 10.0, "A_y": [100 * a for a, _ in ys], "B_y": [100 * b for _, b in ys],
                          "width": [100] * 4 + [200, 80] + [100] * 20, "height": [100] * 4 + [200, 100] + [100] * 20})
    turn = np.zeros(len(index))
    turn[7], turn[9] = 60.0, 45.0
    picks = montage_picks(index, names, turn)
    assert len(picks) == MONTAGE_COUNT and len({i for i, _ in picks}) == MONTAGE_COUNT
    assert picks[:6] == [(7, "steep junction 60 deg"), (9, "steep junction 45 deg"), (2, "small spine"),
                         (3, "lowest"), (4, "largest matrix"), (5, "non-square")]
    assert picks[6] == (0, "")  # then the first studies
    assert [i for i, _ in montage_picks(index, names, None)][:2] == [2, 3]  # no turn without L1..L5-S1
