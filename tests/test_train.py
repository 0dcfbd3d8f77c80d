"""The training loop (lmfusion.training.loop), its stage wiring (lmfusion.training.job, stages/train_*.py): determinism,
resuming after a kill, early stopping, and two-process DistributedDataParallel."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from helpers import STAGE_NAMES, STAGE_PARAMS, STAGE_SIZE, run_stage, stage_cmd
from lmfusion.training import loop as train
from lmfusion.config import AugmentConfig, TrainConfig, XceptionConfig
from lmfusion.data.datasets import HeatmapDataset, RegressorDataset
from lmfusion.data.prepared import load_prepared
from lmfusion.nets.models import build_unet, build_regressor


def _fit_regressor(inputs: Path, tmp: Path, cfg: TrainConfig) -> tuple[train.FitResult, nn.Module]:
    data = load_prepared(inputs / "prepared", tuple(STAGE_NAMES))
    tr, va = data.split_indices("train"), data.split_indices("val")
    torch.manual_seed(0)
    model = build_regressor("resnet10t", len(STAGE_NAMES), 0.2)
    result = train.fit(model, nn.MSELoss(),
                       RegressorDataset(data.regressor[tr], data.landmarks_norm[tr], AugmentConfig(), seed=0),
                       RegressorDataset(data.regressor[va], data.landmarks_norm[va], None, seed=0),
                       cfg, seed=0, checkpoint=tmp / "ck.pt", config_hash="x", loss_csv=tmp / "loss.csv")
    return result, model


@pytest.mark.slow
def test_fit_is_deterministic(stage_inputs, tmp_path):
    cfg = XceptionConfig(epochs=2, batch_size=4, lr=1e-3, scheduler="cosine", warmup_epochs=1)
    a, model_a = _fit_regressor(stage_inputs, tmp_path / "a", cfg)
    b, model_b = _fit_regressor(stage_inputs, tmp_path / "b", cfg)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    for (k, va), vb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.epochs_run == 2 and 1 <= a.best_epoch <= 2
    table = pd.read_csv(tmp_path / "a" / "loss.csv")
    assert list(table.columns) == ["epoch", "train_loss", "val_loss"] and list(table.epoch) == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("epochs", [1, 2])
def test_freeze_epochs_hold_the_backbone_still_then_train_it(stage_inputs, tmp_path, epochs):
    data = load_prepared(stage_inputs / "prepared", tuple(STAGE_NAMES))
    tr = data.split_indices("train")
    ds = RegressorDataset(data.regressor[tr], data.landmarks_norm[tr], None, seed=0)
    torch.manual_seed(0)
    model = build_regressor("resnet10t", len(STAGE_NAMES), 0.2)
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    cfg = XceptionConfig(epochs=epochs, batch_size=4, lr=1e-3, scheduler="none", freeze_epochs=1)
    train.fit(model, nn.MSELoss(), ds, ds, cfg, seed=0, checkpoint=tmp_path / "ck.pt", config_hash="f",
              hold=model.backbone)
    moved = {k for k, v in model.named_parameters() if not torch.equal(v, start[k])}
    assert {"head.weight", "head.bias"} <= moved
    assert any(k.startswith("backbone.") for k in moved) == (epochs == 2)  # held in epoch 1, trained in epoch 2


@pytest.mark.slow
def test_early_stopping(stage_inputs, tmp_path, monkeypatch):
    losses = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: next(losses))
    data = load_prepared(stage_inputs / "prepared", tuple(STAGE_NAMES))
    xy = data.landmarks_at(STAGE_SIZE)
    ds = HeatmapDataset(data.unet[:4], xy[:4], 1.5, None, seed=0)
    net = build_unet("Unet", "resnet18", len(STAGE_NAMES), 3, [8, 8, 8])
    cfg = TrainConfig(epochs=6, batch_size=4, early_stopping=2)
    result = train.fit(net, nn.BCEWithLogitsLoss(), ds, ds, cfg, seed=0, checkpoint=tmp_path / "ck.pt",
                       config_hash="h")
    assert result.stopped_early and result.epochs_run == 4 and result.best_epoch == 2
    assert result.best_val_loss == 0.5


@pytest.mark.parametrize("scheduler", ["none", "cosine", "onecycle"])
def test_schedules(scheduler):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.1)
    cfg = TrainConfig(epochs=4, lr=0.1, scheduler=scheduler, warmup_epochs=1)
    sched = train.make_scheduler(opt, cfg, steps_per_epoch=5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.1, rel=1e-6)
    assert lrs[0] < 0.1  # warmup
    if scheduler == "none":
        assert lrs[5:] == [0.1] * 15
    else:
        assert lrs[-1] < 0.01  # annealed


def test_checkpoint_for_other_params_is_ignored(tmp_path, caplog):
    path = tmp_path / "ck.pt"
    torch.save({"config_hash": "old", "epoch": 1}, path)
    assert train.load_checkpoint(path, "new") is None
    assert "other params" in caplog.text
    assert train.load_checkpoint(path, "old")["epoch"] == 1
    path.write_bytes(b"garbage")
    assert train.load_checkpoint(path, "old") is None


@pytest.mark.slow
def test_resume_after_kill_gives_the_uninterrupted_weights(stage_inputs, tmp_path):
    killed = run_stage(stage_cmd("train_xception", stage_inputs, tmp_path / "resumed"),
                       env={"LMFUSION_STOP_AFTER_EPOCH": "1"}, check=False)
    assert killed.returncode != 0 and "stopped after epoch 1" in killed.stderr
    assert (tmp_path / "resumed" / "checkpoints" / "train_xception.pt").exists()
    assert not (tmp_path / "resumed" / "models" / "xception" / "model.pt").exists()
    resumed = run_stage(stage_cmd("train_xception", stage_inputs, tmp_path / "resumed"))
    assert "resuming from" in resumed.stderr
    run_stage(stage_cmd("train_xception", stage_inputs, tmp_path / "straight"))

    a = torch.load(tmp_path / "resumed" / "models" / "xception" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "straight" / "models" / "xception" / "model.pt", weights_only=True)
    for k in b["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    csv_a = (tmp_path / "resumed" / "plots" / "train_xception_loss.csv").read_text()
    assert csv_a == (tmp_path / "straight" / "plots" / "train_xception_loss.csv").read_text()
    assert len(csv_a.splitlines()) == 1 + STAGE_PARAMS["train_xception"]["epochs"]
    metrics = json.loads((tmp_path / "resumed" / "metrics" / "train_xception.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["world_size"] == 1 and metrics["replicas_in_sync"] is True
    meta = b["meta"]
    assert meta["kind"] == "regressor" and meta["names"] == STAGE_NAMES and meta["input_size"] == STAGE_SIZE
    assert (tmp_path / "straight" / "plots" / "train_xception_augment.png").stat().st_size > 0

    # dvc repro deletes a stage's outputs before it runs; a finished checkpoint must still give every one back
    outs = [tmp_path / "straight" / p for p in ("plots/train_xception_loss.csv", "metrics/train_xception.json",
                                               "models/xception/model.pt", "plots/train_xception_augment.png")]
    for path in outs:
        path.unlink()
    again = run_stage(stage_cmd("train_xception", stage_inputs, tmp_path / "straight"))
    assert "resuming from" in again.stderr and all(path.exists() for path in outs)
    assert outs[0].read_text() == csv_a


@pytest.mark.slow
def test_ddp_two_processes_with_the_encoder_held_for_an_epoch(stage_inputs, tmp_path):
    params = {**STAGE_PARAMS, "train_unet": {**STAGE_PARAMS["train_unet"], "epochs": 2, "freeze_epochs": 1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2"]
    cmd = stage_cmd("train_unet", stage_inputs, tmp_path, launcher=torchrun)[:-1] + [str(tmp_path / "params.yaml")]
    run_stage(cmd, env={"OMP_NUM_THREADS": "1"})
    metrics = json.loads((tmp_path / "metrics" / "train_unet.json").read_text())
    assert metrics["world_size"] == 2 and metrics["replicas_in_sync"] is True
    assert (tmp_path / "models" / "unet" / "model.pt").exists()
    assert len(pd.read_csv(tmp_path / "plots" / "train_unet_loss.csv")) == 2


def test_heatmap_bce_keeps_the_optimum_and_weights_the_peaks():
    from lmfusion.training.losses import HeatmapBCE

    target = torch.zeros(1, 2, 8, 8)
    target[0, 0, 3, 3], target[0, 0, 3, 4] = 1.0, 0.6
    logits = torch.logit(target.clamp(1e-4, 1 - 1e-4)).requires_grad_()  # p = target: the optimum
    HeatmapBCE(50.0)(logits, target).backward()
    assert logits.grad.abs().max() < 1e-3  # weighting does not move the optimum
    zeros = torch.zeros(1, 2, 8, 8)
    plain = torch.nn.BCEWithLogitsLoss()(zeros, target)
    assert torch.allclose(HeatmapBCE(0.0)(zeros, target), plain)  # 0 is the paper's plain BCE
    assert HeatmapBCE(50.0)(zeros, target) > plain  # the peaks count more


def test_coordinate_losses_measure_the_error_in_input_pixels():
    from lmfusion.training.losses import CoordinateLoss

    target = torch.full((2, 11, 2), 0.5)
    pred = (target + 3.0 / 128).requires_grad_()  # 3 px off at a 128 px input
    assert torch.isclose(CoordinateLoss("mse", 128)(pred, target), torch.tensor((3 / 128) ** 2))  # the paper's
    assert torch.isclose(CoordinateLoss("smooth_l1", 128)(pred, target), torch.tensor(2.5))  # linear past 1 px
    assert torch.isclose(CoordinateLoss("wing", 128)(pred, target), torch.tensor(10 * math.log1p(1.5)))
    wing = CoordinateLoss("wing", 128)
    below, above = (wing(target + d / 128, target) for d in (10 - 1e-3, 10 + 1e-3))
    assert abs(above - below) < 1e-2  # the log piece meets the linear one at w = 10 px
    wing(pred, target).backward()  # d/de of w ln(1 + e / eps) = w / (eps + e) per px, averaged over 44 coordinates
    assert torch.allclose(pred.grad, torch.full_like(pred, 10 / (2 + 3) * 128 / 44))
    with pytest.raises(ValueError, match="huber"):
        CoordinateLoss("huber")
