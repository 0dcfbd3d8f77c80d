"""Fine-tuned from the synthetic pretraining against trained from scratch, on a small target set in another synthetic
style (STIR-like contrast, steep lumbosacral junctions), with one test split for both.

    python benchmarks/bench_finetune.py [--params params.yaml] [--pretrained models/pretrained] [--train 40]
        [--val 10] [--test 40] [--seed 7] [--style target] [--work build/bench_finetune] [--out benchmarks/finetune]
        [--variant NAME:KEY=VALUE[,KEY=VALUE...] ...] [--reuse]

Needs the pretraining's models (pretrain.sets: [synthetic], then dvc repro). Generates train + val + test studies
with `lmfusion synth --style STYLE`, prepares them once with params.yaml's prepare section, and trains both networks
twice with params.yaml's train_* sections: from scratch (weights null, nothing held still) and from the pretrained
models (everything else as params.yaml says: epochs, lr, warmup_epochs, freeze_epochs). The pipeline's own stage
scripts do the work, so each variant is decoded and evaluated exactly as `dvc repro` would. Writes OUT/finetune.json
(per variant: the test figures of each decode method and the training figures of each network) and
OUT/finetune_curves.png (loss per epoch, scratch beside fine-tuned, a panel per network); the report stage shows
both. MLflow tracking is off for these runs.

Fine-tuning options: each --variant adds one more start from the pretrained models with its own settings, e.g.
`--variant freeze3:freeze_epochs=3` or `--variant slow:lr=0.0001,unet.lr=0.0003` (a bare KEY sets both networks'
train_* key, `xception.KEY` / `unet.KEY` one network's). --reuse keeps the work folder: the target set when its
generator settings and preprocessing are unchanged, and each variant whose params file is unchanged, so variants can
be added one run at a time (another pretrained model starts afresh; after a change to the code, run without
--reuse). finetune.json also holds each variant's best method (chosen on validation) and its
validation figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from lmfusion.figures import charts
from lmfusion.config import LANDMARKS, PRETRAINED, load_params
from lmfusion import synth
from lmfusion.errors import DataError
from lmfusion.io import write_json
from lmfusion.metrics import radius_key
from lmfusion.stage import stage_main

REPO = Path(__file__).resolve().parents[1]
NETWORKS = {"xception": "train_xception", "unet": "train_unet"}
METHODS = ("direct", "argmax", "fused", "chain")
BASE_VARIANTS = ("scratch", "pretrained")


def parse_variant(spec: str) -> tuple[str, dict[str, dict]]:
    """'NAME:KEY=VALUE,...' -> (NAME, {train section: {key: value}}); a bad spec stops with one line."""
    name, sep, body = spec.partition(":")
    overrides: dict[str, dict] = {section: {} for section in NETWORKS.values()}
    if not sep or not name or name in BASE_VARIANTS or not body:
        raise DataError(f"--variant {spec!r}: expected NAME:KEY=VALUE[,KEY=VALUE...] with NAME not one of "
                        f"{', '.join(BASE_VARIANTS)}")
    for item in body.split(","):
        key, eq, value = item.partition("=")
        net, dot, leaf = key.strip().rpartition(".")
        if not eq or not leaf or (dot and net not in NETWORKS):
            raise DataError(f"--variant {spec!r}: {item!r} is not KEY=VALUE with KEY one of name, "
                            f"{', '.join(f'{n}.name' for n in NETWORKS)}")
        for n in ([net] if dot else NETWORKS):
            overrides[NETWORKS[n]][leaf] = yaml.safe_load(value)
    return name, overrides


def stage_command(script: str, *args: object, params: Path) -> list[str]:
    """The command line of one of the pipeline's stage scripts with its params file."""
    return [sys.executable, str(REPO / "stages" / f"{script}.py"), *map(str, args), "--params", str(params)]


STAGE_ENV = {"LMFUSION_TRACKING": "0"}  # the benchmarks' stage runs are not tracked in MLflow


def run_stage(script: str, *args: object, params: Path, cwd: Path) -> None:
    """Run one of the pipeline's stage scripts; a failure stops the benchmark with its last line."""
    proc = subprocess.run(stage_command(script, *args, params=params), cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **STAGE_ENV})
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DataError(f"stages/{script}.py failed in {cwd}: {last}")
    print(f"  {script} {' '.join(map(str, args[-1:]))}", file=sys.stderr)


