"""The whole pipeline through DVC on tiny params and synthetic data in the RSNA 2024 layout (five disc levels)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import TINY_PARAMS, deep_update, make_pipeline_repo, run
from lmfusion.data.readers.rsna2024 import DISCS
from lmfusion.decoding import METHODS

pytestmark = pytest.mark.slow

RSNA_PARAMS = deep_update({"data": {"format": "rsna2024"}, "base": {"landmarks": list(DISCS)}}, TINY_PARAMS)


@pytest.fixture(scope="module")
def rsna_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_pipeline_repo(tmp_path_factory.mktemp("rsna") / "repo", RSNA_PARAMS, fmt="rsna2024")
    run(["dvc", "repro"], root, env={"LMFUSION_TRACKING": "0"})
    return root


def test_repro_runs_through_report_on_the_five_discs(rsna_pipeline: Path) -> None:
    root = rsna_pipeline
    prepare = json.loads((root / "metrics" / "prepare.json").read_text())
    assert prepare["studies"] == 14 and prepare["skipped"] == 0
    labels = pd.read_csv(root / "data" / "train_label_coordinates.csv")
    spread = labels.query("condition == 'Spinal Canal Stenosis'").groupby("study_id")["instance_number"].nunique()
    assert prepare["multi_instance"] == int((spread > 1).sum()) >= 1
    evaluate = json.loads((root / "metrics" / "evaluate.json").read_text())
    for m in METHODS:
        assert list(evaluate["test"][m]["per_landmark"]) == list(DISCS)
    assert "| fused (the paper) |" in (root / "reports" / "ablation.md").read_text()
    assert run(["dvc", "status", "--quiet"], root, check=False).returncode == 0


def test_a_bad_study_stops_prepare_naming_it_with_on_invalid_error(rsna_pipeline: Path) -> None:
    root = rsna_pipeline
    study = sorted((root / "data" / "train_images").iterdir())[0]
    series = next(d for d in study.iterdir() if len(list(d.glob("*.dcm"))) == 3)  # the Sagittal T2/STIR series
    for f in series.glob("*.dcm"):
        f.write_bytes(b"broken")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("on_invalid: skip", "on_invalid: error"))
    proc = run(["dvc", "repro", "prepare"], root, env={"LMFUSION_TRACKING": "0"}, check=False)
    assert proc.returncode != 0
    assert f"error: {study.name} (train_label_coordinates.csv): train_images/{study.name}/{series.name}/" in proc.stderr
