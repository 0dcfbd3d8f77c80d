"""MLflow wiring (lmfusion.tracking): the URI, the no-op modes, and a training stage's run, metrics and model."""

from __future__ import annotations

import json
import re

import pytest

from helpers import REPO, run_stage, stage_cmd
from lmfusion import tracking


def test_uri_defaults_to_sqlite_in_the_dvc_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking.artifact_location() == (tmp_path.resolve() / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.invalid:5000")
    assert tracking.tracking_uri() == "http://tracking.invalid:5000"
    assert tracking.artifact_location() is None  # the server decides


def test_disabled_tracking_is_a_no_op(monkeypatch, tmp_path):
    monkeypatch.setenv("LMFUSION_TRACKING", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'never.db'}")
    with tracking.start_run("train_unet", {"a.b": 1}) as tracker:
        assert tracker.run_id is None
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.log_artifact(tmp_path)
        tracker.set_tags({"x": "y"})
    tracking.set_parent(["run"], "parent")
    assert not (tmp_path / "never.db").exists()


def test_tracker_turns_itself_off_after_an_error(caplog):
    tracker = tracking.Tracker("some-run")

    def boom() -> None:
        raise RuntimeError("server gone")

    tracker._call("log_metrics", boom)
    assert tracker.run_id is None
    tracker._call("log_metrics", boom)
    assert caplog.text.count("server gone") == 1


@pytest.mark.slow
def test_training_stage_run_metrics_and_model(stage_inputs, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"LMFUSION_TRACKING": "1", "MLFLOW_TRACKING_URI": uri, "DVC_ROOT": str(REPO), "DVC_EXP_NAME": "tiny-exp"}
    run_stage(stage_cmd("train_xception", stage_inputs, tmp_path / "out"), env=env)

    from mlflow.tracking import MlflowClient
    import mlflow
    import torch

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    assert exp.artifact_location == (tmp_path / "mlruns").resolve().as_uri()
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["dvc.stage"] == "train_xception" and tags["dvc.exp_name"] == "tiny-exp"
    if (REPO / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", tags["git.commit"])
    assert run.data.params["train_xception.model"] == "resnet10t"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    metrics = json.loads((tmp_path / "out" / "metrics" / "train_xception.json").read_text())
    assert run.data.metrics["best_val_loss"] == pytest.approx(metrics["best_val_loss"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"train_xception_loss.csv",
                                                                         "train_xception.json"}
    mlflow.set_tracking_uri(uri)
    models = mlflow.search_logged_models(experiment_ids=[exp.experiment_id], output_format="list")
    assert [m.source_run_id for m in models] == [run.info.run_id]
    saved = torch.load(tmp_path / "out" / "models" / "xception" / "model.pt", weights_only=True)
    assert saved["meta"]["mlflow_run_id"] == run.info.run_id

    parent = client.create_run(exp.experiment_id, run_name="pipeline")
    tracking_env = {"MLFLOW_TRACKING_URI": uri, "LMFUSION_TRACKING": "1"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in tracking_env.items():
            mp.setenv(k, v)
        tracking.set_parent([run.info.run_id], parent.info.run_id)
    assert client.get_run(run.info.run_id).data.tags[tracking.PARENT_TAG] == parent.info.run_id


@pytest.mark.slow
def test_unreachable_server_keeps_every_output(stage_inputs, tmp_path):
    env = {"LMFUSION_TRACKING": "1", "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    proc = run_stage(stage_cmd("train_unet", stage_inputs, tmp_path), env=env)
    assert proc.stderr.count("WARNING lmfusion") == 1
    for path in ("models/unet/model.pt", "checkpoints/train_unet.pt", "metrics/train_unet.json",
                 "plots/train_unet_loss.csv", "plots/train_unet_augment.png"):
        assert (tmp_path / path).is_file(), path
