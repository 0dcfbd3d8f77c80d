"""Trained pipelines judged on held-out studies of every synthetic style, the unseen one included; trains nothing.

    python benchmarks/bench_styles.py [--pipeline LABEL=DIR ...] [--n 60]
        [--styles default,target,randomized,unseen] [--work build/bench_styles] [--out benchmarks/styles]

For each style, N studies are drawn with a seed no training set uses (SEEDS: 101 default, 102 target, 103 randomized,
104 unseen; the default data are seed 0, the pretraining seed 1, bench_finetune seed 7, bench_fusion seed 11), study i
from `np.random.default_rng([seed, i])` as `lmfusion synth --style STYLE --seed SEED` draws it. The annotated slices
(stored values rescaled as the DICOM reader does), their landmarks and spacings are cached once per style in
WORK/<style>_<seed>_<n>.npz (redrawn when the generator's code changed), so several pipelines share them.

Each pipeline folder (params.yaml and models/ with xception/model.pt, unet/model.pt and decoder.json; --pipeline
LABEL=DIR, repeatable, default `default=.`) decodes every study as `lmfusion.api.LandmarkPredictor` does, once, and
keeps every method's landmarks (direct, argmax, fused, chain). Per pipeline, style and method, with the evaluate
stage's study-level definitions (lmfusion.metrics) at the pipeline's evaluate.target_radius: studies identified (all
K landmarks within the radius), level-shifted studies (a whole-level shift of the chain) and the SDR (landmarks
within the radius). Writes OUT/styles.json and OUT/styles.md (lmfusion.reporting.styles.styles_section, the table the
report shows). Legend: N studies, K landmarks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmfusion import metrics
from lmfusion.api import LandmarkPredictor
from lmfusion.config import LANDMARKS, load_params
from lmfusion.synth.parallel import annotated_slice, map_ordered
from lmfusion.decoding import METHODS
from lmfusion.errors import DataError
from lmfusion.io import atomic_path, write_json
from lmfusion.reporting.styles import styles_section
from lmfusion.stage import stage_main

REPO = Path(__file__).resolve().parents[1]
SYNTH_CODE = REPO / "src" / "lmfusion" / "data" / "synth"
SEEDS = {"default": 101, "target": 102, "randomized": 103, "unseen": 104}  # one per style, no training set's


@dataclass
class HeldOut:
    """One style's held-out studies: the annotated slices, with their truth."""

    stored: list[np.ndarray]  # N x (H, W) uint16 stored values
    rescale: np.ndarray  # (N, 2) slope, intercept
    truth: np.ndarray  # (N, K, 2) original pixels
    spacing: np.ndarray  # (N, 2) mm

    @property
    def images(self) -> list[np.ndarray]:
        """N x (H, W) float32: the slices as the DICOM reader gives them (stored values x slope + intercept)."""
        return [im.astype(np.float32) * float(a) + float(b) for im, (a, b) in zip(self.stored, self.rescale)]


def _code_digest() -> str:
    """The generator's source (every module of lmfusion.synth): a change redraws the cached sets."""
    h = hashlib.sha256()
    for f in sorted(SYNTH_CODE.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _draw(style: str, seed: int, n: int) -> HeldOut:
    """Studies 0..n-1 of `seed`, drawn by one process per CPU (each study from its own seed: the same set)."""
    jobs = [(style, seed, i, LANDMARKS) for i in range(n)]
    image, rescale, landmarks, spacing = zip(*map_ordered(annotated_slice, jobs, os.cpu_count() or 1))
    return HeldOut(list(image), np.array(rescale), np.array(landmarks, np.float64), np.array(spacing, np.float64))


def held_out_set(style: str, seed: int, n: int, work: Path) -> HeldOut:
    """Studies 0..n-1 of `seed` in `style`, from WORK/<style>_<seed>_<n>.npz when it holds them for this code."""
    path, code = Path(work) / f"{style}_{seed}_{n}.npz", _code_digest()
    if path.is_file():
        with np.load(path) as z:
            if str(z["code"]) == code:
                return HeldOut([z[f"image{i}"] for i in range(n)], z["rescale"], z["truth"], z["spacing"])
    start = time.perf_counter()
    held = _draw(style, seed, n)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, code=np.array(code), rescale=held.rescale, truth=held.truth, spacing=held.spacing,
                            **{f"image{i}": im for i, im in enumerate(held.stored)})
    print(f"drew {n} {style} studies (seed {seed}) in {time.perf_counter() - start:.0f} s -> {path}", file=sys.stderr)
    return held


