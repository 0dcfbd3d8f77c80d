"""The whole pipeline through DVC on tiny params: outputs, MLflow runs, experiments and metrics across commits."""

from __future__ import annotations

import json
import shlex
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import run

pytestmark = pytest.mark.slow

QUEUE_TIMEOUT_S = 900  # the queued fusion-only experiment takes well under a minute on 2 CPU cores

from lmfusion.decoding import METHODS


def test_repro_writes_metrics_plots_and_report(tiny_pipeline):
    root = tiny_pipeline["root"]
    ev = json.loads((root / "metrics" / "evaluate.json").read_text())
    for split in ("val", "test"):
        for m in METHODS:
            assert set(ev[split][m]["sdr"]) == {"2mm", "4mm", "6mm", "8mm", "10mm"}
            assert len(ev[split][m]["per_landmark"]) == 11
        assert "relative_improvement" in ev[split]["fused_vs_direct"]
        for m in METHODS:
            assert 0.0 <= ev[split][m]["study_identification"] <= 1.0 and ev[split][m]["level_shifts"] >= 0
        assert set(ev["level_flag"][split]) >= {"wrong_level_studies", "flagged", "caught", "false_alarm"}
    assert ev["best_method"] in METHODS
    studies = pd.read_csv(root / "plots" / "evaluate" / "studies.csv")
    assert len(studies) == 6 and {"margin", "level_uncertain", "chain_max_mm", "fused_level_shift"} <= set(studies)
    for name in ("sdr.csv", "per_landmark_mre.csv", "overlays.png", "worst_cases.png", "shifted_studies.png",
                 "fusion_example.png", "sdr_curve.png", "per_landmark_mre.png"):
        assert (root / "plots" / "evaluate" / name).stat().st_size > 0, name
    report = (root / "reports" / "ablation.md").read_text()
    assert "| fused (the paper) |" in report and "Sigma sweep" in report
    assert "| chain (joint decode of the 11) |" in report and "## The chain decode" in report
    assert "## Level identification experiments" in report and "| sacrum |" in report  # experiments/*.csv
    assert "## Regressor experiments" in report and "| wing |" in report
    assert (root / "reports" / "figures" / "sigma_sweep.png").exists()
    fitted = json.loads((root / "models" / "decoder.json").read_text())
    assert len(fitted["sigma_hm"]) == 11 and fitted["fit"]["mode"] == "auto"
    assert run(["dvc", "status", "--quiet"], root, check=False).returncode == 0  # everything up to date
    assert "Running stage 'pretrain_" not in tiny_pipeline["repro"].stdout  # pretrain.sets: [] has no such stages


