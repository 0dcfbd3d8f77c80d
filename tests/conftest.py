"""Shared fixtures: a tiny copy of the real pipeline in a temporary git + DVC repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Shrunken params: the real stages, networks and readers on 14 studies of 64 px, one or two epochs.
TINY_PARAMS = {
    "prepare": {"unet_size": 64, "regressor_size": 64, "val_size": 3, "test_size": 3},
    "heatmap": {"sigma": 1.5},
    "train_xception": {"epochs": 2, "batch_size": 4, "lr": 0.001, "scheduler": "none"},
    "train_unet": {"encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 8], "epochs": 2,
                   "batch_size": 4, "lr": 0.003, "scheduler": "none", "sacrum_channel": True},
    "evaluate": {"n_overlays": 2, "n_worst": 2},
    "report": {"sigma_sweep": [1.0, 4.0]},
}


def run(cmd: list[str] | str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command with the test environment's binaries first on PATH; fail with its output on error."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    full_env.setdefault("GIT_AUTHOR_NAME", "lmfusion-test")
    full_env.setdefault("GIT_AUTHOR_EMAIL", "test@lmfusion.invalid")
    full_env.setdefault("GIT_COMMITTER_NAME", "lmfusion-test")
    full_env.setdefault("GIT_COMMITTER_EMAIL", "test@lmfusion.invalid")
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, shell=isinstance(cmd, str))
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def deep_update(base: dict, new: dict) -> dict:
    for k, v in new.items():
        base[k] = deep_update(dict(base.get(k) or {}), v) if isinstance(v, dict) else v
    return base


def write_csv_dataset(out: Path, n: int, names: tuple[str, ...], seed: int = 0) -> None:
    """`n` synthetic annotated slices as 16-bit PNGs with landmarks.csv (data.format: csv) for `names`."""
    import numpy as np
    import pandas as pd

    from lmfusion.data.synth import generate_study
    from lmfusion.figures.drawing import write_png

    rows = []
    for i in range(n):
        study = generate_study(np.random.default_rng([seed, i]), names)
        write_png(out / "images" / f"s{i:02d}.png", study.image)
        row = {"image": f"images/s{i:02d}.png", "spacing_x": study.spacing[0], "spacing_y": study.spacing[1]}
        row.update({f"{name}_{a}": study.landmarks[k, j] for k, name in enumerate(names) for j, a in enumerate("xy")})
        rows.append(row)
    pd.DataFrame(rows).to_csv(out / "landmarks.csv", index=False)


def make_pipeline_repo(root: Path, params: dict, n_studies: int = 14, fmt: str = "tianchi") -> Path:
    """A git + DVC repository holding this project's pipeline files, tiny params and synthetic data in the layout
    `fmt` (`lmfusion synth --format`, or csv; params must set data.format and base.landmarks to match)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    for name in ("stages", "src", "benchmarks/finetune", "experiments"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for ignore in (REPO / "models" / "pretrained").glob("*/.gitignore"):  # the folders training depends on
        (root / ignore.relative_to(REPO)).parent.mkdir(parents=True)
        shutil.copy(ignore, root / ignore.relative_to(REPO))
    all_params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(deep_update(all_params, params), sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "config", "core.analytics", "false"], root)
    if fmt == "csv":
        write_csv_dataset(root / "data", n_studies, tuple(all_params["base"]["landmarks"]))
    else:
        run(["lmfusion", "synth", "--out", "data", "--n", str(n_studies), "--seed", "0", "--format", fmt], root)
    run(["dvc", "add", "-q", "data"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "tiny pipeline"], root)
    return root


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole pipeline reproduced once on tiny params, tracking into a temporary MLflow database."""
    root = make_pipeline_repo(tmp_path_factory.mktemp("pipeline") / "repo", TINY_PARAMS)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root.parent / 'mlflow.db'}", "LMFUSION_TRACKING": "1"}
    repro = run(["dvc", "repro"], root, env=env)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "reproduced"], root)
    return {"root": root, "env": env, "repro": repro}
