"""What both training stages share: seeding, resuming, tracking and their outputs.

Outputs (rank 0 only): MODEL_DIR/model.pt (the best weights by val loss, see lmfusion.nets.models.save_model), the
metrics JSON, the per-epoch loss CSV (epoch, train_loss, val_loss) and the augmentation preview PNG. The checkpoint
holds the hash of the params and data it was trained on; another hash starts a fresh training. With the same hash
a finished checkpoint is not trained further: a forced rerun (dvc repro -f) writes the same outputs again from it;
delete the checkpoint to train again from scratch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from lmfusion import tracking
from lmfusion.nets import finetune
from lmfusion.training import distributed
from lmfusion import deps
from lmfusion.config import PRETRAINED, TrainConfig, as_dict
from lmfusion.data.prepared import Prepared
from lmfusion.errors import DataError
from lmfusion.io import file_digest, write_json
from lmfusion.nets.models import IMAGENET, build_unet, build_regressor, save_model
from lmfusion.figures.drawing import write_png
from lmfusion.training.loop import FitResult, fit, load_checkpoint


@dataclass(frozen=True)
class StageOutputs:
    model_dir: Path
    checkpoint: Path
    metrics_json: Path
    loss_csv: Path
    augment_png: Path


@dataclass(frozen=True)
class TrainJob:
    """One network's training, as a stage script sets it up.

    kind: 'regressor' or 'heatmap'; builder: that builder's keyword arguments (without weights).
    params: flat {"section.key": value} of every param the stage reads (hashed and logged to MLflow).
    data_arrays: the arrays the model learns from (hashed: other data start a fresh training).
    preview: makes the augmentation preview (BGR), called on rank 0.
    script: the stage script; the package files it imports are hashed with it (lmfusion.deps), so a checkpoint
    written by other code is never resumed.
    pretrained: the folder where `weights: synthetic` finds the pretraining's model; sets: pretrain.sets.
    pretrain: the job is the synthetic pretraining; its runs gather under one MLflow parent per experiment.
    """

    stage: str
    kind: str
    builder: dict[str, Any]
    loss_fn: Callable
    train_set: Dataset
    val_set: Dataset
    cfg: TrainConfig
    seed: int
    params: dict[str, Any]
    data_arrays: Sequence[np.ndarray]
    names: Sequence[str]
    input_size: int
    preview: Callable[[], np.ndarray]
    script: Path | None = None
    pretrained: Path | None = None
    sets: tuple[str, ...] = ()
    pretrain: bool = False


def stage_arguments(doc: str, inputs: Sequence[str]) -> tuple[argparse.Namespace, StageOutputs]:
    """A training stage's command line: its input paths, the five outputs every training writes, --params,
    --pretrained (where `weights: synthetic` looks) and --pretrain (run as the synthetic pretraining)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in (*inputs, *(f.name for f in dataclasses.fields(StageOutputs))):
        ap.add_argument(name)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--pretrained", type=Path, help="folder holding the synthetic pretraining's model")
    ap.add_argument("--pretrain", action="store_true", help="train as the synthetic pretraining (lmfusion.config.pretraining)")
    args = ap.parse_args()
    return args, StageOutputs(*(Path(getattr(args, f.name)) for f in dataclasses.fields(StageOutputs)))