def _params(raw: dict, variant: str, pretrained: dict[str, Path], args: argparse.Namespace, path: Path,
            overrides: dict[str, dict] | None = None) -> Path:
    """params.yaml for one variant: the target set's data and splits; the networks' start and the variant's own
    train_* settings. A file already there with the same text is left as it is (its variant may be reused)."""
    p = {**raw, "base": {**raw.get("base", {}), "landmarks": list(LANDMARKS)},
         "data": {"format": "tianchi", "path": "data", "on_invalid": "error"},
         "prepare": {**raw.get("prepare", {}), "val_size": args.val, "test_size": args.test}}
    for net, section in NETWORKS.items():
        start = {"weights": None, "freeze_epochs": 0} if variant == "scratch" else {"weights": str(pretrained[net])}
        p[section] = {**raw.get(section, {}), **start, **(overrides or {}).get(section, {})}
    text = yaml.safe_dump(p, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
        (path.parent / path.stem / "evaluate.json").unlink(missing_ok=True)  # the variant's results are stale
    return path


def _train_and_evaluate(variant: str, params: Path, work: Path) -> None:
    out = work / variant
    if (out / "evaluate.json").is_file():
        print(f"  {variant}: reused", file=sys.stderr)
        return
    common = ("checkpoint.pt", "metrics.json", "loss.csv", "augment.png")
    run_stage("train_xception", "prepared", out / "xception", *(out / f"xception_{f}" for f in common), params=params,
           cwd=work)
    run_stage("train_unet", "prepared", "heatmaps", out / "unet", *(out / f"unet_{f}" for f in common), params=params,
           cwd=work)
    run_stage("infer", "prepared", out / "xception", out / "unet", out / "outputs", params=params, cwd=work)
    run_stage("evaluate", "prepared", out / "outputs", out / "decoder.json", out / "evaluate.json", out / "plots",
           out / "runs.json", params=params, cwd=work)


def _results(work: Path, radius: float, names: list[str]) -> dict:
    """Test figures per variant and method (the four methods and the variant's best one), training figures and loss
    curves per network."""
    key, variants, curves = radius_key(radius), {}, {}
    for variant in names:
        out = work / variant
        evaluate = json.loads((out / "evaluate.json").read_text())
        test, best = evaluate["test"], evaluate["best_method"]
        training = {}
        for net in NETWORKS:
            m = json.loads((out / f"{net}_metrics.json").read_text())
            training[net] = {k: m[k] for k in ("best_val_loss", "best_epoch", "epochs_run", "train_seconds")}
            table = pd.read_csv(out / f"{net}_loss.csv")
            curves.setdefault(net, {})[variant] = {c: table[c].tolist() for c in ("epoch", "train_loss", "val_loss")}
        variants[variant] = {"test": {m: {"sdr": test[m]["sdr"][key], "mre_mm": test[m]["mre_mm"],
                                          "study_identification": test[m]["study_identification"],
                                          "level_shifts": test[m]["level_shifts"]}
                                      for m in dict.fromkeys((*METHODS, best))},
                             "best_method": best, "val_best": {"sdr": evaluate["val"][best]["sdr"][key],
                                                               "study_identification":
                                                                   evaluate["val"][best]["study_identification"]},
                             "training": training}
    return {"variants": variants, "curves": curves}


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--pretrained", default="models/pretrained", help="folder of the pretraining's models")
    ap.add_argument("--train", type=int, default=40, help="training studies of the target set")
    ap.add_argument("--val", type=int, default=10)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7, help="generator seed of the target set")
    ap.add_argument("--style", default="target", help="lmfusion synth --style of the target set")
    ap.add_argument("--work", default="build/bench_finetune", help="scratch folder (replaced unless --reuse)")
    ap.add_argument("--out", default="benchmarks/finetune")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE...]",
                    help="one more fine-tuned start with its own train_* settings (repeatable)")
    ap.add_argument("--reuse", action="store_true", help="keep the work folder's target set and unchanged variants")
    args = ap.parse_args()
    extra = dict(parse_variant(spec) for spec in args.variant)
    pretrained = {net: Path(args.pretrained).resolve() / net / PRETRAINED / "model.pt" for net in NETWORKS}
    for path in pretrained.values():
        if not path.is_file():
            raise DataError(f"{path}: missing; pretrain first (pretrain.sets: [{PRETRAINED}], dvc repro)")
    raw = yaml.safe_load(Path(args.params).read_text()) or {}
    radius = load_params(args.params, ("evaluate",))["evaluate"].target_radius
    work = Path(args.work).resolve()  # the stages run inside it
    n = args.train + args.val + args.test
    target = {"style": args.style, "seed": args.seed, "n": n, "val": args.val, "test": args.test,
              "prepare": raw.get("prepare"), "heatmap": raw.get("heatmap"),
              "pretrained": {net: hashlib.sha256(path.read_bytes()).hexdigest() for net, path in pretrained.items()}}
    stamp = work / "target.json"
    if not (args.reuse and stamp.is_file() and json.loads(stamp.read_text()) == target):
        shutil.rmtree(work, ignore_errors=True)
        print(f"{n} {args.style} studies (seed {args.seed}) in {work}", file=sys.stderr)
        synth.write_dataset(work / "data", n=n, seed=args.seed, names=LANDMARKS, style=args.style)
        first = _params(raw, "scratch", pretrained, args, work / "scratch.yaml")
        run_stage("prepare", "data", "prepared", "prepare.json", "montage.png", params=first, cwd=work)
        run_stage("heatmaps", "prepared", "heatmaps", "heatmaps.png", params=first, cwd=work)
        write_json(stamp, target)
    names = [*BASE_VARIANTS, *extra]
    for variant in names:
        _train_and_evaluate(variant, _params(raw, variant, pretrained, args, work / f"{variant}.yaml",
                                             extra.get(variant)), work)
    results = _results(work, radius, names)
    settings = {"style": args.style, "seed": args.seed, "train": args.train, "val": args.val, "test": args.test,
                "radius_mm": radius, "pretrained": {net: str(Path(args.pretrained) / net / PRETRAINED / "model.pt")
                                                          for net in NETWORKS},
                "finetune": {net: {k: raw.get(s, {}).get(k) for k in ("epochs", "lr", "warmup_epochs",
                                                                      "freeze_epochs")} for net, s in NETWORKS.items()},
                "variants": {name: {net: o[s] for net, s in NETWORKS.items() if o[s]} for name, o in extra.items()}}
    out = Path(args.out)
    write_json(out / "finetune.json", {"settings": settings, "variants": results["variants"]})
    charts.learning_curves_png(out / "finetune_curves.png", {f"{net} ({args.style} set)": c
                                                             for net, c in results["curves"].items()},
                               train=BASE_VARIANTS)
    key = radius_key(radius)
    for variant, r in results["variants"].items():
        print(f"{variant:>10}: " + ", ".join(f"{m} {100 * t['sdr']:.1f}% within {key}" for m, t in r["test"].items()))
    print(f"wrote {out / 'finetune.json'} and {out / 'finetune_curves.png'}")


if __name__ == "__main__":
    main()
