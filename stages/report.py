"""Stage report: the ablation report in Markdown (tables and figures), also logged to MLflow.

    python stages/report.py PREPARED_DIR PREDICTIONS_DIR FUSION_JSON EVAL_PLOTS_DIR RUN_JSON METRICS_DIR OUT_DIR
        [--params params.yaml]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from lmfusion import charts, report, runs
from lmfusion.config import load_params
from lmfusion.data.prepared import load_prepared
from lmfusion.errors import DataError
from lmfusion.evaluation import load_split
from lmfusion.io import atomic_path
from lmfusion.metrics import radius_key
from lmfusion.predict import read_sigma
from lmfusion.stage import stage_main

FIGURES = (
    ("sdr_curve.png", "Success detection rate against radius on the test split, one line per method."),
    ("per_landmark_mre.png", "Mean radial error per landmark and method (mm)."),
    ("overlays.png", "Test studies: ground truth (dots) and each method's prediction (crosses)."),
    ("worst_cases.png", "The test studies with the largest fused error."),
    ("fusion_example.png", "Fusion of one landmark: the regressor's Gaussian prior, the U-Net heatmap and their "
                           "product (its argmax is the fused answer)."),
)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: missing or unreadable ({e}); run the earlier stages (dvc repro)") from None


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("prepared", "predictions", "fusion_json", "eval_plots", "run_json", "metrics_dir", "out"):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    p = load_params(args.params, ("base", "fusion", "evaluate", "report"))
    names, fcfg, ecfg, rcfg = tuple(p["base"].landmarks), p["fusion"], p["evaluate"], p["report"]
    mdir = Path(args.metrics_dir)
    ev, prep = _read_json(mdir / "evaluate.json"), _read_json(mdir / "prepare.json")
    trains = {s: _read_json(mdir / f"{s}.json") for s in ("train_xception", "train_unet")}
    fitted = _read_json(Path(args.fusion_json))
    data = load_prepared(args.prepared, names)
    val, test = load_split(args.predictions, "val", data), load_split(args.predictions, "test", data)
    radius = ecfg.target_radius
    key = radius_key(radius)

    sigma_hm = read_sigma(Path(args.fusion_json))
    auto = sigma_hm if fcfg.sigma == "auto" else None
    sweep = report.sigma_sweep(val, test, rcfg.sigma_sweep, auto, fcfg.min_product, radius)
    models = runs.heatmap_model_runs(radius)

    t = ev["test"]
    best_baseline = max(t["direct"]["sdr"][key], t["argmax"]["sdr"][key])
    lines = [
        "# Ablation: direct regression, heatmap argmax and fused prediction",
        "",
        f"Test split: {prep['test']} studies x {len(names)} landmarks = {prep['test'] * len(names)} landmarks "
        f"(train {prep['train']}, validation {prep['val']}; {prep['skipped']} studies skipped). Radial errors in mm "
        "on the original images with their own pixel spacing. The paper reports 71.3% of landmarks within 8 mm for "
        "direct regression and 99.6% fused.",
        "",
        "## Methods on the test split",
        "",
        report.method_table(t, ecfg.radii),
        "",
        f"Fused vs direct at {radius:g} mm: {report.pct(t['direct']['sdr'][key])} -> {report.pct(t['fused']['sdr'][key])}"
        f" (relative improvement {report.pct(t['fused_vs_direct']['relative_improvement'])}; the paper: 71.3% -> "
        f"99.6%). Fused vs the better baseline: {report.pct(best_baseline)} -> {report.pct(t['fused']['sdr'][key])}. "
        f"Fallbacks to the regressed point (product ~0): {t['fallbacks']} of {t['landmarks']}. "
        "Wrong level: predictions closer to an adjacent landmark's ground truth than to their own.",
        "",
        f"Prior sigma ({fitted['fit']['mode']}), heatmap px per landmark: "
        + ", ".join(f"{n} {s:.2f}" if np.isfinite(s) else f"{n} inf" for n, s in zip(names, sigma_hm)),
        "",
    ]
    lines += [f"![{cap}](figures/{fn})\n\n*{cap}*\n" for fn, cap in FIGURES if (Path(args.eval_plots) / fn).exists()]
    lines += ["## Mean radial error per landmark (test, mm)", "", report.per_landmark_table(t, names), "",
              "## Sigma sweep of the fusion prior", "",
              f"The fused method with a fixed prior sigma (in heatmap pixels) and with the auto sigma fitted on the "
              f"validation split, from the cached network outputs.", "",
              report.sweep_table(sweep, radius), "", "![Sigma sweep](figures/sigma_sweep.png)", "",
              "## Heatmap models", ""]
    if len(models) >= 2:
        lines += ["Every U-Net-family run in the MLflow store with its latest evaluation (accuracy on its own test "
                  "split; time and memory on the machine it ran on).", "", report.heatmap_model_table(models, radius)]
    else:
        lines += ["Only one heatmap model has been trained and evaluated in this MLflow store. Compare others with "
                  "`dvc exp run --queue -S train_unet.encoder=mobilenet_v2` (or `-S train_unet.arch=FPN`), then "
                  "`dvc queue start` and `dvc repro report`.", ""]
        if models:
            lines += [report.heatmap_model_table(models, radius)]
    lines += ["", "## Training", "",
              report.table(["network", "epochs", "best val loss (epoch)", "train time (s)", "images / s", "parameters (M)"],
                           [[s, tr.get("epochs_run"), f"{tr.get('best_val_loss', float('nan')):.5f} ({tr.get('best_epoch')})",
                             f"{tr.get('train_seconds', 0):.0f}", f"{tr.get('images_per_second', 0):.1f}",
                             f"{tr.get('parameters', 0) / 1e6:.2f}"] for s, tr in trains.items()]), ""]

    with atomic_path(args.out, is_dir=True) as tmp:
        (tmp / "figures").mkdir()
        for fn, _ in FIGURES:
            if (Path(args.eval_plots) / fn).exists():
                shutil.copy(Path(args.eval_plots) / fn, tmp / "figures" / fn)
        charts.sigma_sweep_png(tmp / "figures" / "sigma_sweep.png", [r["sigma"] for r in sweep],
                               [r["test_sdr"] for r in sweep], [r["test_mre"] for r in sweep])
        (tmp / "ablation.md").write_text("\n".join(lines) + "\n")
    runs.log_report(Path(args.out), _read_json(Path(args.run_json)))
    print(f"wrote {Path(args.out) / 'ablation.md'}")


if __name__ == "__main__":
    main()
