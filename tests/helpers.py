"""Shared test helpers: a tiny copy of the real pipeline in a temporary git + DVC repository, the training stages on
a tiny prepared folder, studies written in the challenge layout, and small utilities (the fixtures that use them are
in conftest.py). Tests import them with `from helpers import ...`.

lmfusion is imported inside the helpers, so a module that moves breaks the tests that use it, not the collection.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Shrunken params: the real stages, networks and readers on 14 studies of 64 px, one or two epochs.
TINY_PARAMS = {
    "prepare": {"unet_size": 64, "regressor_size": 64, "val_size": 3, "test_size": 3},
    "heatmap": {"sigma": 6.0},  # at heatmap.reference_size 256: 1.5 px of the 64 px heatmaps
    "train_xception": {"epochs": 2, "batch_size": 4, "lr": 0.001, "scheduler": "none"},
    "train_unet": {"encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 8], "epochs": 2,
                   "batch_size": 4, "lr": 0.003, "scheduler": "none", "sacrum_channel": True},
    "evaluate": {"n_overlays": 2, "n_worst": 2},
    "report": {"sigma_sweep": [1.0, 4.0]},
}


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (its siblings importable while it loads; registered in sys.modules, as a
    dataclass defined in it looks its module up)."""
    import importlib.util

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


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
    import pandas as pd

    from lmfusion.synth import generate_study
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
    for name in ("stages", "src", "benchmarks/finetune", "benchmarks/styles", "experiments"):
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


STAGE_NAMES = ["T12-L1", "L1", "L1-L2"]
STAGE_SIZE = 32
STAGE_PARAMS = {
    "base": {"seed": 0, "landmarks": STAGE_NAMES},
    "heatmap": {"sigma": 12.0},  # at heatmap.reference_size 256: 1.5 px of the STAGE_SIZE (32 px) images
    "train_xception": {"model": "resnet10t", "dropout": 0.2, "epochs": 3, "batch_size": 4, "lr": 0.001,
                       "scheduler": "onecycle"},
    "train_unet": {"encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 8, 8], "epochs": 1,
                   "batch_size": 4, "lr": 0.003, "scheduler": "none"},
}


def make_stage_inputs(root: Path, n: int = 12, n_val: int = 4) -> Path:
    """A prepared folder (bright dots at the landmarks of 128 px originals), heatmap targets and STAGE_PARAMS."""
    import pandas as pd

    from lmfusion.config import parse_section
    from lmfusion.config.geometry import target_sigma
    from lmfusion.coords import rescale
    from lmfusion.data.prepared import load_prepared, save_prepared
    from lmfusion.heatmaps import encode

    rng = np.random.default_rng(0)
    orig, names, size = 128, STAGE_NAMES, STAGE_SIZE
    xy = np.stack([rng.uniform(40, 90, (n, len(names))), np.linspace(30, 100, len(names)) +
                   rng.normal(0, 3, (n, len(names)))], axis=-1)  # (N, K, 2) original pixels
    rows = []
    for i in range(n):
        row = {"study": f"s{i:02d}", "source": "synthetic", "split": "val" if i < n_val else "train",
               "width": orig, "height": orig, "spacing_x": 0.5, "spacing_y": 0.5}
        row.update({f"{name}_{a}": xy[i, k, j] for k, name in enumerate(names) for j, a in enumerate("xy")})
        rows.append(row)

    def images(side: int) -> np.ndarray:
        dots = encode(rescale(xy, (orig, orig), (side, side)), side, side, 1.5).max(1)  # (N, S, S)
        return np.clip(rng.normal(50, 15, dots.shape) + 180 * dots, 0, 255).astype(np.uint8)

    save_prepared(root / "prepared", pd.DataFrame(rows), images(size), images(size))
    data = load_prepared(root / "prepared", tuple(names))
    (root / "heatmaps").mkdir()
    sigma = target_sigma(parse_section("heatmap", STAGE_PARAMS["heatmap"]), size)  # as the heatmaps stage scales it
    np.save(root / "heatmaps" / "targets.npy", encode(data.landmarks_at(size), size, size, sigma, dtype=np.float16))
    (root / "params.yaml").write_text(yaml.safe_dump(STAGE_PARAMS))
    return root


