"""The synthetic pretraining's view of params.yaml (lmfusion.config.pretraining) and the generator's style hook."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmfusion import config
from lmfusion.config import pretraining
from lmfusion.config import LANDMARKS
from lmfusion import synth
from lmfusion.errors import ParamError

REPO = Path(__file__).resolve().parents[1]
USER = {"base": {"seed": 4, "landmarks": ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]},
        "data": {"format": "csv", "path": "data/landmarks.csv"},
        "prepare": {"unet_size": 96, "equalize": "clahe", "val_size": 5, "test_size": 10},
        "train_xception": {"model": "resnet10t", "epochs": 5, "lr": 1e-4, "weights": "synthetic", "freeze_epochs": 2},
        "pretrain": {"sets": ["synthetic"], "n": 40, "val_size": 8},
        "pretrain_xception": {"epochs": 30, "lr": 5e-4}}


def _params(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(USER))
    return path


def test_the_pretraining_shares_preprocessing_and_architecture_with_its_own_data_and_schedule(tmp_path):
    p = pretraining.load_params(_params(tmp_path), ("base", "data", "prepare", "train_xception"), pretrain=True)
    assert p["base"].landmarks == LANDMARKS and p["base"].seed == 4  # the generator's 11, the user's seed
    assert p["data"].format == "tianchi"
    prep = p["prepare"]
    assert (prep.unet_size, prep.equalize, prep.val_size, prep.test_size) == (96, "clahe", 8, 0)
    tx = p["train_xception"]
    assert tx.model == "resnet10t"  # the architecture the fine-tuning loads into
    assert (tx.epochs, tx.lr, tx.weights, tx.freeze_epochs) == (30, 5e-4, None, 0)  # pretrain_xception's
    assert set(p) == {"base", "data", "prepare", "train_xception"}
    user = pretraining.load_params(_params(tmp_path), ("base", "train_xception"))
    assert user["train_xception"].weights == "synthetic" and len(user["base"].landmarks) == 5
    assert pretraining.stage_name("train_unet", True) == "pretrain_unet"


def test_the_pretraining_cannot_start_from_itself(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"pretrain_unet": {"weights": "synthetic"}}))
    with pytest.raises(ParamError, match="param pretrain_unet.weights: must be null, imagenet or a local file"):
        pretraining.load_params(path, ("train_unet",), pretrain=True)


def test_write_dataset_takes_a_style_and_names_an_unknown_one(tmp_path):
    assert synth.write_dataset(tmp_path / "target", n=1, seed=0, style="target")["studies"] == 1
    with pytest.raises(ParamError, match="^synth style: unknown style 'stir'; known: default, target, randomized, "
                                         "unseen, clinical$"):
        synth.write_dataset(tmp_path / "stir", n=1, seed=0, style="stir")
    assert not (tmp_path / "stir").exists()


def test_pretrain_synth_stage_names_a_bad_style(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"pretrain": {"style": "stir"}}))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "pretrain_synth.py"), str(tmp_path / "d"),
                           str(tmp_path / "m.png"), "--params", str(tmp_path / "params.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("error: param pretrain.style: unknown style 'stir'; known: "
                                                    "default, target, randomized, unseen, clinical")


def pretrain_params_problems(dvc_yaml: str) -> list[str]:
    """One line per key that a pretrain_* stage of dvc.yaml (its text) lists and the pretraining does not read, or
    reads and the stage does not list (lmfusion.config.pretraining.pretrain_params of its twin's params)."""
    stages = {name: s.get("do", s) for name, s in yaml.safe_load(dvc_yaml)["stages"].items()}
    params = {name: [str(p) for p in s.get("params", [])] for name, s in stages.items()}
    runs = {name: s["cmd"].split() for name, s in stages.items()}  # python SCRIPT ... [--pretrain]
    twin = {cmd[1]: name for name, cmd in runs.items() if "--pretrain" not in cmd}
    problems = []
    for name in [n for n, cmd in runs.items() if "--pretrain" in cmd]:
        read = pretraining.pretrain_params(params[twin[runs[name][1]]])
        problems += [f"stage {name}: dvc.yaml does not list {k}" if k in read else
                     f"stage {name}: dvc.yaml lists {k}, which the pretraining does not read"
                     for k in sorted(set(read) ^ set(params[name]))]
    return problems


def test_pretrain_stages_list_exactly_the_params_they_read() -> None:
    assert pretrain_params_problems((REPO / "dvc.yaml").read_text()) == []


def test_a_drifted_architecture_key_is_named() -> None:
    text = (REPO / "dvc.yaml").read_text()
    assert text.count("        - train_unet.encoder\n") == 1
    assert pretrain_params_problems(text.replace("        - train_unet.encoder\n", "")) == [
        "stage pretrain_unet: dvc.yaml does not list train_unet.encoder"]
    head = "        - train_xception.head\n"
    extra = text.replace(head, head + "        - train_xception.lr\n")
    assert pretrain_params_problems(extra) == [
        "stage pretrain_xception: dvc.yaml lists train_xception.lr, which the pretraining does not read"]


@pytest.mark.parametrize("section, cls", [("train_xception", config.XceptionConfig), ("train_unet", config.UnetConfig),
                                          ("prepare", config.PrepareConfig)])
def test_every_key_is_shared_or_set_by_the_pretraining(section: str, cls: type) -> None:
    """A key added to a network's section is architecture (shared) or schedule: the pretraining never drops it."""
    own = {"prepare": {"val_size", "test_size"}}.get(section, {f.name for f in dataclasses.fields(config.TrainConfig)})
    shared = pretraining.SHARED[section]
    assert len(set(shared)) == len(shared) and not set(shared) & own
    assert set(shared) | own == {f.name for f in dataclasses.fields(cls)}
