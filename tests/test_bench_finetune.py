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

from conftest import TINY_PARAMS, deep_update
from lmfusion import report
from lmfusion.config import LANDMARKS
from lmfusion.models import build_heatmap_net, build_regressor, save_model

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TINY = deep_update({"train_xception": {"model": "resnet10t", "epochs": 2, "freeze_epochs": 1},
                    "train_unet": {"epochs": 2, "freeze_epochs": 1}}, TINY_PARAMS)


def _pretrained(root: Path, p: dict) -> None:
    """Pretrained models as the pretrain stages save them, for params `p`'s architecture and sizes."""
    tx, tu, size = p["train_xception"], p["train_unet"], p["prepare"]["unet_size"]
    torch.manual_seed(0)
    nets = {"xception": ("regressor", {"model": tx["model"], "n_landmarks": 11, "dropout": tx["dropout"]}),
            "unet": ("heatmap", {"arch": tu["arch"], "encoder": tu["encoder"], "n_landmarks": 11,
                                 "encoder_depth": tu["encoder_depth"], "decoder_channels": tu["decoder_channels"]})}
    for net, (kind, builder) in nets.items():
        model = build_regressor(**builder) if kind == "regressor" else build_heatmap_net(**builder)
        save_model(root / net / "synthetic" / "model.pt", model, {"kind": kind, "builder": builder,
                                                                  "names": list(LANDMARKS), "input_size": size})


def test_scratch_and_fine_tuned_share_the_test_split_and_the_report_shows_them(tmp_path):
    params = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _pretrained(tmp_path / "pretrained", params)
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_finetune.py"), "--params",
                           str(tmp_path / "params.yaml"), "--pretrained", str(tmp_path / "pretrained"), "--train", "6",
                           "--val", "3", "--test", "3", "--work", str(tmp_path / "work"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "finetune.json").read_text())
    assert result["settings"]["style"] == "target" and result["settings"]["test"] == 3
    assert result["settings"]["finetune"]["xception"]["freeze_epochs"] == 1
    for variant in ("scratch", "pretrained"):
        v = result["variants"][variant]
        assert set(v["test"]) == {"direct", "argmax", "fused", "chain"}
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
