"""The report's sections on measurements made outside the pipeline: the level identification and regressor
experiments (experiments/level_identification.py, experiments/regressor.py) and the synthetic pretraining's
fine-tuning benchmark (benchmarks/bench_finetune.py)."""

from __future__ import annotations

from pathlib import Path

from lmfusion.reporting.markdown import fmt, pct, table


def experiments_section(rows: list[dict], radius: float) -> list[str]:
    """What each training change bought in naming the levels: experiments/level_identification.py's rows."""
    header = ["experiment", "change", "best method on val", "val: studies identified", f"val: SDR {radius:g} mm",
              "test: studies identified", f"test: SDR {radius:g} mm", "test: level-shifted studies",
              "training (min, both networks)"]
    body = [[r["experiment"], r["change"], r["best_method"], pct(float(r["val_study_identification"])),
             pct(float(r["val_sdr"])), pct(float(r["test_study_identification"])), pct(float(r["test_sdr"])),
             r["test_level_shifts"], r["train_minutes"]] for r in rows]
    return ["## Level identification experiments", "",
            "Each row is the pipeline with a few `-S` overrides (`python experiments/level_identification.py queue`, "
            "`dvc queue start`, then `collect`); a study is identified when all its landmarks lie within "
            f"{radius:g} mm. The training time is that of this machine's run of each network.", "",
            table(header, body), ""]


def regressor_section(rows: list[dict], radius: float) -> list[str]:
    """What each lever on the Xception + FC regressor bought in direct regression: experiments/regressor.py's rows."""
    header = ["experiment", "change", f"val: SDR {radius:g} mm", "val: MRE (mm)", "val: studies identified",
              f"test: SDR {radius:g} mm", "test: MRE (mm)", "test: studies identified",
              f"test: gated SDR {radius:g} mm", "regressor training (s)"]
    body = [[r["experiment"], r["change"], pct(float(r["val_direct_sdr"])), fmt(float(r["val_direct_mre_mm"]), ".2f"),
             pct(float(r["val_direct_studies"])), pct(float(r["test_direct_sdr"])),
             fmt(float(r["test_direct_mre_mm"]), ".2f"), pct(float(r["test_direct_studies"])),
             pct(float(r["test_gated_sdr"])), fmt(float(r["train_seconds"]), ".0f")] for r in rows]
    return ["## Regressor experiments", "",
            "Direct regression (Xception + FC) with one lever moved per row (`python experiments/regressor.py queue`, "
            "`dvc queue start`, then `collect`); the U-Net is the same in every row. The choice is made on the "
            "validation columns. The training time is that of this machine's run.", "",
            table(header, body), ""]


def _per_network(settings: dict[str, dict]) -> str:
    """{network: {key: value}} as 'xception: lr 0.0003, epochs 20; unet: ...'."""
    return "; ".join(f"{net}: " + ", ".join(f"{k} {v}" for k, v in s.items()) for net, s in settings.items())


def finetune_section(f: dict) -> list[str]:
    """Scratch against fine-tuned from the synthetic pretraining on a small target set: the test table beside the
    learning curves (figures/finetune_curves.png), then one line per fine-tuning option measured (its best method,
    chosen on validation)."""
    st, key = f["settings"], f"{f['settings']['radius_mm']:g}mm"
    base = {v: f["variants"][v] for v in ("scratch", "pretrained") if v in f["variants"]}
    header = ["start", "method", f"SDR {key}", "MRE (mm)", "studies identified", "level-shifted studies"]
    rows = [[variant, m, pct(r["sdr"]), fmt(r["mre_mm"], ".2f"), pct(r["study_identification"]), r["level_shifts"]]
            for variant, v in base.items() for m, r in v["test"].items()]
    train_rows = [[variant, net, f"{t['best_val_loss']:.5f} ({t['best_epoch']}/{t['epochs_run']})",
                   f"{t['train_seconds']:.0f}"] for variant, v in base.items() for net, t in v["training"].items()]
    tuned = _per_network(st["finetune"])
    lines = ["## Synthetic pretraining on a small target set", "",
             f"`benchmarks/bench_finetune.py`: {st['train']} training, {st['val']} validation and {st['test']} test "
             f"studies of the `{st['style']}` synthetic style (seed {st['seed']}), both networks trained from scratch "
             f"and from the synthetic pretraining (`{Path(st['pretrained']['unet']).parents[2]}`) with the same test "
             f"split ({tuned}).", "",
             '<table><tr><td valign="top">', "", table(header, rows), "", table(
                 ["start", "network", "best val loss (epoch)", "train time (s)"], train_rows), "",
             '</td><td valign="top">', "", "![Learning curves](figures/finetune_curves.png)", "", "</td></tr></table>",
             ""]
    options = st.get("variants") or {}
    if not options:
        return lines
    option_rows = []
    for variant, v in f["variants"].items():  # finetune.json with options holds each variant's best method
        what = "weights null" if variant == "scratch" else _per_network(options.get(variant, {})) or "as above"
        best, val = v["best_method"], v["val_best"]
        r = v["test"][best]
        option_rows.append([variant, what, best, f"{pct(val['sdr'])} / {pct(val['study_identification'])}",
                            pct(r["sdr"]), fmt(r["mre_mm"], ".2f"), pct(r["study_identification"]),
                            r["level_shifts"], f"{sum(t['train_seconds'] for t in v['training'].values()):.0f}"])
    return lines + ["Fine-tuning options, each a start from the pretrained networks with the settings above except "
                    "those named (the best method chosen on validation; then the test figures):", "",
                    table(["start", "change", "best method", f"val: SDR {key} / studies identified", f"SDR {key}",
                           "MRE (mm)", "studies identified", "level-shifted studies", "train time (s)"], option_rows),
                    ""]
