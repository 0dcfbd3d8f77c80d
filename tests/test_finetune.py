"""A pretrained start (lmfusion.nets.finetune): 11-landmark weights into 5-landmark networks, what must match, where
`weights: synthetic` points, and the weights file in the training's checkpoint hash."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from lmfusion.nets import finetune
from lmfusion.config import LANDMARKS, XceptionConfig
from lmfusion.errors import DataError, ParamError
from lmfusion.nets.models import build_unet, build_regressor, save_model
from lmfusion.training import job

DISCS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
REGRESSOR = {"model": "resnet10t", "dropout": 0.2}
UNET = {"arch": "Unet", "encoder": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 8, 8]}


def _build(kind: str, n: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return (build_regressor(**REGRESSOR, n_landmarks=n) if kind == "regressor"
            else build_unet(**UNET, n_landmarks=n))


def _pretrained(tmp_path: Path, kind: str, size: int = 64) -> tuple[Path, torch.nn.Module]:
    """An 11-landmark network, moved away from any fresh initialization, saved as a training stage saves it."""
    net = _build(kind, len(LANDMARKS), seed=0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)
    builder = {**(REGRESSOR if kind == "regressor" else UNET), "n_landmarks": len(LANDMARKS)}
    path = tmp_path / kind / "model.pt"
    save_model(path, net, {"kind": kind, "builder": builder, "names": list(LANDMARKS), "input_size": size,
                           "mlflow_run_id": "run-11"})
    return path, net


def _load(net: torch.nn.Module, path: Path, kind: str, names: tuple[str, ...], size: int = 64,
          **arch: object) -> dict:
    builder = {**(REGRESSOR if kind == "regressor" else UNET), **arch, "n_landmarks": len(names)}
    return finetune.load_pretrained(net, finetune.read_saved(path), path, key="train_x.weights", kind=kind,
                                    builder=builder, names=names, input_size=size)


@pytest.mark.parametrize("kind, feature_part, head", [("regressor", "backbone.", "head."),
                                                      ("heatmap", "encoder.", "segmentation_head.")])
def test_eleven_landmarks_initialise_five_backbone_loads_heads_fresh(tmp_path, caplog, kind, feature_part, head):
    path, pretrained = _pretrained(tmp_path, kind)
    net = _build(kind, len(DISCS), seed=1)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="lmfusion"):
        info = _load(net, path, kind, DISCS)
    theirs, ours = pretrained.state_dict(), net.state_dict()
    features = [k for k in ours if k.startswith(feature_part)]
    assert features and all(torch.equal(ours[k], theirs[k]) for k in features)
    heads = [k for k in ours if k.startswith(head)]
    assert heads and sorted(info["fresh"]) == sorted(heads)
    assert all(torch.equal(ours[k], fresh[k]) for k in heads)  # as initialized for 5 landmarks
    if kind == "heatmap":  # the decoder does not depend on the landmarks: it loads too
        assert all(torch.equal(ours[k], theirs[k]) for k in ours if k.startswith("decoder."))
    assert info["loaded"] == len(ours) - len(heads) and info["mlflow_run_id"] == "run-11"
    assert f"fresh: {head[:-1]} {len(heads)}" in caplog.text and feature_part[:-1] in caplog.text


def test_the_same_landmarks_load_every_tensor(tmp_path):
    path, pretrained = _pretrained(tmp_path, "regressor")
    net = _build("regressor", len(LANDMARKS), seed=1)
    info = _load(net, path, "regressor", LANDMARKS)
    assert info["fresh"] == []
    assert all(torch.equal(v, pretrained.state_dict()[k]) for k, v in net.state_dict().items())


def test_another_architecture_or_kind_stops_with_one_line(tmp_path):
    path, _ = _pretrained(tmp_path, "heatmap")
    net = build_unet(**{**UNET, "decoder_channels": [32, 16, 8]}, n_landmarks=5)
    with pytest.raises(ParamError, match=r"^param train_x\.weights: .* is a Unet/resnet18/3/\[16, 8, 8\] network, "
                                         r"this one a Unet/resnet18/3/\[32, 16, 8\]; pretrain with the same"):
        _load(net, path, "heatmap", DISCS, decoder_channels=[32, 16, 8])
    with pytest.raises(ParamError, match="holds a heatmap network, this stage trains a regressor"):
        _load(_build("regressor", 5, 0), path, "regressor", DISCS)


def test_another_input_size_runs_or_stops_with_one_line(tmp_path, caplog):
    path, _ = _pretrained(tmp_path, "heatmap", size=64)
    with caplog.at_level(logging.INFO, logger="lmfusion"):
        _load(_build("heatmap", 5, 1), path, "heatmap", DISCS, size=96)  # fully convolutional
    assert "pretrained at 64 px, fine-tuned at 96 px" in caplog.text
    vit = {"model": "vit_tiny_patch16_224", "dropout": 0.0}
    torch.manual_seed(0)
    pre = build_regressor(**vit, n_landmarks=11)
    save_model(tmp_path / "vit.pt", pre, {"kind": "regressor", "builder": {**vit, "n_landmarks": 11},
                                          "names": list(LANDMARKS), "input_size": 224})
    with pytest.raises(ParamError, match=r"was pretrained at 224 px and does not run at 64 px \("):
        finetune.load_pretrained(build_regressor(**vit, n_landmarks=5), finetune.read_saved(tmp_path / "vit.pt"),
                                 tmp_path / "vit.pt", key="k", kind="regressor", builder={**vit, "n_landmarks": 5},
                                 names=DISCS, input_size=64)


def test_synthetic_weights_need_the_pretraining_stages(tmp_path):
    with pytest.raises(ParamError, match=r"^param train_unet\.weights: synthetic needs the synthetic pretraining "
                                         r"stages; set pretrain\.sets to \[synthetic\]"):
        finetune.resolve_weights("synthetic", "train_unet.weights", tmp_path, sets=())
    with pytest.raises(DataError, match="synthetic/model.pt: missing; run the pretraining first"):
        finetune.resolve_weights("synthetic", "train_unet.weights", tmp_path, sets=("synthetic",))
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "model.pt").write_bytes(b"x")
    assert finetune.resolve_weights("synthetic", "k", tmp_path, ("synthetic",)) == str(tmp_path / "synthetic" /
                                                                                        "model.pt")
    assert finetune.resolve_weights(None, "k", None, ()) is None


def _job(weights: str | None, pretrained: Path, sets: tuple[str, ...] = ("synthetic",)) -> job.TrainJob:
    """Just what the start of a training reads: no data."""
    return job.TrainJob(stage="train_xception", kind="regressor", builder={**REGRESSOR, "n_landmarks": 5},
                        loss_fn=None, train_set=None, val_set=None, cfg=XceptionConfig(weights=weights), seed=0,
                        params={"train_xception.lr": 1e-3}, data_arrays=[], names=DISCS, input_size=64,
                        preview=None, pretrained=pretrained, sets=sets)


def test_the_start_enters_the_checkpoint_hash(tmp_path):
    path, _ = _pretrained(tmp_path / "pretrained", "regressor")
    (tmp_path / "pretrained" / "synthetic").mkdir()
    path.rename(tmp_path / "pretrained" / "synthetic" / "model.pt")
    _, init, hashed = job._initial(_job("synthetic", tmp_path / "pretrained"))
    assert init["path"].endswith("synthetic/model.pt") and init["fresh"] == ["head.weight", "head.bias"]
    _, _, scratch = job._initial(_job(None, tmp_path / "pretrained"))
    assert "init.digest" in hashed and "init.digest" not in scratch
    moved = tmp_path / "pretrained" / "synthetic" / "model.pt"  # a pretraining rerun: other bytes, same path
    torch.save({**torch.load(moved, weights_only=True), "retrained": 1}, moved)
    _, _, again = job._initial(_job("synthetic", tmp_path / "pretrained"))
    assert again["init.digest"] != hashed["init.digest"]
    assert job.config_hash(again, []) != job.config_hash(hashed, [])
