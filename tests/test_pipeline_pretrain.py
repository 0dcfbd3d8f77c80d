"""Synthetic pretraining, then fine-tuning on a tiny CSV set of the five disc levels, through DVC: the pretrained
11-landmark networks initialise the 5-landmark ones, MLflow groups the pretraining, and a change to the pretraining
retrains what was fine-tuned from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from helpers import TINY_PARAMS, deep_update, make_pipeline_repo, run
from lmfusion.config import LANDMARKS

pytestmark = pytest.mark.slow

DISCS = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
SCHEDULE = {"epochs": 2, "batch_size": 4, "lr": 0.001, "scheduler": "none"}
SMALL = deep_update({
    "data": {"format": "csv"}, "base": {"landmarks": DISCS}, "pretrain": {"n": 12, "val_size": 3},
    "pretrain_xception": SCHEDULE, "pretrain_unet": {**SCHEDULE, "lr": 0.003},
    "train_xception": {"freeze_epochs": 1}, "train_unet": {"freeze_epochs": 1},
}, TINY_PARAMS)
FINETUNE = ["-S", "pretrain.sets=[synthetic]", "-S", "train_xception.weights=synthetic", "-S",
            "train_unet.weights=synthetic"]  # as README "Your own small dataset" does it
PRETRAIN_STAGES = [f"{s}@synthetic" for s in ("pretrain_synth", "pretrain_prepare", "pretrain_heatmaps",
                                               "pretrain_xception", "pretrain_unet")]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = make_pipeline_repo(tmp_path_factory.mktemp("finetune") / "repo", SMALL, fmt="csv")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root.parent / 'mlflow.db'}", "LMFUSION_TRACKING": "1"}
    repro = run(["dvc", "exp", "run", "-n", "finetune", *FINETUNE], root, env=env)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "fine-tuned"], root)
    return {"root": root, "env": env, "log": repro.stdout + repro.stderr}


def set_params(path: Path, changes: dict) -> None:
    path.write_text(yaml.safe_dump(deep_update(yaml.safe_load(path.read_text()), changes), sort_keys=False))


def _stages_run(log: str) -> list[str]:
    return [line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")]


def test_pretraining_runs_first_and_initialises_the_five_landmark_networks(finetuned):
    root, order = finetuned["root"], _stages_run(finetuned["log"])
    assert set(PRETRAIN_STAGES) <= set(order)
    assert order.index("pretrain_xception@synthetic") < order.index("train_xception")
    assert order.index("pretrain_unet@synthetic") < order.index("train_unet")
    for net, head in (("xception", "head"), ("unet", "segmentation_head")):
        meta = torch.load(root / "models" / net / "model.pt", weights_only=True)["meta"]
        assert meta["names"] == DISCS and meta["init"]["path"] == f"models/pretrained/{net}/synthetic/model.pt"
        assert meta["init"]["names"] == list(LANDMARKS)  # pretrained on the generator's 11
        assert {k.split(".")[0] for k in meta["init"]["fresh"]} == {head}
    assert "train_xception.weights: loaded" in finetuned["log"] and "fresh: head 2" in finetuned["log"]
    assert "held still for the first 1 epochs" in finetuned["log"]
    pre = json.loads((root / "metrics" / "pretrain" / "synthetic_prepare.json").read_text())
    assert (pre["studies"], pre["val"], pre["test"]) == (12, 3, 0)
    evaluate = json.loads((root / "metrics" / "evaluate.json").read_text())
    assert list(evaluate["test"]["fused"]["per_landmark"]) == DISCS
    assert run(["dvc", "status", "--quiet"], root, check=False).returncode == 0


def test_mlflow_groups_the_pretraining_and_links_the_fine_tuning(finetuned):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(finetuned["env"]["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("lmfusion").experiment_id])
    by_stage = {r.data.tags.get("dvc.stage"): r for r in runs}
    parent = by_stage["pretrain"]
    assert parent.data.tags["lmfusion.group"].startswith("pretrain synthetic ")
    for net in ("xception", "unet"):
        pretrain_run, finetune_run = by_stage[f"pretrain_{net}"], by_stage[f"train_{net}"]
        assert pretrain_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert finetune_run.data.tags["lmfusion.pretrained_run"] == pretrain_run.info.run_id


def test_another_pretraining_retrains_what_was_fine_tuned_and_switching_it_off_stops_in_one_line(finetuned):
    root, env = finetuned["root"], {**finetuned["env"], "LMFUSION_TRACKING": "0"}
    params = root / "params.yaml"
    set_params(params, {"pretrain": {"seed": 2}})  # other synthetic studies
    order = _stages_run(run(["dvc", "repro"], root, env=env).stdout)
    assert set(PRETRAIN_STAGES) | {"train_xception", "train_unet", "infer", "evaluate"} <= set(order)
    assert "prepare" not in order and "heatmaps" not in order  # the user's data did not change
    assert run(["dvc", "status", "--quiet"], root, check=False).returncode == 0
    set_params(params, {"pretrain": {"sets": []}})
    assert not any(s.startswith("pretrain") for s in run(["dvc", "stage", "list"], root).stdout.split())
    proc = run(["dvc", "repro", "train_xception"], root, env=env, check=False)
    assert proc.returncode != 0
    assert ("error: param train_xception.weights: synthetic needs the synthetic pretraining stages; set "
            "pretrain.sets to [synthetic]") in proc.stderr
