"""benchmarks/bench_finetune.py on tiny sizes: scratch against fine-tuned on a target-style set, one test split,
the JSON and learning curves the report shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers import TINY_PARAMS, deep_update, load_benchmark
from lmfusion.reporting import report
from lmfusion.config import LANDMARKS
from lmfusion.errors import DataError
from lmfusion.nets.models import build_unet, build_regressor, save_model

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TINY = deep_update({"train_xception": {"model": "resnet10t", "epochs": 2, "freeze_epochs": 1},
                    "train_unet": {"epochs": 2, "freeze_epochs": 1}}, TINY_PARAMS)


def _pretrained(root: Path, p: dict, seed: int = 0) -> None:
    """Pretrained models as the pretrain stages save them, for params `p`'s architecture and sizes."""
    tx, tu, size = p["train_xception"], p["train_unet"], p["prepare"]["unet_size"]
    torch.manual_seed(seed)
    nets = {"xception": ("regressor", {"model": tx["model"], "n_landmarks": 11, "dropout": tx["dropout"]}),
            "unet": ("heatmap", {"arch": tu["arch"], "encoder": tu["encoder"], "n_landmarks": 11,
                                 "encoder_depth": tu["encoder_depth"], "decoder_channels": tu["decoder_channels"]})}
    for net, (kind, builder) in nets.items():
        model = build_regressor(**builder) if kind == "regressor" else build_unet(**builder)
        save_model(root / net / "synthetic" / "model.pt", model, {"kind": kind, "builder": builder,
                                                                  "names": list(LANDMARKS), "input_size": size})


def _bench():
    return load_benchmark("bench_finetune")


@pytest.mark.parametrize("spec", ["freeze3", "scratch:lr=1", "x:lr", "x:spine.lr=1", "x:"])
def test_a_malformed_variant_stops_with_one_line(spec):
    with pytest.raises(DataError, match="--variant") as e:
        _bench().parse_variant(spec)
    assert "\n" not in str(e.value)


def test_a_variant_sets_both_networks_or_one():
    name, overrides = _bench().parse_variant("slow:lr=0.0001,unet.lr=0.0003,xception.freeze_epochs=2")
    assert name == "slow"
    assert overrides == {"train_xception": {"lr": 0.0001, "freeze_epochs": 2}, "train_unet": {"lr": 0.0003}}


def _run(tmp_path, *extra):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_finetune.py"), "--params",
                           str(tmp_path / "params.yaml"), "--pretrained", str(tmp_path / "pretrained"), "--train", "6",
                           "--val", "3", "--test", "3", "--work", str(tmp_path / "work"), "--out",
                           str(tmp_path / "out"), *extra], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_scratch_and_fine_tuned_share_the_test_split_and_the_report_shows_them(tmp_path):
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _pretrained(tmp_path / "pretrained", params)
    _run(tmp_path)
    result = json.loads((tmp_path / "out" / "finetune.json").read_text())
    assert result["settings"]["style"] == "target" and result["settings"]["test"] == 3
    assert result["settings"]["finetune"]["xception"]["freeze_epochs"] == 1
    for variant in ("scratch", "pretrained"):
        v = result["variants"][variant]
        assert {"direct", "argmax", "fused", "chain"} <= set(v["test"]) and v["best_method"] in v["test"]
        assert 0 <= v["test"]["fused"]["sdr"] <= 1 and v["training"]["unet"]["epochs_run"] == 2
    assert (tmp_path / "out" / "finetune_curves.png").stat().st_size > 0
    meta = torch.load(tmp_path / "work" / "pretrained" / "xception" / "model.pt", weights_only=True)["meta"]
    assert meta["init"]["fresh"] == []  # the target set has the pretraining's 11 landmarks: every tensor loads
    assert "init" not in torch.load(tmp_path / "work" / "scratch" / "xception" / "model.pt",
                                    weights_only=True)["meta"]
    for variant in ("scratch", "pretrained"):  # one prepared set, so one test split
        assert json.loads((tmp_path / "work" / variant / "evaluate.json").read_text())["test"]["landmarks"] == 33
    section = "\n".join(report.finetune_section(result))
    assert "| pretrained | fused |" in section and "figures/finetune_curves.png" in section

    # one more option, the rest reused: the scratch and pretrained models stay as they were
    scratch_model = tmp_path / "work" / "scratch" / "xception" / "model.pt"
    before = scratch_model.stat().st_mtime_ns
    proc = _run(tmp_path, "--reuse", "--variant", "nofreeze:freeze_epochs=0,unet.lr=0.0005")
    assert "scratch: reused" in proc.stderr and "pretrained: reused" in proc.stderr
    assert scratch_model.stat().st_mtime_ns == before
    result = json.loads((tmp_path / "out" / "finetune.json").read_text())
    assert result["settings"]["variants"]["nofreeze"] == {"xception": {"freeze_epochs": 0},
                                                          "unet": {"freeze_epochs": 0, "lr": 0.0005}}
    assert yaml.safe_load((tmp_path / "work" / "nofreeze.yaml").read_text())["train_unet"]["lr"] == 0.0005
    meta = torch.load(tmp_path / "work" / "nofreeze" / "xception" / "model.pt", weights_only=True)["meta"]
    assert meta["init"]["fresh"] == []  # an option starts from the pretrained models too
    nofreeze = result["variants"]["nofreeze"]
    assert nofreeze["best_method"] in nofreeze["test"] and nofreeze["training"]["unet"]["epochs_run"] == 2
    section = "\n".join(report.finetune_section(result))
    assert "| nofreeze | xception: freeze_epochs 0; unet: freeze_epochs 0, lr 0.0005 |" in section

    # another pretraining at the same path: nothing is reused
    _pretrained(tmp_path / "pretrained", params, seed=1)
    proc = _run(tmp_path, "--reuse")
    assert "reused" not in proc.stderr and scratch_model.stat().st_mtime_ns != before
