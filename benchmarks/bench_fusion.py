"""Every decode method on a landmark set built to be hard for the regressor: does the fusion prior help or hurt, and
does the gated fusion hold up against both of its inputs?

    python benchmarks/bench_fusion.py [--params params.yaml] [--train 150] [--test 50] [--seed 11]
        [--style target] [--crop 0.6] [--work build/bench_fusion] [--out benchmarks/fusion] [--reuse]

Writes a CSV dataset (`data.format: csv`, a split column: TRAIN studies for training and validation, TEST for test)
of `lmfusion synth --style STYLE` slices, each cropped at random around its spine (the crop keeps every landmark and
a margin drawn from 0..CROP x the spine's extent on each side), so the spine sits anywhere in a field of view of any
shape: the regressor's coordinates relative to the image carry little. Then the pipeline's own stage scripts
prepare, train both networks with params.yaml's settings, infer and evaluate, as `dvc repro` would; MLflow tracking
is off. Writes OUT/fusion.json (val and test figures of every method, the fitted gate, the prior's effect per
landmark) and prints the test table. --reuse keeps the work folder's dataset and trained models when unchanged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from bench_finetune import run_stage
from lmfusion.config import LANDMARKS, load_params
from lmfusion.synth import generate_study
from lmfusion.io import write_json
from lmfusion.metrics import radius_key
from lmfusion.stage import stage_main


def _crop(image: np.ndarray, xy: np.ndarray, margin: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random crop holding every landmark of (K, 2) `xy`, with 0..margin x the spine's extent on each side."""
    h, w = image.shape
    lo, hi = np.floor(xy.min(0)), np.ceil(xy.max(0))  # (2,) x, y
    extent = np.maximum(hi - lo, 1.0)
    x0, y0 = np.maximum(lo - rng.uniform(0, margin, 2) * extent, 0).astype(int)
    x1, y1 = np.minimum(hi + 1 + rng.uniform(0, margin, 2) * extent, (w, h)).astype(int)
    return image[y0:y1, x0:x1], xy - (x0, y0)


def write_hard_set(out: Path, train: int, test: int, seed: int, style: str, margin: float) -> None:
    """`train + test` cropped studies as 16-bit PNGs and landmarks.csv (with a split column)."""
    rows = []
    for i in range(train + test):
        rng = np.random.default_rng([seed, i])
        study = generate_study(rng, LANDMARKS, style)
        image, xy = _crop(study.image, study.landmarks, margin, rng)
        name = f"images/s{i:03d}.png"
        (out / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out / name), image)
        row = {"image": name, "split": "train" if i < train else "test", "spacing_x": study.spacing[0],
               "spacing_y": study.spacing[1]}
        row.update({f"{n}_{a}": round(float(xy[k, j]), 2) for k, n in enumerate(LANDMARKS) for j, a in enumerate("xy")})
        rows.append(row)
    pd.DataFrame(rows).to_csv(out / "landmarks.csv", index=False)


def _figures(split: dict, key: str) -> dict:
    """Per method: SDR at the target radius, MRE, studies identified and level-shifted studies."""
    return {m: {"sdr": r["sdr"][key], "mre_mm": r["mre_mm"], "study_identification": r["study_identification"],
                "level_shifts": r["level_shifts"]}
            for m, r in split.items() if isinstance(r, dict) and "sdr" in r}


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=150, help="training studies (validation is taken from them)")
    ap.add_argument("--test", type=int, default=50)
    ap.add_argument("--seed", type=int, default=11, help="generator seed of the set")
    ap.add_argument("--style", default="target", help="lmfusion synth --style of the set")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--crop", type=float, default=0.6, help="largest margin around the spine, x its extent")
    ap.add_argument("--work", default="build/bench_fusion", help="scratch folder (replaced unless --reuse)")
    ap.add_argument("--out", default="benchmarks/fusion")
    ap.add_argument("--reuse", action="store_true", help="keep the work folder's set and models when unchanged")
    args = ap.parse_args()
    raw = yaml.safe_load(Path(args.params).read_text()) or {}
    radius = load_params(args.params, ("evaluate",))["evaluate"].target_radius
    work = Path(args.work).resolve()  # the stages run inside it
    settings = {"train": args.train, "test": args.test, "seed": args.seed, "style": args.style, "crop": args.crop}
    p = {**raw, "data": {"format": "csv", "path": "data", "on_invalid": "error"}}
    stamp = {**settings, "params": p}
    if not (args.reuse and (work / "set.json").is_file() and json.loads((work / "set.json").read_text()) == stamp):
        shutil.rmtree(work, ignore_errors=True)
        print(f"{args.train + args.test} cropped {args.style} studies (seed {args.seed}) in {work}", file=sys.stderr)
        write_hard_set(work / "data", args.train, args.test, args.seed, args.style, args.crop)
        (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        params = work / "params.yaml"
        run_stage("prepare", "data", "prepared", "prepare.json", "montage.png", params=params, cwd=work)
        run_stage("heatmaps", "prepared", "heatmaps", "heatmaps.png", params=params, cwd=work)
        common = ("checkpoint.pt", "metrics.json", "loss.csv", "augment.png")
        run_stage("train_xception", "prepared", "xception", *(f"xception_{f}" for f in common), params=params,
                  cwd=work)
        run_stage("train_unet", "prepared", "heatmaps", "unet", *(f"unet_{f}" for f in common), params=params,
                  cwd=work)
        run_stage("infer", "prepared", "xception", "unet", "outputs", params=params, cwd=work)
        write_json(work / "set.json", stamp)
    run_stage("evaluate", "prepared", "outputs", "decoder.json", "evaluate.json", "plots", "runs.json",
              params=work / "params.yaml", cwd=work)
    evaluate = json.loads((work / "evaluate.json").read_text())
    decoder = json.loads((work / "decoder.json").read_text())
    key = radius_key(radius)
    result = {"settings": {**settings, "radius_mm": radius}, "best_method": evaluate["best_method"],
              "gate_ratio": decoder["gate_ratio"], "gate_fit": decoder["fit"].get("gate"),
              **{s: _figures(evaluate[s], key) for s in ("val", "test")},
              "prior_effect": {s: evaluate[s]["prior_effect"] for s in ("val", "test")}}
    write_json(Path(args.out) / "fusion.json", result)
    for m, r in result["test"].items():
        print(f"{m:>16}: SDR {100 * r['sdr']:5.1f}% within {key}, MRE {r['mre_mm']:.2f} mm, studies identified "
              f"{100 * (r['study_identification'] or 0):5.1f}%, level-shifted {r['level_shifts']}")
    print(f"gate {decoder['gate_ratio']}; best on val: {evaluate['best_method']}; wrote {Path(args.out) / 'fusion.json'}")


if __name__ == "__main__":
    main()
