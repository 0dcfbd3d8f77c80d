"""The regressor experiments: what each lever on the Xception + FC regressor buys in direct regression.

    python experiments/regressor.py queue      # dvc exp run --queue, one experiment per row below
    dvc queue start                            # runs them one after another (dvc queue status)
    python experiments/regressor.py collect    # -> experiments/regressor.csv

Each experiment is the pipeline with a few `-S train_xception.*` overrides, named `reg-<name>`; the U-Net comes from
DVC's run cache, so each costs one regressor training and the evaluation. `collect` writes one row per experiment:
direct regression's SDR, mean radial error and studies identified (all landmarks within the target radius) on
validation (what the choice is made on) and test, the gated fusion's test SDR, and the regressor's training seconds
(on the machine that ran it). The report stage shows the CSV as a table.
"""

from __future__ import annotations


import yaml

from queued import ROOT, Suite, committed_json, git

CSV = ROOT / "experiments" / "regressor.csv"
X = "train_xception"
EXPERIMENTS = (  # name, the change, overrides; "paper" pins the paper's choices whatever the defaults are
    ("flatten", "FC on the whole last feature map", {f"{X}.head": "flatten", f"{X}.loss": "mse"}),
    ("paper", "the paper's: FC on pooled features, MSE on 0..1 coordinates, dropout 0.2",
     {f"{X}.head": "pooled", f"{X}.loss": "mse", f"{X}.dropout": "0.2"}),
    ("smooth-l1", "Smooth L1 loss (input pixels)", {f"{X}.head": "pooled", f"{X}.loss": "smooth_l1"}),
    ("wing", "Wing loss (input pixels)", {f"{X}.head": "pooled", f"{X}.loss": "wing"}),
    ("epochs30", "30 epochs instead of 20", {f"{X}.head": "pooled", f"{X}.loss": "mse", f"{X}.epochs": "30"}),
    ("dropout0", "no dropout", {f"{X}.head": "pooled", f"{X}.loss": "mse", f"{X}.dropout": "0.0"}),
)
FIELDS = ("experiment", "change", "val_direct_sdr", "val_direct_mre_mm", "val_direct_studies", "test_direct_sdr",
          "test_direct_mre_mm", "test_direct_studies", "test_gated_sdr", "train_seconds")
SUITE = Suite("reg", EXPERIMENTS, FIELDS)


def row(name: str, change: str, sha: str) -> dict:
    ev = committed_json(sha, "metrics/evaluate.json")
    radius = yaml.safe_load(git("show", f"{sha}:params.yaml"))["evaluate"]["target_radius"]
    key = f"{radius:g}mm"
    val, test = ev["val"]["direct"], ev["test"]["direct"]
    return {"experiment": name, "change": change, "val_direct_sdr": val["sdr"][key], "val_direct_mre_mm": val["mre_mm"],
            "val_direct_studies": val["study_identification"], "test_direct_sdr": test["sdr"][key],
            "test_direct_mre_mm": test["mre_mm"], "test_direct_studies": test["study_identification"],
            "test_gated_sdr": ev["test"]["gated"]["sdr"][key],
            "train_seconds": committed_json(sha, f"metrics/{X}.json")["train_seconds"]}


if __name__ == "__main__":
    SUITE.main(__doc__, row, CSV)
