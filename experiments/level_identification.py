"""The level identification experiments: what each training change buys in naming the levels right.

    python experiments/level_identification.py queue      # dvc exp run --queue, one experiment per row below
    dvc queue start                                       # runs them one after another (dvc queue status)
    python experiments/level_identification.py collect    # -> experiments/level_identification.csv

Each experiment is the pipeline with a few `-S` overrides, named `lvl-<name>`; stages whose params and code did not
change come from DVC's run cache, so the U-Net rows share one regressor training and vice versa. `collect` reads
each experiment's committed metrics (git show of its ref) and writes one row per experiment: the method best on
val, its study identification (all landmarks within the target radius) and SDR on val and test, its whole-level
shifts on test and the training time of both networks. The report stage shows the CSV as a table.
"""

from __future__ import annotations


import yaml

from queued import ROOT, Suite, committed_json, git

CSV = ROOT / "experiments" / "level_identification.csv"
U, X = "train_unet", "train_xception"
EXPERIMENTS = (  # name, the change, overrides
    ("plain", "U-Net as the paper's (no sacrum map, no coordinates)",
     {f"{U}.sacrum_channel": "false", f"{U}.coord_channels": "false"}),
    ("sacrum", "+ a sacrum target map (S1 extrapolated from the landmarks)",
     {f"{U}.sacrum_channel": "true", f"{U}.coord_channels": "false"}),
    ("coord", "+ CoordConv input channels", {f"{U}.sacrum_channel": "false", f"{U}.coord_channels": "true"}),
    ("sacrum-coord", "+ both", {f"{U}.sacrum_channel": "true", f"{U}.coord_channels": "true"}),
    ("reg25-unet35", "regressor 25 epochs, U-Net 35 instead of 25", {f"{X}.epochs": "25", f"{U}.epochs": "35"}),
)
FIELDS = ("experiment", "change", "best_method", "val_study_identification", "val_sdr", "test_study_identification",
          "test_sdr", "test_level_shifts", "train_minutes")
SUITE = Suite("lvl", EXPERIMENTS, FIELDS)


def row(name: str, change: str, sha: str) -> dict:
    ev = committed_json(sha, "metrics/evaluate.json")
    radius = yaml.safe_load(git("show", f"{sha}:params.yaml"))["evaluate"]["target_radius"]
    best, key = ev["best_method"], f"{radius:g}mm"
    train = sum(committed_json(sha, f"metrics/{s}.json")["train_seconds"] for s in (U, X))
    return {"experiment": name, "change": change, "best_method": best,
            "val_study_identification": ev["val"][best]["study_identification"],
            "val_sdr": ev["val"][best]["sdr"][key],
            "test_study_identification": ev["test"][best]["study_identification"],
            "test_sdr": ev["test"][best]["sdr"][key], "test_level_shifts": ev["test"][best]["level_shifts"],
            "train_minutes": round(train / 60, 1)}


if __name__ == "__main__":
    SUITE.main(__doc__, row, CSV)
