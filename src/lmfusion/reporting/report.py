"""The ablation report: direct regression vs heatmap argmax vs fused prediction vs the chain decode, per landmark
and per study, a sigma sweep, the chain decode's fit, heatmap models, fine-tuning and experiment tables.

Everything here reads finished outputs that git or DVC track (metrics JSON, cached predictions, the experiments'
CSVs) and writes Markdown; no MLflow store is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lmfusion import metrics
from lmfusion.decoding import LandmarkDecoder
from lmfusion.decoding.methods import LABELS, METHODS
from lmfusion.decoding.outputs import SplitOutputs
from lmfusion.evaluation import decode_split
from lmfusion.reporting.architectures import architectures_section, model_row
from lmfusion.reporting.markdown import fmt, pct, table
from lmfusion.reporting.benchmarks import experiments_section, finetune_section, regressor_section
from lmfusion.reporting.styles import styles_section

FIGURES = (
    ("sdr_curve.png", "Success detection rate against radius on the test split, one line per method."),
    ("per_landmark_mre.png", "Mean radial error per landmark and method (mm)."),
    ("overlays.png", "Test studies: ground truth (dots) and each method's prediction (crosses)."),
    ("worst_cases.png", "The test studies with the largest error of the method best on the validation split."),
    ("shifted_studies.png", "Test studies whose whole chain sits a level off (the caption names each method shifted "
                            "and which way); the worst studies when no method shifts any."),
    ("fusion_example.png", "Fusion of one landmark: the regressor's Gaussian prior, the U-Net heatmap and their "
                           "product (its argmax is the fused answer)."),
)


def method_table(results: dict, radii: Sequence[float], radius: float) -> str:
    header = ["method", *[f"SDR {r:g} mm" for r in radii], "MRE ± SD (mm)", "wrong level",
              f"studies all within {radius:g} mm", "level-shifted studies"]
    rows = []
    for m in METHODS:
        r = results[m]
        rates = [pct(r["sdr"][metrics.radius_key(x)]) for x in radii]
        rows.append([LABELS[m], *rates, f"{r['mre_mm']:.2f} ± {r['sd_mm']:.2f}", r["wrong_level"],
                     pct(r["study_identification"]), r["level_shifts"]])
    return table(header, rows)


def per_landmark_table(results: dict, names: Sequence[str]) -> str:
    header = ["landmark", *[m for m in METHODS]]
    rows = [[n, *[f"{results[m]['per_landmark'][n]['mre_mm']:.2f}" for m in METHODS]] for n in names]
    return table(header, rows)


def sigma_sweep(val: SplitOutputs, test: SplitOutputs, sigmas: Sequence[float], auto_sigma_hm: np.ndarray | None,
                min_product: float, radius: float) -> list[dict]:
    """Fused success rate and mean radial error for each fixed sigma (and the fitted auto sigma), val and test."""
    k = test.coords_norm.shape[1]
    cases: list[tuple[str, np.ndarray]] = [(f"{s:g}", np.full(k, float(s))) for s in sigmas]
    if auto_sigma_hm is not None:
        cases.append(("auto", auto_sigma_hm))
    rows = []
    for label, sigma in cases:
        row: dict[str, Any] = {"sigma": label}
        for name, split in (("val", val), ("test", test)):
            decoded = decode_split(split, LandmarkDecoder(sigma, min_product))
            err = metrics.radial_errors(decoded.xy["fused"], split.truth, split.spacing)
            row[f"{name}_sdr"] = float((err <= radius).mean()) if err.size else float("nan")
            row[f"{name}_mre"] = float(err.mean()) if err.size else float("nan")
            row[f"{name}_fallbacks"] = int(decoded.fallback.sum())
        rows.append(row)
    return rows


def sweep_table(rows: list[dict], radius: float) -> str:
    header = ["prior sigma (heatmap px)", f"val SDR {radius:g} mm", "val MRE (mm)", f"test SDR {radius:g} mm",
              "test MRE (mm)", "test fallbacks"]
    return table(header, [[r["sigma"], pct(r["val_sdr"]), f"{r['val_mre']:.2f}", pct(r["test_sdr"]),
                           f"{r['test_mre']:.2f}", r["test_fallbacks"]] for r in rows])


@dataclass(frozen=True)
class ReportInputs:
    """What the report reads from the finished stages."""

    names: tuple[str, ...]
    radii: Sequence[float]
    radius: float  # the headline radius (mm)
    evaluate: dict  # metrics/evaluate.json
    prepare: dict  # metrics/prepare.json
    trains: dict[str, dict]  # {stage: metrics/<stage>.json}
    fitted: dict  # models/decoder.json: the decoder and how it was fitted
    sigma_hm: np.ndarray  # (K,) the decoder's prior sigma
    unet: dict  # the trained U-Net's meta (build/outputs/networks.json): builder (arch, encoder), input_size
    chain_example: bool = False  # the evaluate stage drew a study the chain fixed (chain_example.png)
    finetune: dict | None = None  # benchmarks/bench_finetune.py's finetune.json, when it has been run
    styles: dict | None = None  # benchmarks/bench_styles.py's styles.json, when it has been run
    experiments: list[dict] | None = None  # experiments/level_identification.csv's rows, when collected
    regressor: list[dict] | None = None  # experiments/regressor.csv's rows, when collected
    architectures: list[dict] | None = None  # experiments/architectures.csv's rows, when collected


def render(r: ReportInputs, *, sweep: list[dict], figures: Sequence[tuple[str, str]]) -> str:
    """The whole ablation report as Markdown."""
    lines = _methods_section(r)
    lines += [f"![{cap}](figures/{fn})\n\n*{cap}*\n" for fn, cap in figures]
    lines += ["## Mean radial error per landmark (test, mm)", "", per_landmark_table(r.evaluate["test"], r.names), "",
              "## Sigma sweep of the fusion prior", "",
              "The fused method with a fixed prior sigma (`report.sigma_sweep`, in heatmap pixels, where "
              "`fusion.sigma` is given at `heatmap.reference_size`) and with the auto sigma fitted on the "
              "validation split, from the cached network outputs.", "",
              sweep_table(sweep, r.radius), "", "![Sigma sweep](figures/sigma_sweep.png)", ""]
    unet = model_row(arch=r.unet.get("builder", {}).get("arch"), encoder=r.unet.get("builder", {}).get("encoder"),
                     input_size=r.unet.get("input_size"), evaluate=r.evaluate, train=r.trains.get("train_unet", {}),
                     radius=r.radius)
    lines += _prior_section(r) + _chain_section(r) + architectures_section(unet, r.architectures, r.radius)
    lines += _training_section(r.trains)
    lines += experiments_section(r.experiments, r.radius) if r.experiments else []
    lines += regressor_section(r.regressor, r.radius) if r.regressor else []
    lines += finetune_section(r.finetune) if r.finetune else []
    lines += styles_section(r.styles) if r.styles else []
    return "\n".join(lines) + "\n"


def _methods_section(r: ReportInputs) -> list[str]:
    t, prep, key = r.evaluate["test"], r.prepare, metrics.radius_key(r.radius)
    best_baseline = max(t["direct"]["sdr"][key], t["argmax"]["sdr"][key])
    return [
        "# Ablation: direct regression, heatmap argmax, fused prediction and the chain decode",
        "",
        f"Test split: {prep['test']} studies x {len(r.names)} landmarks = {prep['test'] * len(r.names)} landmarks "
        f"(train {prep['train']}, validation {prep['val']}; {prep['skipped']} studies skipped). Radial errors in mm "
        "on the original images with their own pixel spacing. The paper reports 71.3% of landmarks within 8 mm for "
        "direct regression and 99.6% fused.",
        "",
        "## Methods on the test split",
        "",
        method_table(t, r.radii, r.radius),
        "",
        f"Fused vs direct at {r.radius:g} mm: {pct(t['direct']['sdr'][key])} -> {pct(t['fused']['sdr'][key])}"
        f" (relative improvement {pct(t['fused_vs_direct']['relative_improvement'])}; the paper: 71.3% -> "
        f"99.6%). Fused vs the better baseline: {pct(best_baseline)} -> {pct(t['fused']['sdr'][key])}. "
        f"Fallbacks to the regressed point (product ~0): {t['fallbacks']} of {t['landmarks']}. "
        "Wrong level: predictions closer to an adjacent landmark's ground truth than to their own. A study counts "
        f"as identified when all {len(r.names)} landmarks are within {r.radius:g} mm, and as level-shifted when most "
        "of its landmarks lie nearer the truth two places up or down (disc to disc, body to body) than their own.",
        "",
        f"Best method on the validation split (what `lmfusion predict` uses by default): {r.evaluate['best_method']}.",
        "",
        f"Prior sigma ({r.fitted['fit']['mode']}), heatmap px per landmark: "
        + ", ".join(f"{n} {s:.2f}" if np.isfinite(s) else f"{n} inf" for n, s in zip(r.names, r.sigma_hm)),
        "",
    ]


def _training_section(trains: dict[str, dict]) -> list[str]:
    header = ["network", "epochs", "best val loss (epoch)", "train time (s)", "images / s", "parameters (M)"]
    rows = [[s, tr.get("epochs_run"), f"{tr.get('best_val_loss', float('nan')):.5f} ({tr.get('best_epoch')})",
             f"{tr.get('train_seconds', 0):.0f}", f"{tr.get('images_per_second', 0):.1f}",
             f"{tr.get('parameters', 0) / 1e6:.2f}"] for s, tr in trains.items()]
    return ["", "## Training", "", table(header, rows), ""]


def _prior_section(r: ReportInputs) -> list[str]:
    """Per landmark, where the fusion prior helped and where it hurt (fused and gated against plain argmax), and
    the gate fitted on the validation split."""
    key = f"{r.radius:g}mm"
    effect = {s: r.evaluate[s]["prior_effect"] for s in ("val", "test")}
    points = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    rows = [[n, *[points(effect[s][n][f"{m}_minus_argmax"]) for s in ("val", "test") for m in ("fused", "gated")]]
            for n in r.names]
    gate, sep = r.fitted["fit"].get("gate", {}), r.fitted.get("gate_sep")
    sep = f" ({sep:g} heatmap px)" if isinstance(sep, (int, float)) else ""
    lines = ["## Where the fusion prior helps", "",
             f"Change in the share of landmarks within {r.radius:g} mm against plain heatmap argmax, in percentage "
             "points: fused is the paper's prior everywhere; gated uses it only where a channel's heatmap is "
             f"ambiguous (its strongest rival peak, at least `fusion.gate_sep`{sep} from the top one, reaches "
             f"the gate ratio x the top peak). Gate: {r.fitted.get('gate_ratio', 'inf')}; the prior was used for "
             f"{r.evaluate['test']['prior_used']} of {r.evaluate['test']['landmarks']} test landmarks.", "",
             table(["landmark", "val: fused", "val: gated", "test: fused", "test: gated"], rows), ""]
    if gate.get("mode") == "auto":
        cand = [[c["gate_ratio"], pct(c["study_identification"]), pct(c["sdr"]), fmt(c["mre_mm"], ".2f"),
                 pct(c["prior_used"]), "yes" if c["chosen"] else ""] for c in gate["candidates"]]
        lines += ["The gate on the validation split (most studies identified, then SDR; ties go to the gate that "
                  "uses the prior more, so the paper's fusion stays unless validation shows a gain):", "",
                  table(["gate ratio", "studies identified", f"SDR {key}", "MRE (mm)", "prior used", "chosen"], cand),
                  ""]
    return lines


def _flag_rule(flag: dict) -> str:
    """When a study is flagged `level_uncertain`, in words, from evaluate.json's level_flag."""
    rules = []
    if flag["margin_threshold"] > 0:
        rules.append("its margin (the best chain's score minus the best chain's sharing none of its positions) is "
                     f"below {flag['margin_threshold']:g}")
    if flag.get("end_threshold") is not None:
        rules.append("its end fit (the chain's score over the steps into and out of its last landmark) is below "
                     f"{flag['end_threshold']:g}")
    if flag.get("check_weight") is not None:
        sure = flag.get("check_confidence")
        rules.append("its level check (the chain decoded again with pairwise weight "
                     f"{flag['check_weight']:g}, a strong shape prior) names other levels"
                     + ("" if sure is None else f" (where the answer's mean U-Net probability is also below {sure:.3g}, "
                        "the check's landmarks are the answer)"))
    return ("a study is flagged `level_uncertain` where " + " or where ".join(rules) if rules
            else "no study is flagged `level_uncertain`")


