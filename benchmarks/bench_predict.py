"""`lmfusion predict` on this machine: the latency of one image by step, then whole studies per minute and how well
the slice is chosen.

    python benchmarks/bench_predict.py [--pipeline .] [--n 20] [--studies 200] [--workers 1] [--data FOLDER]

Per image (the test studies of the prepared data, their original DICOMs, the models loaded once): load (read the
DICOM), preprocess (window, equalize, resize to both sizes), regressor, U-Net, decode (every method, the chain
included), write (JSON + overlay PNG). Target: at most 1 s per image on the CPU at the default sizes.

Whole studies (`--studies`, 0 skips them): writes that many synthetic studies whose sagittal T2 series have 15 slices
with the spine's mid-plane up to a third of the series off the middle slice (`lmfusion synth --sagittal-slices 15
--off-centre 0.34 --seed 11`; a seed the pipeline never trained on), or takes such a dataset from `--data`, and runs
the command three times, the models loaded once per run as a user's command does:

    evidence  the default: the central band decoded, the peak of the evidence kept (its time gives studies/min)
    middle    the series' middle slice
    truth     the slice through the mid-plane given (series_truth.json), for the figure to match

printing per run the wall time, studies per minute, the chosen slice within one slice of the mid-plane, and the
studies identified (all landmarks within 8 mm of the annotation). Target: evidence within one slice in >= 95 % of
studies, identifying at least as many as the truth slice.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lmfusion import config
from lmfusion.cli.main import build_parser
from lmfusion.cli.predict import run_predict
from lmfusion.data.dicom import read_dicom, read_header
from lmfusion.data.prepared import load_prepared
from lmfusion.io import write_json
from lmfusion.figures.drawing import write_png
from lmfusion.figures.predict import prediction_overlay
from lmfusion.api import LandmarkPredictor
from lmfusion.nets.infer import to_input
from lmfusion.synth.common import SeriesLayout
from lmfusion.synth.tianchi import SERIES_TRUTH, SPLITS, write_dataset

RADIUS_MM = 8.0
LAYOUT = SeriesLayout(slices=15, off_centre=0.34)


def _per_image(args: argparse.Namespace) -> None:
    root = Path(args.pipeline)
    t0 = time.perf_counter()
    predictor = LandmarkPredictor.from_pipeline(root)
    load_models = time.perf_counter() - t0
    net = predictor.networks
    data = load_prepared(root / "build" / "prepared", predictor.names)
    rows = data.split_indices("test")[: args.n]
    steps = {k: [] for k in ("load", "preprocess", "regressor", "unet", "decode", "write")}
    with tempfile.TemporaryDirectory() as out, torch.no_grad():
        for i, row in enumerate(rows):
            t = time.perf_counter()
            img = read_dicom(root / "data" / data.index["source"].iloc[row])
            steps["load"].append(time.perf_counter() - t)
            t = time.perf_counter()
            hm_u8, reg_u8 = predictor.preprocess(img.pixels)
            steps["preprocess"].append(time.perf_counter() - t)
            t = time.perf_counter()
            coords = net.regressor(to_input(reg_u8[None])).numpy()  # (1, K, 2)
            steps["regressor"].append(time.perf_counter() - t)
            t = time.perf_counter()
            heatmaps = torch.sigmoid(net.unet(to_input(hm_u8[None]))).numpy().astype(np.float16)
            steps["unet"].append(time.perf_counter() - t)
            t = time.perf_counter()
            h, w = img.pixels.shape
            dec = predictor.decoder.decode(coords, heatmaps, np.array([[w, h]], np.float64), np.array([img.spacing]))
            steps["decode"].append(time.perf_counter() - t)
            t = time.perf_counter()
            result = predictor.prediction(dec, 0, img.spacing, True)
            write_json(Path(out) / f"{i}.json", result.to_dict())
            write_png(Path(out) / f"{i}.png", prediction_overlay(img.pixels, result))
            steps["write"].append(time.perf_counter() - t)
    print(f"model load (once per batch): {load_models:.2f} s; {len(rows)} images; torch threads "
          f"{torch.get_num_threads()}; sizes U-Net {net.hm_size} px, regressor {net.reg_size} px")
    total = np.sum([np.array(v) for v in steps.values()], axis=0)
    for k, v in steps.items():
        print(f"  {k:12s} {1000 * np.median(v):8.1f} ms (median)   {1000 * np.max(v):8.1f} ms (max)")
    print(f"  {'per image':12s} {1000 * np.median(total):8.1f} ms (median)   {1000 * np.max(total):8.1f} ms (max)"
          f"   target <= 1000 ms: {'met' if np.max(total) <= 1.0 else 'NOT met'}")


def _annotations(data: Path) -> dict[str, np.ndarray]:
    """Study name (its folder) -> the annotated landmarks (K, 2) in pixels, in config.LANDMARKS order."""
    truth = {}
    for split, _ in SPLITS:
        path = data / f"{split}_annotation.json"
        for i, record in enumerate(json.loads(path.read_text()) if path.exists() else []):
            offset = 0 if split == SPLITS[0][0] else SPLITS[0][1]
            marks = record["data"][0]["annotation"][0]["data"]["point"]
            points = {p["tag"]["identification"]: p["coord"] for p in marks}
            truth[f"study{i + offset}"] = np.array([points[n] for n in config.LANDMARKS], np.float64)
    return truth


def _truth_slices(data: Path, where: dict[str, dict], into: Path) -> list[str]:
    """Per study, a link named after it to the slice through its mid-plane (the T2 series' file of that instance)."""
    into.mkdir()
    for key, w in where.items():
        folder = data / key
        for f in folder.glob("*.dcm"):
            h = read_header(f)
            if "t2" in str(h.SeriesDescription).lower() and int(h.InstanceNumber) == w["mid_plane_instance"]:
                (into / f"{folder.name}.dcm").symlink_to(f.resolve())
    return sorted(str(p) for p in into.iterdir())


def _run(inputs: list[str], out: Path, pipeline: str, workers: int, rule: str) -> float:
    args = build_parser().parse_args(["predict", *inputs, "--out", str(out), "--pipeline", pipeline,
                                      "--workers", str(workers), "--slice-choice", rule])
    t = time.perf_counter()
    code = run_predict(args)
    if code:
        sys.exit(f"bench_predict: lmfusion predict failed on some studies ({out / 'summary.csv'})")
    return time.perf_counter() - t


def _score(out: Path, names: list[str], annotations: dict[str, np.ndarray], where: dict[str, dict]) -> tuple:
    """How many studies' chosen slices lie within one slice of the mid-plane, and how many are identified."""
    within, identified = 0, 0
    for name in names:
        record = json.loads((out / f"{name}.json").read_text())
        xy = np.array([[p["x"], p["y"]] for p in record["landmarks"]])
        err = np.linalg.norm((xy - annotations[name]) * np.asarray(record["spacing_mm"]), axis=1)
        identified += bool(np.all(err <= RADIUS_MM))
        chosen = (record.get("slice_choice") or {}).get("chosen_instance", where[name]["mid_plane_instance"])
        within += abs(chosen - where[name]["mid_plane_instance"]) <= 1
    return within, identified


def _studies(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if args.data else tmp / "data"
        if not args.data:
            t = time.perf_counter()
            write_dataset(data, n=args.studies, seed=11, layout=LAYOUT, workers=2)
            print(f"wrote {args.studies} studies ({LAYOUT.slices} sagittal slices, mid-plane up to "
                  f"{LAYOUT.off_centre:g} of them off the middle) in {time.perf_counter() - t:.0f} s")
        by_folder = json.loads((data / SERIES_TRUTH).read_text())
        where = {Path(k).name: v for k, v in by_folder.items()}
        annotations = _annotations(data)
        names = sorted(where, key=lambda s: int(s[5:]))
        inputs = [str(data / split) for split, _ in SPLITS if (data / split).is_dir()]
        truth_inputs = _truth_slices(data, by_folder, tmp / "truth")
        print(f"{'slice':10s} {'wall (s)':>9s} {'studies/min':>12s} {'within 1 slice':>15s} {'identified':>11s}")
        for rule, inp in (("evidence", inputs), ("middle", inputs), ("truth", truth_inputs)):
            seconds = _run(inp, tmp / rule, args.pipeline, args.workers, "middle" if rule == "truth" else rule)
            within, identified = _score(tmp / rule, names, annotations, where)
            print(f"{rule:10s} {seconds:9.1f} {60 * len(names) / seconds:12.1f} {within:8d} / {len(names):<4d} "
                  f"{identified:5d} / {len(names)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default=".")
    ap.add_argument("--n", type=int, default=20, help="test images for the per-step latency (0 skips it)")
    ap.add_argument("--studies", type=int, default=200, help="synthetic studies for the whole-study runs (0 skips)")
    ap.add_argument("--workers", type=int, default=1, help="lmfusion predict --workers")
    ap.add_argument("--data", help="an off-centre synthetic dataset already written (default: write one)")
    args = ap.parse_args()
    if args.n:
        _per_image(args)
    if args.studies or args.data:
        _studies(args)


if __name__ == "__main__":
    main()
