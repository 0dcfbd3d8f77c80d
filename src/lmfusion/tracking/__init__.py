"""MLflow wiring: where runs go, how they are tagged, and never losing a stage's outputs because of tracking.

Tracking URI: `MLFLOW_TRACKING_URI` when set, else `sqlite:///<DVC_ROOT>/mlflow.db` with artifacts in
`<DVC_ROOT>/mlruns`. DVC sets DVC_ROOT to the main repository also for `dvc exp run --temp` and queued
experiments, whose working copies are temporary; outside DVC the git top level (or the working directory) is used.
The `lmfusion` experiment is created with that artifact location before any run, so queued runs keep their
artifacts after DVC deletes its temporary copies.

`LMFUSION_TRACKING=0` turns tracking off (a no-op tracker whose run_id is None). Any MLflow error (an unreachable
server, a locked database) logs one warning and turns the tracker into a no-op for the rest of the run.
mlflow is imported inside functions: importing it takes seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import unquote, urlparse

log = logging.getLogger("lmfusion")

EXPERIMENT = "lmfusion"
PARENT_TAG = "mlflow.parentRunId"
GROUP_TAG = "lmfusion.group"


def enabled() -> bool:
    return os.environ.get("LMFUSION_TRACKING", "1").strip().lower() not in ("0", "false", "no", "off")


def dvc_root() -> Path:
    """The repository the runs belong to: DVC_ROOT, else the git top level, else the working directory."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return Path.cwd().resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{dvc_root() / 'mlflow.db'}"


def artifact_location(uri: str | None = None) -> str | None:
    """`mlruns/` beside a SQLite database (the default store); None (the server's choice) for other stores."""
    uri = uri or tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(unquote(urlparse(uri).path[1:]))  # sqlite:///rel.db is relative, sqlite:////abs.db absolute
    return (db.parent / "mlruns").resolve().as_uri()


def _fail_fast() -> None:
    # An unreachable server would otherwise stall a stage for minutes of retries before the one warning.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def client() -> Any:
    """An MlflowClient on tracking_uri()."""
    _fail_fast()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri())


def ensure_experiment(name: str = EXPERIMENT) -> str:
    """The experiment's id, creating it with the artifact location first when it does not exist."""
    _fail_fast()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=artifact_location())
    except Exception:  # another process created it meanwhile
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit(root: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root or dvc_root(), capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class Tracker:
    """Logs to the active MLflow run; a no-op when run_id is None or after the first MLflow error."""

    def __init__(self, run_id: str | None = None):
        self.run_id = run_id

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.active:
            return None
        try:
            return fn()
        except Exception as e:  # tracking must never cost the stage its outputs
            log.warning("MLflow %s failed (%s: %s); tracking is off for the rest of this run", what,
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            self.run_id = None
            return None

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.active:
            return
        import mlflow

        self._call("log_params", lambda: mlflow.log_params({k: str(v)[:6000] for k, v in params.items()}))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self.active:
            return
        import mlflow

        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        self._call("log_metrics", lambda: mlflow.log_metrics(clean, step=step))

    def set_tags(self, tags: dict[str, Any]) -> None:
        if not self.active:
            return
        import mlflow

        self._call("set_tags", lambda: mlflow.set_tags({k: str(v) for k, v in tags.items() if v is not None}))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if not self.active:
            return
        import mlflow

        path = Path(path)
        if path.is_dir():
            self._call("log_artifacts", lambda: mlflow.log_artifacts(str(path), artifact_path or path.name))
        elif path.exists():
            self._call("log_artifact", lambda: mlflow.log_artifact(str(path), artifact_path))

    def log_model(self, model: Any, name: str) -> None:
        """The network as an MLflow PyTorch model (no pip requirements inference, no signature)."""
        if not self.active:
            return
        import mlflow.pytorch

        def _log() -> None:
            quiet = logging.getLogger("mlflow")
            level = quiet.level
            quiet.setLevel(logging.ERROR)  # warnings about the missing signature and input example
            try:
                mlflow.pytorch.log_model(model, name=name, pip_requirements=[], serialization_format="pickle")
            finally:
                quiet.setLevel(level)

        self._call("log_model", _log)


@contextlib.contextmanager
def start_run(stage: str, params: dict[str, Any], tags: dict[str, Any] | None = None,
              resume_run_id: str | None = None) -> Iterator[Tracker]:
    """An MLflow run for one stage execution, tagged dvc.stage, git.commit and dvc.exp_name.

    Args:
        params: flat {"section.key": value} logged as run params.
        resume_run_id: continue this run (a resumed training) when it still exists, else start a new one.
    """
    if not enabled():
        yield Tracker(None)
        return
    tracker = Tracker(None)
    all_tags = {"dvc.stage": stage, "git.commit": git_commit(), "dvc.exp_name": os.environ.get("DVC_EXP_NAME")}
    all_tags = {k: str(v) for k, v in {**all_tags, **(tags or {})}.items() if v}
    started = False
    try:
        import mlflow

        exp_id = ensure_experiment()
        run = None
        if resume_run_id:
            with contextlib.suppress(Exception):
                run = mlflow.start_run(run_id=resume_run_id)
        if run is None:
            run = mlflow.start_run(experiment_id=exp_id, run_name=stage)
        started = True
        tracker.run_id = run.info.run_id
        tracker.set_tags(all_tags)
        tracker.log_params(params)
    except Exception as e:
        log.warning("MLflow tracking unavailable at %s (%s: %s); the stage runs without it", tracking_uri(),
                    type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        tracker.run_id = None
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        raise
    finally:
        if started:
            import mlflow

            with contextlib.suppress(Exception):
                mlflow.end_run(status=status)


def group_run(name: str, stage: str) -> str | None:
    """The id of the parent run named `name` (tag lmfusion.group), created on first use, so the runs of several
    stages gather under it; None when tracking is off or MLflow fails (one warning)."""
    if not enabled():
        return None
    try:
        c = client()
        exp_id = ensure_experiment()
        found = c.search_runs([exp_id], f"tags.`{GROUP_TAG}` = '{name}'", max_results=1)
        if found:
            return found[0].info.run_id
        tags = {GROUP_TAG: name, "dvc.stage": stage, "git.commit": git_commit(), "dvc.exp_name":
                os.environ.get("DVC_EXP_NAME")}
        run = c.create_run(exp_id, run_name=name, tags={k: v for k, v in tags.items() if v})
        c.set_terminated(run.info.run_id)
        return run.info.run_id
    except Exception as e:
        log.warning("MLflow: could not open the parent run %r (%s: %s)", name, type(e).__name__,
                    str(e).splitlines()[0] if str(e) else "")
        return None


def set_parent(run_ids: list[str], parent_id: str) -> None:
    """Group runs under a parent run (the `mlflow.parentRunId` tag, as nested runs have)."""
    if not enabled() or not run_ids:
        return
    try:
        c = client()
        for run_id in run_ids:
            if run_id and run_id != parent_id:
                c.set_tag(run_id, PARENT_TAG, parent_id)
    except Exception as e:
        log.warning("MLflow could not group runs under %s (%s: %s)", parent_id, type(e).__name__,
                    str(e).splitlines()[0] if str(e) else "")