def decode_all(predictor: LandmarkPredictor, held: HeldOut) -> dict[str, np.ndarray]:
    """Every method's landmarks (N, K, 2) in original pixels: LandmarkPredictor.predict's steps, all studies at once
    (preprocess, the networks' outputs, the decoder with sizes and spacings)."""
    hm, reg = zip(*(predictor.preprocess(im) for im in held.images))
    coords, heatmaps = predictor.networks.outputs(np.stack(hm), np.stack(reg))  # (N, K, 2), (N, K, H, W)
    sizes = np.array([[im.shape[1], im.shape[0]] for im in held.stored], np.float64)  # (N, 2) width, height
    return predictor.decoder.decode(coords, heatmaps, sizes, held.spacing).xy


def score(xy: np.ndarray, truth: np.ndarray, spacing: np.ndarray, radius: float) -> dict:
    """One method's figures on one set: the evaluate stage's study-level definitions (lmfusion.metrics)."""
    errors = metrics.radial_errors(xy, truth, spacing)  # (N, K) mm
    return {"identified": int(metrics.study_identified(errors, radius).sum()),
            "level_shifted": int(np.count_nonzero(metrics.level_shift(xy, truth, spacing))),
            "sdr": round(metrics.sdr(errors, [radius])[metrics.radius_key(radius)], 4),
            "mre_mm": round(float(np.nanmean(errors)), 3)}


def judge(predictor: LandmarkPredictor, held: HeldOut, radius: float) -> dict:
    """Every method's figures of one pipeline on one style's set."""
    xy = decode_all(predictor, held)
    return {m: score(xy[m], held.truth, held.spacing, radius) for m in METHODS}


def parse_pipeline(spec: str) -> tuple[str, Path]:
    """'LABEL=DIR' -> (LABEL, DIR); a bare DIR is labelled by its folder's name."""
    label, sep, folder = spec.partition("=")
    if not sep:
        label, folder = Path(spec).resolve().name, spec
    if not label or not folder:
        raise DataError(f"--pipeline {spec!r}: expected LABEL=DIR")
    return label, Path(folder)


def run_benchmark(pipelines: dict[str, Path], styles: list[str], n: int, work: Path) -> dict:
    """styles.json's content: the settings, then per pipeline its best method and per style every method's
    figures."""
    unknown = [s for s in styles if s not in SEEDS]
    if unknown:
        raise DataError(f"--styles: unknown style {unknown[0]!r}; known: {', '.join(SEEDS)}")
    sets = {s: held_out_set(s, SEEDS[s], n, work) for s in styles}
    out: dict = {"settings": {"n": n, "seeds": {s: SEEDS[s] for s in styles}, "methods": list(METHODS)},
                 "pipelines": {}}
    for label, root in pipelines.items():
        radius = load_params(root / "params.yaml", ("evaluate",))["evaluate"].target_radius
        predictor = LandmarkPredictor.from_pipeline(root)
        start, results = time.perf_counter(), {}
        for style, held in sets.items():
            results[style] = judge(predictor, held, radius)
        print(f"{label}: decoded {n * len(sets)} studies in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        out["pipelines"][label] = {"dir": str(root), "best_method": predictor.method, "radius_mm": radius,
                                   "styles": results}
    return out


def keep_others(result: dict, path: Path) -> dict:
    """`result` with the pipelines of the styles.json at `path` that it did not measure, listed first; a file
    measured with other settings (n, styles) stops with one line naming it."""
    if not path.is_file():
        return result
    old = json.loads(path.read_text())
    if old.get("settings") != result["settings"]:
        raise DataError(f"{path}: measured with other settings ({old.get('settings')}); rerun without --keep or "
                        f"with the same --n and --styles")
    kept = {k: v for k, v in old.get("pipelines", {}).items() if k not in result["pipelines"]}
    return {**result, "pipelines": {**kept, **result["pipelines"]}}


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", action="append", metavar="LABEL=DIR",
                    help="a trained pipeline folder and its label in the table (repeatable; default default=.)")
    ap.add_argument("--n", type=int, default=60, help="held-out studies per style")
    ap.add_argument("--styles", default=",".join(SEEDS), help="comma-separated styles (default: all four)")
    ap.add_argument("--work", default="build/bench_styles", help="cache of the drawn sets")
    ap.add_argument("--out", default="benchmarks/styles")
    ap.add_argument("--keep", action="store_true",
                    help="keep the other pipelines already in OUT/styles.json (measured with the same n and styles)")
    args = ap.parse_args()
    if args.n < 1:
        raise DataError(f"--n: must be >= 1, got {args.n}")
    pipelines = dict(parse_pipeline(spec) for spec in (args.pipeline or ["default=."]))
    result = run_benchmark(pipelines, [s for s in args.styles.split(",") if s], args.n, Path(args.work))
    out = Path(args.out)
    if args.keep:
        result = keep_others(result, out / "styles.json")
    write_json(out / "styles.json", result)
    text = "\n".join(styles_section(result)) + "\n"
    with atomic_path(out / "styles.md") as tmp:
        tmp.write_text(text)
    print(text, end="")
    print(f"wrote {out / 'styles.json'} and {out / 'styles.md'}")


if __name__ == "__main__":
    main()
