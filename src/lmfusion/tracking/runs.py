"""Grouping one pipeline execution's MLflow runs: a parent run per evaluation holds the evaluate and report runs,
and adopts the training runs that produced its models. Runs are written here, never read back as a stage's input
(the report's tables come from tracked files).

Every function is a no-op when tracking is off and never raises: tracking must not cost a stage its outputs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import shutil
from pathlib import Path
from typing import Any

from lmfusion import tracking

log = logging.getLogger("lmfusion")

PIPELINE_FILES = ("params.yaml", "models/xception/model.pt", "models/unet/model.pt", "models/decoder.json")
def flat_metrics(results: dict, prefix: str = "") -> dict[str, float]:
    """{"test.fused.sdr.8mm": 0.99, ...} from nested results; non-numbers are left out."""
    out: dict[str, float] = {}
    for key, value in results.items():
        name = f"{prefix}{key}".replace("@", "_")
        if isinstance(value, dict):
            if key != "per_landmark":
                out.update(flat_metrics(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def log_evaluation(*, params: dict[str, Any], results: dict, root: Path, artifacts: list[Path],
                   metas: dict[str, dict]) -> dict:
    """Log the evaluate run under a new pipeline parent run; returns {"parent_run_id", "evaluate_run_id"}.

    metas: {"train_xception": meta, "train_unet": meta}, the saved models' metas (as the infer stage records them),
    whose MLflow run ids link the training runs to this evaluation.
    """
    if not tracking.enabled():
        return {}
    try:
        c = tracking.client()
        exp_id = tracking.ensure_experiment()
        exp_name = os.environ.get("DVC_EXP_NAME")
        commit = tracking.git_commit() or "workspace"
        tags = {"dvc.stage": "pipeline", "git.commit": commit, "dvc.exp_name": exp_name}
        parent = c.create_run(exp_id, run_name=f"pipeline {exp_name or commit[:8]}",
                              tags={k: v for k, v in tags.items() if v})
        parent_id = parent.info.run_id
        linked = {f"lmfusion.{stage}_run": m.get("mlflow_run_id") for stage, m in metas.items()}
        metas = {stage: metas.get(stage, {}) for stage in ("train_xception", "train_unet")}
        unet = metas["train_unet"]
        model_params = {"unet.arch": unet.get("builder", {}).get("arch"),
                        "unet.encoder": unet.get("builder", {}).get("encoder"),
                        "unet.input_size": unet.get("input_size"),
                        "xception.model": metas["train_xception"].get("builder", {}).get("model"),
                        "xception.input_size": metas["train_xception"].get("input_size")}
        train_metrics: dict[str, float] = {}
        unet_run = linked["lmfusion.train_unet_run"]
        if unet_run:
            try:
                m = c.get_run(unet_run).data.metrics
                train_metrics = {f"unet.{k}": m[k] for k in ("best_val_loss", "seconds_per_epoch", "parameters",
                                                             "peak_memory_mb") if k in m}
            except Exception:
                pass
        with tracking.start_run("evaluate", {**params, **model_params},
                                tags={tracking.PARENT_TAG: parent_id, **linked}) as tracker:
            tracker.log_metrics({**flat_metrics(results), **train_metrics})
            for path in artifacts:
                tracker.log_artifact(path)
            with tempfile.TemporaryDirectory() as tmp:  # the files LandmarkPredictor.from_pipeline loads
                bundle = Path(tmp) / "pipeline"
                for rel in PIPELINE_FILES:
                    if (root / rel).exists():
                        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(root / rel, bundle / rel)
                tracker.log_artifact(bundle, "pipeline")
            evaluate_id = tracker.run_id
        orphans = [r for r in linked.values() if r and tracking.PARENT_TAG not in c.get_run(r).data.tags]
        tracking.set_parent(orphans, parent_id)
        c.set_terminated(parent_id)
        return {"parent_run_id": parent_id, "evaluate_run_id": evaluate_id}
    except Exception as e:
        log.warning("MLflow: could not log the evaluation (%s: %s)", type(e).__name__, str(e).splitlines()[0])
        return {}


def log_report(report_dir: Path, run_ids: dict) -> None:
    """The report as a run under the evaluation's pipeline parent."""
    if not tracking.enabled():
        return
    tags = {tracking.PARENT_TAG: run_ids["parent_run_id"]} if run_ids.get("parent_run_id") else {}
    with tracking.start_run("report", {}, tags=tags) as tracker:
        tracker.log_artifact(report_dir, "report")
