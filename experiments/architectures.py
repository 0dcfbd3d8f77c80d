"""The heatmap model experiments: other U-Net-family architectures and encoders against the default U-Net.

    python experiments/architectures.py queue      # dvc exp run --queue, one experiment per row below
    dvc queue start                                # runs them one after another (dvc queue status)
    python experiments/architectures.py collect    # -> experiments/architectures.csv

Each experiment is the pipeline with a few `-S train_unet.*` overrides, named `arch-<name>`; the regressor comes from
DVC's run cache, so each costs one U-Net training and the evaluation. `collect` writes one row per experiment from
its committed params.yaml, metrics/evaluate.json and metrics/train_unet.json: the architecture, encoder and input
size, argmax's and fused's test SDR at the target radius, the best val loss, seconds per epoch, parameters and peak
memory (time and memory on the machine that ran it). The report stage shows the CSV's rows below this pipeline's own
U-Net in its heatmap models' table.
"""

from __future__ import annotations


import yaml

from lmfusion.reporting.architectures import FIELDS as MODEL_FIELDS, model_row
from queued import ROOT, Suite, committed_json, git

CSV = ROOT / "experiments" / "architectures.csv"
U = "train_unet"
EXPERIMENTS = (  # name, the change, overrides; each pins arch and encoder whatever the defaults are
    ("resnet34", "a deeper encoder (resnet34)", {f"{U}.arch": "Unet", f"{U}.encoder": "resnet34"}),
    ("mobilenet-v2", "a lighter encoder (mobilenet_v2)", {f"{U}.arch": "Unet", f"{U}.encoder": "mobilenet_v2"}),
    ("fpn", "FPN instead of the U-Net decoder", {f"{U}.arch": "FPN", f"{U}.encoder": "resnet18"}),
)
FIELDS = ("experiment", "change", *MODEL_FIELDS)
SUITE = Suite("arch", EXPERIMENTS, FIELDS)


def row(name: str, change: str, sha: str) -> dict:
    params = yaml.safe_load(git("show", f"{sha}:params.yaml"))
    model = model_row(arch=params[U]["arch"], encoder=params[U]["encoder"], input_size=params["prepare"]["unet_size"],
                      evaluate=committed_json(sha, "metrics/evaluate.json"),
                      train=committed_json(sha, f"metrics/{U}.json"), radius=params["evaluate"]["target_radius"])
    return {"experiment": name, "change": change, **model}


if __name__ == "__main__":
    SUITE.main(__doc__, row, CSV)
