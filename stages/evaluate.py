"""Stage evaluate: fits the decoder (fusion sigma, chain decode, level flag) and decodes the cached network outputs
with every method (direct, argmax, fused, chain); metrics in mm, plots, the fitted decoder.

    python stages/evaluate.py PREPARED_DIR OUTPUTS_DIR DECODER_JSON METRICS_JSON PLOTS_DIR RUN_JSON
        [--params params.yaml]

Reads only cached outputs, the fusion / chain / evaluate params and heatmap.reference_size (their lengths are
given at it: lmfusion.config.geometry scales them to the outputs' heatmaps), so changing a fusion, chain or evaluate
param reruns this stage and the report in seconds and never a training stage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from lmfusion.tracking import runs
from lmfusion.config import as_dict, load_params
from lmfusion.config.decoding import EvaluateConfig
from lmfusion.config.geometry import decode_geometry
from lmfusion.data.prepared import Prepared, load_prepared
from lmfusion.decoding import METHODS, Decoded, LandmarkDecoder
from lmfusion.decoding.fit import fit_decoder
from lmfusion.decoding.outputs import SplitOutputs
from lmfusion.evaluation import (best_method, decode_split, flag_summary, load_metas, load_split, method_metrics,
                                 sdr_curve, study_table)
from lmfusion.figures.evaluation import evaluation_figures
from lmfusion.io import atomic_path, write_json
from lmfusion.metrics import radius_key
from lmfusion.stage import stage_main


@stage_main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("prepared", "outputs", "decoder_json", "metrics_json", "plots_dir", "run_json"):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()

    p = load_params(args.params, ("base", "heatmap", "fusion", "chain", "evaluate"))
    names, fcfg, ecfg = tuple(p["base"].landmarks), p["fusion"], p["evaluate"]
    data = load_prepared(args.prepared, names)
    val = load_split(args.outputs, "val", data)
    test = load_split(args.outputs, "test", data)
    train = data.split_indices("train")
    geometry = decode_geometry(p["heatmap"], fcfg, p["chain"], size=val.hm_shape[1])  # lengths in heatmap px

    decoder, fit, decoded_val = fit_decoder(val, data.landmarks[train], data.spacing[train], fcfg, p["chain"],
                                            ecfg.target_radius, geometry)
    decoded = decode_split(test, decoder)
    results = {"val": method_metrics(decoded_val, val, names, ecfg), "test": method_metrics(decoded, test, names, ecfg)}
    decoder = decoder.replace(best_method=best_method(results["val"], ecfg.target_radius))
    results["best_method"] = decoder.best_method
    end, sure = decoder.end_threshold, decoder.check_confidence
    sure = None if sure is None else round(sure, 4)
    results["level_flag"] = {"margin_threshold": round(decoder.margin_threshold, 4),
                             "end_threshold": None if end is None else round(end, 4),
                             "check_weight": decoder.check_weight, "check_confidence": sure,
                             "val": flag_summary(decoded_val, val), "test": flag_summary(decoded, test)}
    sigma_json = decoder.to_dict()["sigma_hm"]
    results["fusion_sigma_hm"] = [round(s, 4) if isinstance(s, float) else s for s in sigma_json]
    write_json(args.decoder_json, {**decoder.to_dict(), "names": list(names), "fit": fit})
    studies = {s: data.index["study"].to_numpy()[split.rows] for s, split in (("val", val), ("test", test))}
    _write_plots(Path(args.plots_dir), data=data, test=test, decoded=decoded, decoder=decoder, results=results,
                 names=names, cfg=ecfg, studies=pd.concat(
                     [study_table(d, sp, studies[s], ecfg.target_radius).assign(split=s)
                      for s, d, sp in (("val", decoded_val, val), ("test", decoded, test))]))
    write_json(args.metrics_json, results)

    run_ids = runs.log_evaluation(
        params={f"{s}.{k}": v for s in ("fusion", "chain", "evaluate") for k, v in as_dict(p[s]).items()},
        results=results, root=Path(args.params).resolve().parent, artifacts=[Path(args.plots_dir)],
        metas=load_metas(args.outputs))
    write_json(args.run_json, run_ids)

    t = results["test"]
    key = radius_key(ecfg.target_radius)
    print("test SDR@" + key + ": " + ", ".join(f"{m} {t[m]['sdr'][key]:.3f}" for m in METHODS)
          + f"; fallbacks {t['fallbacks']}/{t['landmarks']}; best on val: {decoder.best_method}")


def _write_plots(plots_dir: Path, *, data: Prepared, test: SplitOutputs, decoded: Decoded, decoder: LandmarkDecoder,
                 results: dict, names: tuple[str, ...], cfg: EvaluateConfig, studies: pd.DataFrame) -> None:
    """SDR against radius and per-landmark MRE as DVC plot data (CSV), one row per study, the figures as PNG."""
    radii = np.round(np.arange(0.0, 20.01, 0.5), 2)
    curves = sdr_curve(decoded, test, radii)
    sdr_table = pd.DataFrame({"radius_mm": radii, **curves})
    per_landmark = pd.DataFrame(
        [{"landmark": n, **{m: results["test"][m]["per_landmark"][n]["mre_mm"] for m in METHODS}} for n in names])
    with atomic_path(plots_dir, is_dir=True) as tmp:
        sdr_table.to_csv(tmp / "sdr.csv", index=False, float_format="%.4f")
        per_landmark.to_csv(tmp / "per_landmark_mre.csv", index=False, float_format="%.4f")
        studies.to_csv(tmp / "studies.csv", index=False)
        evaluation_figures(tmp, data=data, split=test, decoded=decoded, sigma_hm=decoder.sigma_hm,
                           names=names, curves=curves, radii=radii, per_landmark=per_landmark, cfg=cfg,
                           worst_by=decoder.best_method)


if __name__ == "__main__":
    main()