def stage_cmd(stage: str, root: Path, out: Path, launcher: list[str] | None = None) -> list[str]:
    """The training stage script's command line on make_stage_inputs' `root`, with every output under `out`."""
    net = "xception" if stage == "train_xception" else "unet"
    inputs = [str(root / "prepared")] + ([str(root / "heatmaps")] if stage == "train_unet" else [])
    outs = [out / "models" / net, out / "checkpoints" / f"{stage}.pt", out / "metrics" / f"{stage}.json",
            out / "plots" / f"{stage}_loss.csv", out / "plots" / f"{stage}_augment.png"]
    return [*(launcher or [sys.executable]), str(REPO / "stages" / f"{stage}.py"), *inputs, *map(str, outs),
            "--params", str(root / "params.yaml")]


def run_stage(cmd: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a stage command without tracking (unless `env` turns it on) and without an inherited stop request."""
    from lmfusion.training.loop import STOP_ENV

    full = {k: v for k, v in os.environ.items() if k != STOP_ENV}
    full.update({"LMFUSION_TRACKING": "0", **(env or {})})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


# ---------------------------------------------------------------- studies in the challenge layout

SPLIT = "lumbar_train150"
H, W = 48, 40  # every written study's matrix


def truth_points(i: int) -> np.ndarray:
    """(K, 2) landmarks inside an H x W image, top to bottom, different per study."""
    from lmfusion.config import LANDMARKS

    k = np.arange(len(LANDMARKS))
    return np.stack([18.25 + 0.5 * k + 0.1 * i, 3.5 + 4.0 * k], axis=1)


def study_pixels(i: int) -> np.ndarray:
    """Study i's (H, W) uint16 pixels."""
    return np.random.default_rng(i).integers(0, 4000, size=(H, W)).astype(np.uint16)


def _point_list(xy: np.ndarray) -> list[dict]:
    """The annotation JSON's points for `xy` (K, 2), one per name in LANDMARKS."""
    from lmfusion.config import LANDMARKS

    return [{"coord": [float(x), float(y)],
             "tag": {"identification": n, ("disc" if "-" in n else "vertebra"): "v2"}, "zIndex": 5}
            for n, (x, y) in zip(LANDMARKS, xy)]


def write_challenge(root: Path, n: int, split: str = SPLIT, spacing: tuple[float, float] | None = (0.7, 0.8),
                    edit=None) -> list[dict]:
    """`n` studies in the challenge layout: per study a T1 slice and the annotated T2 slice (image2.dcm).

    `edit(i, record, folder)` may change study i's record or files. Returns the records written to the JSON.
    """
    from lmfusion.data.dicom import write_dicom

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
                         "annotation": [{"annotator": 54, "data": {"point": _point_list(truth_points(i))}}]}]}
        if edit is not None:
            edit(i, rec, folder)
        records.append(rec)
    (root / f"{split}_annotation.json").write_text(json.dumps(records))
    return records


def points_of(rec: dict) -> list[dict]:
    """The point list of a challenge record's first annotation."""
    return rec["data"][0]["annotation"][0]["data"]["point"]


def write_image(path: Path, img: np.ndarray) -> None:
    """Write `img` with OpenCV (the format from the suffix), making the folder."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def peaks_xy(heatmaps: np.ndarray, subpixel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(..., 2) peak positions of (..., H, W) maps, integer or refined to sub-pixel, and the (...) peak values."""
    from lmfusion.decoding.peaks import argmax, refine

    xy, scores = argmax(heatmaps)
    return (refine(heatmaps, xy) if subpixel else xy), scores