def test_mlflow_groups_training_and_evaluation(tiny_pipeline):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tiny_pipeline["env"]["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("lmfusion")
    runs = client.search_runs([exp.experiment_id])
    by_stage = {}
    for r in runs:
        by_stage.setdefault(r.data.tags.get("dvc.stage"), []).append(r)
    assert {"train_xception", "train_unet", "evaluate", "report", "pipeline"} <= set(by_stage)
    parent = by_stage["pipeline"][0].info.run_id
    for stage in ("train_xception", "train_unet", "evaluate", "report"):
        assert by_stage[stage][0].data.tags.get("mlflow.parentRunId") == parent, stage
    for stage in ("train_xception", "train_unet"):
        assert "best_val_loss" in by_stage[stage][0].data.metrics
    evaluate = by_stage["evaluate"][0]
    assert "test.fused.sdr.8mm" in evaluate.data.metrics
    bundle = {a.path for a in client.list_artifacts(evaluate.info.run_id, "pipeline/models")}
    assert {"pipeline/models/xception", "pipeline/models/unet", "pipeline/models/decoder.json"} <= bundle


def _seed_other_models(uri: str, artifacts: Path) -> None:
    """Evaluate runs of the kind the report once read its heatmap models from: another architecture, and a newer run
    of a U-Net with other figures."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp_id = client.create_experiment("lmfusion", artifact_location=artifacts.as_uri())
    for arch, encoder, sdr in (("FPN", "mobilenet_v2", 0.25), ("Unet", "resnet18", 0.125)):
        run_id = client.create_run(exp_id, run_name="evaluate", tags={"dvc.stage": "evaluate"}).info.run_id
        for key, value in (("unet.arch", arch), ("unet.encoder", encoder), ("unet.input_size", "64")):
            client.log_param(run_id, key, value)
        for key in ("test.argmax.sdr.8mm", "test.fused.sdr.8mm"):
            client.log_metric(run_id, key, sdr)
        client.log_metric(run_id, "unet.seconds_per_epoch", 999.0)
        client.set_terminated(run_id)


def test_report_is_the_same_whatever_the_mlflow_store_holds(tiny_pipeline, tmp_path):
    """The report stage's command renders one report from the same tracked files, with a store holding other and
    newer evaluate runs or an empty one, and it is the report dvc repro wrote; its heatmap models' row is the
    tracked metrics' (metrics/evaluate.json, metrics/train_unet.json, the U-Net's meta)."""
    from lmfusion.reporting.markdown import fmt, pct

    root = tiny_pipeline["root"]
    busy, empty = f"sqlite:///{tmp_path / 'busy.db'}", f"sqlite:///{tmp_path / 'empty.db'}"
    _seed_other_models(busy, tmp_path / "mlruns")
    argv = shlex.split(yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["report"]["cmd"])
    texts = []
    for name, uri in (("busy", busy), ("empty", empty)):
        run([str(tmp_path / name) if a == "reports" else a for a in argv], root,
            env={"LMFUSION_TRACKING": "1", "MLFLOW_TRACKING_URI": uri})
        texts.append((tmp_path / name / "ablation.md").read_text())
    assert texts[0] == texts[1] == (root / "reports" / "ablation.md").read_text()
    ev = json.loads((root / "metrics" / "evaluate.json").read_text())["test"]
    tr = json.loads((root / "metrics" / "train_unet.json").read_text())
    section = texts[0].split("## Heatmap models")[1].split("## Training")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| experiment |")]
    assert rows == ["| " + " | ".join([
        "this pipeline", "Unet", "resnet18", "64", pct(ev["argmax"]["sdr"]["8mm"]), pct(ev["fused"]["sdr"]["8mm"]),
        fmt(tr["best_val_loss"], ".4f"), fmt(tr["seconds_per_epoch"], ".1f"), fmt(tr["parameters"] / 1e6, ".2f"),
        fmt(tr["peak_memory_mb"], ".0f")]) + " |"]


def test_fusion_param_reruns_only_evaluate_and_report(tiny_pipeline, tmp_path):
    root = tmp_path / "repo"  # a copy: the experiment's results are applied to its workspace
    shutil.copytree(tiny_pipeline["root"], root, symlinks=True)
    proc = run(["dvc", "exp", "run", "-S", "fusion.sigma=3", "-S", "chain.pairwise_weight=0.3"], root,
               env=tiny_pipeline["env"])
    out = proc.stdout + proc.stderr
    assert "Running stage 'evaluate'" in out and "Running stage 'report'" in out
    for stage in ("prepare", "heatmaps", "train_xception", "train_unet", "infer"):
        assert f"Running stage '{stage}'" not in out, stage
    shown = json.loads(run(["dvc", "exp", "show", "--json"], root).stdout)
    assert '"sigma": 3' in json.dumps(shown)  # the experiment with fusion.sigma=3 is recorded


def test_metrics_diff_between_commits(tiny_pipeline, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_pipeline["root"], repo, symlinks=True)
    env = {**tiny_pipeline["env"], "LMFUSION_TRACKING": "0"}
    run(["git", "checkout", "-q", "-b", "wide-prior"], repo)
    # a prior far wider than the fitted one (px at heatmap.reference_size): fused becomes the U-Net's argmax
    params = (repo / "params.yaml").read_text().replace("sigma: auto", "sigma: 400")
    (repo / "params.yaml").write_text(params)
    run(["dvc", "repro"], repo, env=env)
    run(["git", "commit", "-qam", "wide prior"], repo)
    diff = run(["dvc", "metrics", "diff", "main", "--json"], repo).stdout
    changed = json.loads(diff)["metrics/evaluate.json"]
    assert any(key.startswith("test.fused") for key in changed)
    assert "fusion_sigma_hm" in json.dumps(changed) or any("fused" in k for k in changed)


def _queue_state(root, env, name: str) -> str:
    """The queued experiment's status in `dvc queue status` (Queued, Running, Success, Failed), '' when not listed."""
    out = run(["dvc", "queue", "status"], root, env=env).stdout
    row = next((line.split() for line in out.splitlines() if name in line.split()), [])
    return next((w for w in row if w in ("Queued", "Running", "Success", "Failed")), "")


def test_queued_fusion_experiment_trains_nothing(tiny_pipeline, tmp_path):
    """`dvc exp run --queue` + `dvc queue start` work in a fresh copy: the trained models are restored from the cache,
    and only evaluate and report run."""
    root = tmp_path / "repo"
    shutil.copytree(tiny_pipeline["root"], root, symlinks=True)
    env, name = tiny_pipeline["env"], "fusion-only"
    run(["dvc", "exp", "run", "--queue", "-n", name, "-S", "fusion.sigma=3"], root, env=env)
    start, state = time.monotonic(), ""
    run(["dvc", "queue", "start"], root, env=env)  # spawns a worker and returns at once
    try:
        state = _queue_state(root, env, name)
        while state not in ("Success", "Failed") and time.monotonic() - start < QUEUE_TIMEOUT_S:
            time.sleep(2)
            state = _queue_state(root, env, name)
    finally:
        run(["dvc", "queue", "stop", "--kill"] if state not in ("Success", "Failed") else ["dvc", "queue", "stop"],
            root, env=env, check=False)  # an idle worker also stops on its own after 10 s
    seconds = time.monotonic() - start
    logs = run(["dvc", "queue", "logs", name], root, env=env, check=False)
    out = logs.stdout + logs.stderr
    assert state == "Success", f"{state or 'not listed'} after {seconds:.0f} s:\n{out[-4000:]}"
    print(f"queued fusion-only experiment: {seconds:.1f} s from dvc queue start to Success")
    assert "Running stage 'evaluate'" in out and "Running stage 'report'" in out
    for stage in ("prepare", "heatmaps", "train_xception", "train_unet", "infer"):
        assert f"Running stage '{stage}'" not in out, stage
    shown = json.dumps(json.loads(run(["dvc", "exp", "show", "--json"], root).stdout))
    assert name in shown and '"sigma": 3' in shown
