"""The report's table of heatmap models (architecture, encoder, input size): this pipeline's U-Net, read from what
its stages wrote, then the architectures collected from queued experiments (experiments/architectures.py's CSV).

Every figure comes from files git or DVC track, never from an MLflow store, so one commit renders one report
whichever runs the local store holds.
"""

from __future__ import annotations

from typing import Any

from lmfusion.metrics import radius_key
from lmfusion.reporting.markdown import fmt, pct, table

# One row of the table, as model_row builds it and experiments/architectures.csv holds it (after its experiment
# and change columns).
FIELDS = ("arch", "encoder", "input_size", "argmax_sdr", "fused_sdr", "best_val_loss", "seconds_per_epoch",
          "parameters", "peak_memory_mb")


def model_row(*, arch: Any, encoder: Any, input_size: Any, evaluate: dict, train: dict, radius: float) -> dict:
    """A heatmap model's row of FIELDS from its evaluation (metrics/evaluate.json: test SDR of argmax and fused at
    `radius` mm) and its training (metrics/train_unet.json: val loss, time and memory on the machine that ran it)."""
    key = radius_key(radius)
    return {"arch": arch, "encoder": encoder, "input_size": input_size,
            "argmax_sdr": evaluate["test"]["argmax"]["sdr"].get(key),
            "fused_sdr": evaluate["test"]["fused"]["sdr"].get(key),
            **{k: train.get(k) for k in ("best_val_loss", "seconds_per_epoch", "parameters", "peak_memory_mb")}}


def _number(x: Any) -> float | None:
    """A JSON number or a CSV cell as a float; None for a missing value or an empty cell."""
    return None if x is None or x == "" else float(x)


def model_table(rows: list[dict], radius: float) -> str:
    header = ["experiment", "architecture", "encoder", "input (px)", f"argmax SDR {radius:g} mm",
              f"fused SDR {radius:g} mm", "best val loss", "s / epoch", "parameters (M)", "peak memory (MB)"]
    body = []
    for r in rows:
        n = {k: _number(r.get(k)) for k in FIELDS[3:]}
        body.append([r.get("experiment") or "?", r.get("arch") or "?", r.get("encoder") or "?",
                     r.get("input_size") or "?", pct(n["argmax_sdr"]), pct(n["fused_sdr"]),
                     fmt(n["best_val_loss"], ".4f"), fmt(n["seconds_per_epoch"], ".1f"),
                     fmt(None if n["parameters"] is None else n["parameters"] / 1e6, ".2f"),
                     fmt(n["peak_memory_mb"], ".0f")])
    return table(header, body)


def architectures_section(current: dict, collected: list[dict] | None, radius: float) -> list[str]:
    """This pipeline's row (model_row) first, then experiments/architectures.csv's rows (none when not collected)."""
    lines = ["## Heatmap models", "",
             "This pipeline's U-Net (metrics/evaluate.json, metrics/train_unet.json) and the architectures collected "
             "from queued experiments into experiments/architectures.csv (`python experiments/architectures.py "
             "queue`, `dvc queue start`, then `collect` and `dvc repro report`): accuracy on each one's own test "
             "split; time and memory on the machine that ran it."]
    if not collected:
        lines[-1] += " No other architecture has been collected yet."
    return lines + ["", model_table([{**current, "experiment": "this pipeline"}, *(collected or [])], radius)]
