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

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
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


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def queue() -> None:
    for name, _, overrides in EXPERIMENTS:
        sets = [a for k, v in overrides.items() for a in ("-S", f"{k}={v}")]
        subprocess.run(["dvc", "exp", "run", "--queue", "-n", f"lvl-{name}", *sets], cwd=ROOT, check=True)


def _ref(name: str) -> str | None:
    """The newest experiment ref named lvl-<name> (any baseline commit)."""
    refs = [line.split() for line in _git("for-each-ref", "--sort=-committerdate",
                                          "--format=%(objectname) %(refname)", "refs/exps").splitlines()]
    return next((sha for sha, ref in refs if ref.rsplit("/", 1)[-1] == f"lvl-{name}"), None)


def row(name: str, change: str, sha: str) -> dict:
    ev = json.loads(_git("show", f"{sha}:metrics/evaluate.json"))
    radius = yaml.safe_load(_git("show", f"{sha}:params.yaml"))["evaluate"]["target_radius"]
    best, key = ev["best_method"], f"{radius:g}mm"
    train = sum(json.loads(_git("show", f"{sha}:metrics/{s}.json"))["train_seconds"] for s in (U, X))
    return {"experiment": name, "change": change, "best_method": best,
            "val_study_identification": ev["val"][best]["study_identification"],
            "val_sdr": ev["val"][best]["sdr"][key], "test_study_identification": ev["test"][best]["study_identification"],
            "test_sdr": ev["test"][best]["sdr"][key], "test_level_shifts": ev["test"][best]["level_shifts"],
            "train_minutes": round(train / 60, 1)}


def collect(out: Path) -> None:
    rows = []
    for name, change, _ in EXPERIMENTS:
        sha = _ref(name)
        if sha is None:
            print(f"lvl-{name}: no finished experiment (dvc queue status)", file=sys.stderr)
            continue
        rows.append(row(name, change, sha))
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} experiments to {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("queue", "collect"))
    ap.add_argument("--out", type=Path, default=CSV)
    args = ap.parse_args()
    queue() if args.command == "queue" else collect(args.out)


if __name__ == "__main__":
    main()
