"""Stage deps that cannot drift: every package file a stage script imports is a dep of that stage in dvc.yaml, and
the evaluate and report stages run without torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmfusion import deps

REPO = Path(__file__).resolve().parents[1]


def deps_problems(dvc_yaml: str) -> list[str]:
    """One line per stage whose code deps (dvc.yaml's text) differ from what its script imports."""
    problems = []
    for name, stage in yaml.safe_load(dvc_yaml)["stages"].items():
        stage = stage.get("do", stage)  # a foreach stage's template
        script = re.search(r"python (stages/\w+\.py)", stage["cmd"]).group(1)
        needed = deps.stage_deps(REPO / script, REPO)
        listed = [d for d in stage["deps"] if d.startswith(("src/", "stages/"))]
        problems += [f"stage {name}: dvc.yaml does not list {d}" for d in needed if d not in listed]
        problems += [f"stage {name}: dvc.yaml lists {d}, which {script} does not import" for d in listed
                     if d not in needed]
    return problems


def test_every_stage_lists_exactly_the_code_it_runs() -> None:
    assert deps_problems((REPO / "dvc.yaml").read_text()) == []


def test_a_removed_dep_is_named() -> None:
    text = (REPO / "dvc.yaml").read_text()
    assert "      - src/lmfusion/coords.py\n" in text
    broken = text.replace("      - src/lmfusion/coords.py\n", "", 1)  # from the first stage only
    assert deps_problems(broken) == ["stage prepare: dvc.yaml does not list src/lmfusion/coords.py"]


def test_the_walk_follows_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    from lmfusion.nets.models import build_regressor\n"
                      "def f():\n    from lmfusion import metrics\n")
    names = {p.relative_to(deps.ROOT).as_posix() for p in deps.package_files(script)}
    assert "metrics.py" in names and "coords.py" in names and "__init__.py" in names  # metrics imports coords
    assert "models.py" not in names


def test_the_training_hash_covers_what_the_stage_imports() -> None:
    files = {p.name for p in deps.package_files(REPO / "stages" / "train_unet.py")}
    assert {"loop.py", "job.py", "models.py", "augment.py", "datasets.py", "heatmaps.py", "losses.py"} <= files


@pytest.mark.parametrize("entry", ["stages/infer.py", "src/lmfusion/api.py"])
def test_inference_imports_no_augmentation_datasets_or_figures(entry: str) -> None:
    files = {p.relative_to(deps.ROOT).as_posix() for p in deps.package_files(REPO / entry)}
    assert not files & {"data/augment.py", "data/datasets.py"}
    assert not [f for f in files if f.startswith("figures/")]


@pytest.mark.parametrize("script", ["evaluate.py", "report.py"])
def test_evaluate_and_report_import_no_torch(script: str) -> None:
    code = (f"import runpy, sys; sys.argv = ['{script}', '--help']\n"
            f"try:\n    runpy.run_path({str(REPO / 'stages' / script)!r}, run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_a_decode_or_figure_edit_reruns_no_training_or_inference() -> None:
    """The decoder's files are deps of evaluate and report only, so a decode-only edit reruns those two (seconds);
    no training or inference stage draws a picture beyond its own preview, or decodes."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    uses = {name: [d for d in stage.get("do", stage)["deps"] if d.startswith("src/lmfusion/decoding/")]
            for name, stage in stages.items()}
    assert {name for name, files in uses.items() if files} == {"evaluate", "report"}
    for name in ("train_xception", "train_unet", "pretrain_xception", "pretrain_unet", "infer"):
        drawn = [d for d in stages[name].get("do", stages[name])["deps"] if d.startswith("src/lmfusion/figures/")]
        assert set(drawn) <= {"src/lmfusion/figures/__init__.py", "src/lmfusion/figures/drawing.py",
                              "src/lmfusion/figures/augment.py"}, name
    assert not [d for d in stages["infer"]["deps"] if d.startswith("src/lmfusion/figures/")]
