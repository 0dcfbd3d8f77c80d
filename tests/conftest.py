"""Shared fixtures: a tiny real pipeline built once per session, and the training stages' tiny prepared folder
(built by tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import TINY_PARAMS, make_pipeline_repo, make_stage_inputs, run


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole pipeline reproduced once on tiny params, tracking into a temporary MLflow database."""
    root = make_pipeline_repo(tmp_path_factory.mktemp("pipeline") / "repo", TINY_PARAMS)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root.parent / 'mlflow.db'}", "LMFUSION_TRACKING": "1"}
    repro = run(["dvc", "repro"], root, env=env)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "reproduced"], root)
    return {"root": root, "env": env, "repro": repro}


# ---------------------------------------------------------------- the training stages on a tiny prepared folder

@pytest.fixture(scope="session")
def stage_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """make_stage_inputs once per session; tests read it and write their outputs elsewhere."""
    return make_stage_inputs(tmp_path_factory.mktemp("stage_inputs"))
