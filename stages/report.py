"""Stage report: the ablation report in Markdown (direct, argmax, fused and the chain decode; tables and figures),
also logged to MLflow.

    python stages/report.py PREPARED_DIR OUTPUTS_DIR DECODER_JSON EVAL_PLOTS_DIR RUN_JSON METRICS_DIR OUT_DIR
        [--params params.yaml] [--finetune DIR] [--experiments CSV] [--regressor CSV] [--architectures CSV]
        [--styles DIR]

With --finetune, the report also shows DIR/finetune.json and DIR/finetune_curves.png when they exist
(benchmarks/bench_finetune.py: scratch against fine-tuned on a small target set); with --experiments, the table of
experiments/level_identification.py's CSV when it exists, with --regressor that of experiments/regressor.py; with
--styles, DIR/styles.json's table when it exists (benchmarks/bench_styles.py: trained pipelines on held-out studies
of every synthetic style). The heatmap models' table is this pipeline's U-Net (OUTPUTS_DIR/networks.json and
METRICS_DIR) and, with --architectures, the rows of experiments/architectures.py's CSV. The report reads no MLflow
store: every table comes from tracked files.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from lmfusion.reporting import report
from lmfusion.tracking import runs
from lmfusion.figures import charts
from lmfusion.config import load_params
from lmfusion.data.prepared import load_prepared
from lmfusion.decoding import LandmarkDecoder
from lmfusion.errors import DataError
from lmfusion.evaluation import load_metas, load_split
from lmfusion.io import atomic_path
from lmfusion.stage import stage_main


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: missing or unreadable ({e}); run the earlier stages (dvc repro)") from None


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error) as e:
        raise DataError(f"{path}: unreadable ({e})") from None


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("prepared", "outputs", "decoder_json", "eval_plots", "run_json", "metrics_dir", "out"):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--finetune", type=Path, help="folder of benchmarks/bench_finetune.py's results")
    ap.add_argument("--styles", type=Path, help="folder of benchmarks/bench_styles.py's results")
    ap.add_argument("--experiments", type=Path, help="experiments/level_identification.py's CSV")
    ap.add_argument("--regressor", type=Path, help="experiments/regressor.py's CSV")
    ap.add_argument("--architectures", type=Path, help="experiments/architectures.py's CSV")
    args = ap.parse_args()
    p = load_params(args.params, ("base", "fusion", "evaluate", "report"))
    names, fcfg, ecfg, rcfg = tuple(p["base"].landmarks), p["fusion"], p["evaluate"], p["report"]
    mdir = Path(args.metrics_dir)
    inputs = report.ReportInputs(
        names=names, radii=ecfg.radii, radius=ecfg.target_radius, evaluate=_read_json(mdir / "evaluate.json"),
        prepare=_read_json(mdir / "prepare.json"),
        trains={s: _read_json(mdir / f"{s}.json") for s in ("train_xception", "train_unet")},
        fitted=_read_json(Path(args.decoder_json)), sigma_hm=LandmarkDecoder.load(args.decoder_json).sigma_hm,
        unet=load_metas(args.outputs).get("train_unet", {}),
        chain_example=(Path(args.eval_plots) / "chain_example.png").exists(),
        finetune=_read_json(args.finetune / "finetune.json") if args.finetune and (
            args.finetune / "finetune.json").exists() else None,
        experiments=_read_csv(args.experiments) if args.experiments and args.experiments.exists() else None,
        regressor=_read_csv(args.regressor) if args.regressor and args.regressor.exists() else None,
        architectures=_read_csv(args.architectures) if args.architectures and args.architectures.exists() else None,
        styles=_read_json(args.styles / "styles.json") if args.styles and (args.styles / "styles.json").exists()
        else None)
    data = load_prepared(args.prepared, names)
    val, test = load_split(args.outputs, "val", data), load_split(args.outputs, "test", data)
    auto = inputs.sigma_hm if fcfg.sigma == "auto" else None
    sweep = report.sigma_sweep(val, test, rcfg.sigma_sweep, auto, fcfg.min_product, ecfg.target_radius)
    figures = [(fn, cap) for fn, cap in report.FIGURES if (Path(args.eval_plots) / fn).exists()]
    markdown = report.render(inputs, sweep=sweep, figures=figures)

    with atomic_path(args.out, is_dir=True) as tmp:
        (tmp / "figures").mkdir()
        for fn in [fn for fn, _ in figures] + (["chain_example.png"] if inputs.chain_example else []):
            shutil.copy(Path(args.eval_plots) / fn, tmp / "figures" / fn)
        if inputs.finetune:
            shutil.copy(args.finetune / "finetune_curves.png", tmp / "figures" / "finetune_curves.png")
        charts.sigma_sweep_png(tmp / "figures" / "sigma_sweep.png", [r["sigma"] for r in sweep],
                               [r["test_sdr"] for r in sweep], [r["test_mre"] for r in sweep])
        (tmp / "ablation.md").write_text(markdown)
    runs.log_report(Path(args.out), _read_json(Path(args.run_json)))
    print(f"wrote {Path(args.out) / 'ablation.md'}")


if __name__ == "__main__":
    main()