def _chain_section(r: ReportInputs) -> list[str]:
    """The chain model: displacement statistics, the chosen weights, the level flag, an example."""
    model, settings = r.fitted["chain_model"], r.fitted["chain"]
    mean, cov = np.asarray(model["mean"]), np.asarray(model["cov"])
    unit = "mm" if model["unit"] == "mm" else "spine lengths"
    rows = [[f"{a} -> {b}", f"{m[0]:+.2f}", f"{m[1]:+.2f}", f"{np.sqrt(c[0, 0]):.2f}", f"{np.sqrt(c[1, 1]):.2f}"]
            for a, b, m, c in zip(r.names, r.names[1:], mean, cov)]
    flag = r.evaluate["level_flag"]
    rate = lambda s, k: pct(flag[s][k]) if flag[s][k] is not None else "n/a"  # noqa: E731
    grid = r.fitted["fit"]["chain"]["candidates"]
    ends = {row.get("end_node") for row in grid if row["mode"] == "chain"}
    end_note = " (tried on the validation split, with and without)" if ends == {False, True} else ""
    lines = ["## The chain decode", "",
             "The 11 landmarks chosen jointly: candidates are each channel's top heatmap peaks and the regressed "
             "point; a configuration scores the log heatmap plus a weight times the log fusion prior at each "
             "landmark, plus a weight times the Gaussian log-density of each step to the next landmark; exact "
             "dynamic programming finds the best. Fused and plain argmax are candidates of the fit on the validation "
             f"split too ({len(grid)} candidates), so the chosen decode is never below them there.", "",
             f"Chosen: mode {settings['mode']}, prior weight {settings['prior_weight']}, pairwise weight "
             f"{settings['pairwise_weight']}, {settings['n_candidates']} peaks per landmark, lending "
             f"{'off' if settings['lend_penalty'] is None else settings['lend_penalty']}, regressed candidate "
             f"{'trusted by its measured reliability' if settings.get('trust_regressor') else 'as its heatmap value'}"
             f", end node (the S1 body from the sacrum map) {'on' if settings.get('end_node') else 'off'}"
             f"{end_note}, end check (nothing one step below the last landmark may look like the one before it) "
             f"{'weight ' + format(settings['end_check'], 'g') if settings.get('end_check') else 'off'}.", "",
             f"Steps between consecutive landmarks on the training split ({unit}; x right, y down):", "",
             table(["step", "mean x", "mean y", "SD x", "SD y"], rows), "",
             f"Level confidence: {_flag_rule(flag)}. "
             f"Validation: {flag['val']['wrong_level_studies']} wrong-level studies, {rate('val', 'caught')} "
             f"caught, {rate('val', 'false_alarm')} of the right ones flagged. Test: "
             f"{flag['test']['wrong_level_studies']} wrong-level studies, {rate('test', 'caught')} caught, "
             f"{rate('test', 'false_alarm')} of the right ones flagged.", ""]
    if r.chain_example:
        return lines + ["![A study the chain fixed](figures/chain_example.png)", "",
                        "*A test study where fused put a landmark on a neighbour's level and the chain did not.*", ""]
    return lines + ["No test study had a landmark on a neighbour's level with fused and none with the chain.", ""]