def training_splits(data: Prepared, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices; both must hold studies."""
    train_idx, val_idx = data.split_indices("train"), data.split_indices("val")
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError(f"{where}: needs train and val studies, has {len(train_idx)} and {len(val_idx)}")
    return train_idx, val_idx


def flat_params(p: dict[str, Any], sections: Sequence[str]) -> dict[str, Any]:
    return {f"{s}.{k}": v for s in sections for k, v in as_dict(p[s]).items()}


def config_hash(params: dict[str, Any], arrays: Sequence[np.ndarray], script: Path | None = None) -> str:
    """A digest of the params (JSON), the training data (array bytes and shapes) and the training code (the script
    and every package file it imports; without a script, those of this module). DataLoader workers do not change
    the results, so a resumed run may use another number of them."""
    h = hashlib.blake2b(digest_size=16)
    for path in ([Path(script)] if script else []) + deps.package_files(Path(script or __file__)):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    kept = {k: v for k, v in params.items() if not k.endswith(".num_workers")}
    h.update(json.dumps(kept, sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on CUDA, else the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(kind: str, builder: dict[str, Any], weights: str | None) -> nn.Module:
    return build_regressor(**builder, weights=weights) if kind == "regressor" else build_unet(
        **builder, weights=weights)


def _initial(job: TrainJob) -> tuple[nn.Module, dict[str, Any] | None, dict[str, Any]]:
    """The network as training starts (seeded), what a pretrained start loaded (None otherwise), and the params to
    hash: a weights file's bytes count, so a checkpoint started from other weights is never resumed."""
    key = f"{job.stage}.weights"
    weights = finetune.resolve_weights(job.cfg.weights, key, job.pretrained, job.sets)
    is_file = weights not in (None, IMAGENET)
    saved = finetune.read_saved(weights) if is_file else None
    torch.manual_seed(job.seed)  # the same initial weights on every rank and every run
    model = build(job.kind, job.builder, None if saved else weights)
    init = finetune.load_pretrained(model, saved, weights, key=key, kind=job.kind, builder=job.builder,
                                    names=job.names, input_size=job.input_size) if saved else None
    return model, init, {**job.params, **({"init.digest": file_digest(weights)} if is_file else {})}


def run_training(job: TrainJob, outputs: StageOutputs) -> dict[str, Any] | None:
    """Train one network and write the stage's outputs; returns the metrics on rank 0 (None on other ranks)."""
    ctx = distributed.setup()
    try:
        model, init, hashed = _initial(job)
        digest = config_hash(hashed, job.data_arrays, job.script)
        # every rank reads it (one machine or a shared filesystem) to restore its optimizer and RNG positions
        resume = load_checkpoint(outputs.checkpoint, digest)
        n_params = sum(p.numel() for p in model.parameters())
        if ctx.is_main:
            write_png(outputs.augment_png, job.preview())
        run = (tracking.start_run(job.stage, {**job.params, "input_size": job.input_size,
                                              "world_size": ctx.world_size},
                                  tags=_run_tags(job, init),
                                  resume_run_id=resume.get("mlflow_run_id") if resume else None)
               if ctx.is_main else contextlib.nullcontext(tracking.Tracker(None)))
        with run as tracker:
            result = fit(model, job.loss_fn, job.train_set, job.val_set, job.cfg, job.seed,
                         checkpoint=outputs.checkpoint, config_hash=digest, tracker=tracker,
                         loss_csv=outputs.loss_csv, resume=resume, ctx=ctx, desc=job.stage,
                         hold=finetune.held_part(model))
            in_sync = distributed.replicas_in_sync(model, ctx)
            if not ctx.is_main:
                return None
            model = model.cpu()
            model.load_state_dict(result.best_state)
            meta = {"kind": job.kind, "builder": dict(job.builder), "names": list(job.names),
                    "input_size": int(job.input_size), "stage": job.stage, "best_epoch": result.best_epoch,
                    "mlflow_run_id": tracker.run_id, **({"init": init} if init else {})}
            save_model(outputs.model_dir / "model.pt", model, meta)
            metrics = _metrics(result, n_params, in_sync, ctx)
            write_json(outputs.metrics_json, metrics)
            tracker.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
            tracker.log_model(model.eval(), "model")
            for path in (outputs.loss_csv, outputs.augment_png, outputs.metrics_json):
                tracker.log_artifact(path)
        return metrics
    finally:
        distributed.cleanup(ctx)


def _run_tags(job: TrainJob, init: dict[str, Any] | None) -> dict[str, Any]:
    """The model kind; a pretrained start's file and MLflow run; for the pretraining, its parent run
    `pretrain synthetic <DVC experiment or git commit>`."""
    tags: dict[str, Any] = {"model.kind": job.kind}
    if init:
        tags.update({"lmfusion.init": init["path"], "lmfusion.pretrained_run": init["mlflow_run_id"]})
    if job.pretrain:
        where = os.environ.get("DVC_EXP_NAME") or (tracking.git_commit() or "workspace")[:8]
        tags[tracking.PARENT_TAG] = tracking.group_run(f"pretrain {PRETRAINED} {where}", "pretrain")
    return tags


def _metrics(result: FitResult, n_params: int, in_sync: bool, ctx: distributed.Context) -> dict[str, Any]:
    return {
        "best_val_loss": result.best_val_loss,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "train_seconds": round(result.train_seconds, 2),
        "seconds_per_epoch": round(result.train_seconds / max(result.epochs_run, 1), 2),
        "images_per_second": round(result.images_per_second, 2),
        "peak_memory_mb": round(peak_memory_mb(ctx.device), 1),
        "parameters": n_params,
        "augment_fallbacks": result.fallbacks,
        "world_size": ctx.world_size,
        "replicas_in_sync": in_sync,
        "device": torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else "cpu",
    }


def train_stage(job: TrainJob, outputs: StageOutputs) -> None:
    """Run a training stage and print its one-line summary (rank 0)."""
    metrics = run_training(job, outputs)
    if metrics is not None:
        print(f"{job.stage}: best val loss {metrics['best_val_loss']:.5g} at epoch {metrics['best_epoch']}/"
              f"{metrics['epochs_run']}, {metrics['seconds_per_epoch']:.1f} s/epoch -> {outputs.model_dir}")
