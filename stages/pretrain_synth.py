"""Stage pretrain_synth: the synthetic pretraining's studies, written by the generator in the challenge's layout.

    python stages/pretrain_synth.py OUT_DIR MONTAGE_PNG [--params params.yaml]

Reads params section pretrain (n, seed, style). Writes OUT_DIR (`lmfusion synth --out OUT_DIR --n N --seed SEED
--style STYLE`, the 11 landmarks) and MONTAGE_PNG (16 of its studies with their landmarks).
"""

from __future__ import annotations

import argparse
import os

from lmfusion.config import LANDMARKS, load_params
from lmfusion import synth
from lmfusion.synth.styles import check_style
from lmfusion.errors import ParamError
from lmfusion.figures.drawing import write_png
from lmfusion.figures.synth import challenge_montage
from lmfusion.stage import stage_main


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("out_dir", "montage_png"):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    cfg = load_params(args.params, ("pretrain",))["pretrain"]
    try:
        check_style(cfg.style)
    except ParamError as e:
        raise ParamError(f"param pretrain.style: {str(e).split(': ', 1)[1]}") from None
    summary = synth.write_dataset(args.out_dir, n=cfg.n, seed=cfg.seed, names=LANDMARKS, style=cfg.style,
                                  workers=os.cpu_count() or 1)  # the same files for any count
    write_png(args.montage_png, challenge_montage(args.out_dir, count=16, names=LANDMARKS))
    print(f"wrote {cfg.n} synthetic studies (seed {cfg.seed}, style {cfg.style}) to {args.out_dir}: "
          f"{summary['images']} images, {summary['bytes'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
