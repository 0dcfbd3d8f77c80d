"""A pipeline trained on domain-randomised synthetic studies, and the same pipeline fine-tuned on a small set in
another style: two pipeline folders for benchmarks/bench_styles.py, which judges them on styles no training saw.

    python benchmarks/bench_randomized.py [--params params.yaml] [--n 1000] [--val 100] [--test 50] [--seed 1]
        [--style randomized] [--set SECTION.KEY=VALUE ...] [--finetune 50] [--finetune-style target]
        [--finetune-seed 7] [--finetune-set SECTION.KEY=VALUE ...] [--parallel] [--work build/bench_randomized]
        [--out benchmarks/randomized]

Draws N studies with `lmfusion synth --style STYLE --seed SEED` (one process per CPU), VAL of them for validation
and TEST for a same-style test split, and runs the pipeline's own stage scripts on them in WORK/STYLE, as `dvc repro`
would with params.yaml and the --set overrides (e.g. `--set train_unet.sacrum_channel=true --set
train_unet.epochs=40`): prepare, heatmaps, both trainings (at once with --parallel, for a GPU), infer, evaluate.
WORK/STYLE is then a pipeline folder: params.yaml and models/ (both networks and decoder.json).

With --finetune M (> 0), M studies of --finetune-style (--finetune-seed; 60% train, 20% val, 20% test) train both
networks again from WORK/STYLE's models (train_*.weights: those files; --finetune-set overrides on top), in
WORK/finetuned: the pretraining's other half, as a user with a small set of their own would run it. The seeds are
none of bench_styles' held-out ones (101-104). MLflow tracking is off for these runs.

Writes OUT/randomized.json: the settings, per pipeline its test figures (every method: SDR at the target radius,
studies identified, level-shifted studies) and each network's training time. Then run

    python benchmarks/bench_styles.py --keep --pipeline randomized=WORK/STYLE --pipeline finetuned=WORK/finetuned
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench_finetune import STAGE_ENV, run_stage, stage_command
from lmfusion.config import LANDMARKS, load_params
from lmfusion import synth
from lmfusion.errors import DataError
from lmfusion.io import write_json
from lmfusion.metrics import radius_key
from lmfusion.stage import stage_main

REPO = Path(__file__).resolve().parents[1]
NETWORKS = ("xception", "unet")
METHODS = ("direct", "argmax", "fused", "gated", "chain_subpixel")
COMMON = ("checkpoint.pt", "metrics.json", "loss.csv", "augment.png")


def parse_set(spec: str) -> tuple[str, str, object]:
    """'SECTION.KEY=VALUE' -> (section, key, YAML value); anything else stops with one line."""
    key, eq, value = spec.partition("=")
    section, dot, leaf = key.strip().partition(".")
    if not eq or not dot or not section or not leaf:
        raise DataError(f"--set {spec!r}: expected SECTION.KEY=VALUE, e.g. train_unet.epochs=40")
    return section, leaf, yaml.safe_load(value)


def pipeline_params(raw: dict, sets: list[str], val: int, test: int) -> dict:
    """params.yaml of one pipeline folder: its own tianchi data, splits, and the overrides on top of `raw`."""
    p = {**raw, "base": {**raw.get("base", {}), "landmarks": list(LANDMARKS)},
         "data": {"format": "tianchi", "path": "data", "on_invalid": "error"},
         "prepare": {**raw.get("prepare", {}), "val_size": val, "test_size": test}}
    for section, key, value in map(parse_set, sets):
        if section not in p:
            raise DataError(f"--set {section}.{key}: params.yaml has no section {section!r}")
        p[section] = {**p[section], key: value}
    return p


def _train(net: str, folder: Path) -> list[str]:
    """The stage command (as run_stage runs it) training one network into folder/models/<net>."""
    inputs = ("prepared",) if net == "xception" else ("prepared", "heatmaps")
    return [f"train_{net}", *inputs, f"models/{net}", *(f"{net}_{f}" for f in COMMON)]


def build_pipeline(folder: Path, params: dict, parallel: bool) -> dict:
    """Prepare, train, infer and evaluate in `folder` (which holds data/); returns seconds per step."""
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    p, seconds = folder / "params.yaml", {}
    for step, args in (("prepare", ("data", "prepared", "prepare.json", "montage.png")),
                       ("heatmaps", ("prepared", "heatmaps", "heatmaps.png"))):
        start = time.perf_counter()
        run_stage(step, *args, params=p, cwd=folder)
        seconds[step] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    if parallel:  # both networks at once: one GPU holds both, and each waits on its own data loading
        procs = [(net, subprocess.Popen(stage_command(*_train(net, folder), params=p), cwd=folder,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, **STAGE_ENV}))
                 for net in NETWORKS]
        for net, proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise DataError(f"stages/train_{net}.py failed in {folder}: {out.strip().splitlines()[-1]}")
    else:
        for net in NETWORKS:
            run_stage(*_train(net, folder), params=p, cwd=folder)
    seconds["train"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    run_stage("infer", "prepared", "models/xception", "models/unet", "outputs", params=p, cwd=folder)
    run_stage("evaluate", "prepared", "outputs", "models/decoder.json", "evaluate.json", "plots", "runs.json",
              params=p, cwd=folder)
    seconds["infer_evaluate"] = round(time.perf_counter() - start, 1)
    return seconds


def summary(folder: Path, radius: float, seconds: dict) -> dict:
    """A pipeline's test figures per method, its decoder's choices and the training times."""
    evaluate, key = json.loads((folder / "evaluate.json").read_text()), radius_key(radius)
    decoder = json.loads((folder / "models" / "decoder.json").read_text())
    test = {m: {"sdr": evaluate["test"][m]["sdr"][key], "study_identification":
                evaluate["test"][m]["study_identification"], "level_shifts": evaluate["test"][m]["level_shifts"]}
            for m in METHODS}
    train = {net: json.loads((folder / f"{net}_metrics.json").read_text()) for net in NETWORKS}
    return {"test": test, "best_method": evaluate["best_method"], "chain": decoder.get("chain"),
            "train_seconds": {net: m.get("train_seconds") for net, m in train.items()}, "seconds": seconds}


def draw(folder: Path, n: int, seed: int, style: str) -> None:
    start = time.perf_counter()
    synth.write_dataset(folder / "data", n=n, seed=seed, names=LANDMARKS, style=style, workers=os.cpu_count() or 1)
    print(f"drew {n} {style} studies (seed {seed}) in {time.perf_counter() - start:.0f} s", file=sys.stderr)


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--n", type=int, default=1000, help="studies of the training style")
    ap.add_argument("--val", type=int, default=100)
    ap.add_argument("--test", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1, help="generator seed (the pretraining's)")
    ap.add_argument("--style", default="randomized")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--finetune", type=int, default=0, help="studies of the fine-tuning set (0: none)")
    ap.add_argument("--finetune-style", default="target")
    ap.add_argument("--finetune-seed", type=int, default=7)
    ap.add_argument("--finetune-set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--parallel", action="store_true", help="train both networks at once")
    ap.add_argument("--work", default="build/bench_randomized")
    ap.add_argument("--out", default="benchmarks/randomized")
    args = ap.parse_args()
    if args.n <= args.val + args.test or (args.finetune and args.finetune < 5):
        raise DataError(f"--n {args.n} must exceed --val + --test ({args.val + args.test}); --finetune 0 or >= 5")
    raw = yaml.safe_load(Path(args.params).read_text()) or {}
    radius = load_params(args.params, ("evaluate",))["evaluate"].target_radius
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    first = work / args.style
    draw(first, args.n, args.seed, args.style)
    params = pipeline_params(raw, args.set, args.val, args.test)
    results = {args.style: summary(first, radius, build_pipeline(first, params, args.parallel))}
    settings = {"n": args.n, "val": args.val, "test": args.test, "seed": args.seed, "style": args.style,
                "set": args.set, "radius_mm": radius}
    write_json(Path(args.out) / "randomized.json", {"settings": settings, "pipelines": results})  # the first half
    if args.finetune:
        tuned = work / "finetuned"
        draw(tuned, args.finetune, args.finetune_seed, args.finetune_style)
        val = test = max(1, args.finetune // 5)
        start = [f"train_{net}.weights={first / 'models' / net / 'model.pt'}" for net in NETWORKS]
        tuned_params = pipeline_params(params, start + args.finetune_set, val, test)
        results["finetuned"] = summary(tuned, radius, build_pipeline(tuned, tuned_params, args.parallel))
        settings["finetune"] = {"n": args.finetune, "style": args.finetune_style, "seed": args.finetune_seed,
                                "val": val, "test": test, "set": args.finetune_set}
    write_json(Path(args.out) / "randomized.json", {"settings": settings, "pipelines": results})
    key = radius_key(radius)
    for name, r in results.items():
        print(f"{name:>10}: " + ", ".join(f"{m} {100 * t['sdr']:.1f}% / {t['study_identification']:.0%} studies"
                                          for m, t in r["test"].items()) + f" ({key})")
    print(f"wrote {Path(args.out) / 'randomized.json'}")


if __name__ == "__main__":
    main()
