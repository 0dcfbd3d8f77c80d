"""The `lmfusion` command: `lmfusion synth` makes the synthetic dataset, `lmfusion predict` finds landmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmfusion.config import LANDMARKS
from lmfusion.decoding import METHODS
from lmfusion.errors import LmfusionError
from lmfusion.stage import stage_main
from lmfusion.synth.styles import STYLES



def _synth(args: argparse.Namespace) -> int:
    from lmfusion import synth
    from lmfusion.figures.drawing import write_png

    if args.gallery:
        from lmfusion.figures.synth import hard_case_gallery

        write_png(args.gallery, hard_case_gallery(args.seed, args.n, LANDMARKS, style=args.style))
        print(f"wrote one study per hard case of seed {args.seed} ({args.style} style) to {args.gallery}")
        return 0
    if not args.out:
        raise LmfusionError("lmfusion synth: give --out FOLDER (a dataset) or --gallery PNG")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise LmfusionError(f"{out}: exists and is not empty; remove it or choose another --out "
                            "(nothing is overwritten)")
    from lmfusion.synth.common import SeriesLayout

    layout = SeriesLayout(args.sagittal_slices, args.off_centre)
    if args.format == "rsna2024":
        from lmfusion.synth import rsna2024

        if not layout.is_default:
            raise LmfusionError("lmfusion synth: --sagittal-slices and --off-centre work with the tianchi layout only")
        from lmfusion.figures.rsna2024 import rsna2024_montage

        summary = rsna2024.write_rsna_dataset(out, n=args.n, seed=args.seed)
        montage = (lambda: rsna2024_montage(out, count=16))  # noqa: E731
    else:
        from lmfusion.figures.synth import challenge_montage

        summary = synth.write_dataset(out, n=args.n, seed=args.seed, names=LANDMARKS, style=args.style,
                                      workers=args.workers, layout=layout)
        montage = (lambda: challenge_montage(out, count=16, names=LANDMARKS))  # noqa: E731
    if args.montage:
        write_png(args.montage, montage())
    print(f"wrote {args.n} synthetic studies in the {args.format} layout to {out} ({summary})")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from lmfusion.cli.predict import run_predict  # torch and the models load only for this command

    return run_predict(args)


def _add_predict_arguments(p: argparse.ArgumentParser) -> None:
    from lmfusion.cli.study import SLICE_CHOICES  # headers only: no torch

    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="DICOM file, folder of DICOM studies (grouped by StudyInstanceUID), PNG/JPG/TIF image, or "
                        "CSV with an 'image' column")
    p.add_argument("--out", required=True, help="output folder for the JSON files, overlays and summary.csv")
    p.add_argument("--pipeline", default=".", help="pipeline folder holding params.yaml and models/ (default: .)")
    p.add_argument("--mlflow-uri", help="load the pipeline from an MLflow artifact URI instead (runs:/<id>/pipeline)")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="decode method (default: the one best on the validation split, from models/decoder.json)")
    p.add_argument("--sigma", type=float, help="fusion prior sigma in pixels of a heatmap.reference_size heatmap, "
                   "like fusion.sigma (default: fusion.sigma)")
    p.add_argument("--spacing", type=float, nargs="+", metavar="MM",
                   help="pixel spacing (x [y]) in mm for images without it (PNG/JPG/TIF); default 1.0 with a warning")
    p.add_argument("--rsna-csv", metavar="PATH",
                   help="also write the study folders' disc levels as RSNA 2024 label coordinates (study_id, "
                        "series_id, instance_number, condition, level, x, y) to PATH")
    p.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    p.add_argument("--slice-choice", choices=SLICE_CHOICES, default=SLICE_CHOICES[0],
                   help="a study's slice: evidence (decode the central band of its sagittal series and keep the "
                        "slice whose landmarks are surest; default) or middle (the series' middle slice)")
    p.add_argument("--workers", type=int, default=1,
                   help="threads reading the DICOM files and decoding the studies (default 1; the outputs do not "
                        "depend on it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmfusion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the synthetic spine MRI dataset (challenge or RSNA 2024 layout)")
    p.add_argument("--out", help="output folder (must not exist or be empty)")
    p.add_argument("--format", choices=("tianchi", "challenge", "rsna2024"), default="tianchi",
                   help="dataset layout: tianchi (the challenge's, 11 landmarks; default; alias challenge) or "
                        "rsna2024 (five discs)")
    p.add_argument("--n", type=int, default=200, help="number of studies (default 200: 150 + 50, like the paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", choices=tuple(STYLES), default="default",
                   help="default (as varied as real series), target (all STIR-like, steep junctions: a small set in "
                        "another style, for measuring fine-tuning), randomized (every tissue value, the acquisition "
                        "and more anatomy drawn per study, SynthSeg-like domain randomization) or unseen (T1-like, low "
                        "resolution, thick slice, strong bias field: for judging only, never for training, see "
                        "benchmarks/bench_styles.py); also for --gallery")
    p.add_argument("--workers", type=int, default=1,
                   help="processes drawing studies at once (the tianchi layout; the files do not depend on it)")
    p.add_argument("--sagittal-slices", type=int, default=3, metavar="N",
                   help="slices of each study's sagittal T2 and T1 series (default 3: the training data's; more "
                        "reach past the pedicles, where no disc shows)")
    p.add_argument("--off-centre", type=float, default=0.0, metavar="F",
                   help="put the spine's mid-plane up to F of the series' slices off its middle slice, drawn per "
                        "study (0 to 0.45; default 0); the truth is written to series_truth.json")
    p.add_argument("--montage", help="also write a PNG montage of 16 studies with their landmarks")
    p.add_argument("--gallery", help="instead of a dataset, a PNG with one study per hard case (the first of the n "
                                     "studies of --seed showing it: steep junction, transitional vertebra, ...)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("predict", help="landmarks for new images or studies with the trained pipeline")
    _add_predict_arguments(p)
    p.set_defaults(func=_predict)
    return parser


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
