"""Starting a network from a pretrained one: what `weights: synthetic` points to, loading a saved lmfusion model
into a network for another landmark set, and the part that `freeze_epochs` holds still.

A saved model (lmfusion.nets.models.save_model) loads by tensor name and shape. With the same landmarks every tensor
loads; with others (11 pretrained, 5 fine-tuned) the backbone / encoder and the U-Net's decoder load and the heads,
which hold one output per landmark, start fresh. The log says which parts loaded. Both networks are fully
convolutional up to their pooling or output, so an input size other than the pretrained one works; a backbone that
does not run at the new size stops the stage with one line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from lmfusion.config import PRETRAINED
from lmfusion.errors import DataError, ParamError

log = logging.getLogger("lmfusion")

HEADS = ("head", "segmentation_head")  # the modules with one output per landmark
# builder keys a pretrained start may change (a flatten head of another input size keeps its backbone, not its head)
NOT_ARCHITECTURE = ("n_landmarks", "dropout", "extra_channels", "input_size")
BUILDER_DEFAULTS = {"coord_channels": False, "head": "pooled"}  # keys models saved before them lack


def resolve_weights(weights: str | None, key: str, pretrained_dir: str | os.PathLike | None,
                    sets: Sequence[str]) -> str | None:
    """`weights` as the builders take it: `synthetic` becomes the pretraining's model file in `pretrained_dir`.

    The pretraining must be listed in pretrain.sets: then its stages exist and DVC reruns this training when they
    change; a model file left from an earlier pretraining is never used.
    """
    if weights != PRETRAINED:
        return weights
    if PRETRAINED not in sets:
        raise ParamError(f"param {key}: {PRETRAINED} needs the synthetic pretraining stages; set pretrain.sets to "
                         f"[{PRETRAINED}] (dvc exp run -S 'pretrain.sets=[{PRETRAINED}]')")
    if pretrained_dir is None:
        raise ParamError(f"param {key}: {PRETRAINED}: this stage was given no --pretrained folder (see dvc.yaml)")
    path = Path(pretrained_dir) / PRETRAINED / "model.pt"
    if not path.is_file():
        raise DataError(f"{path}: missing; run the pretraining first (dvc repro)")
    return str(path)


def read_saved(path: str | os.PathLike) -> dict | None:
    """The {"state_dict", "meta"} of a file that save_model wrote, else None (a plain state dict or another file)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # the builders' loader reports unreadable files with their key
        return None
    ok = isinstance(saved, dict) and isinstance(saved.get("meta"), dict) and isinstance(saved.get("state_dict"), dict)
    return saved if ok else None


def load_pretrained(net: nn.Module, saved: dict, path: str | os.PathLike, *, key: str, kind: str,
                    builder: dict[str, Any], names: Sequence[str], input_size: int) -> dict[str, Any]:
    """Load a saved model's tensors into `net` (built from `builder` for `names`); returns what loaded, for the
    model's meta. Another kind or architecture is a ParamError naming `key`."""
    meta = saved["meta"]
    if meta.get("kind") != kind:
        raise ParamError(f"param {key}: {path} holds a {meta.get('kind')} network, this stage trains a {kind}")
    ours = {k: v for k, v in builder.items() if k not in NOT_ARCHITECTURE}
    theirs = {k: meta["builder"].get(k, BUILDER_DEFAULTS.get(k)) for k in ours}
    if theirs != ours:
        raise ParamError(f"param {key}: {path} is a {_describe(theirs)} network, this one a {_describe(ours)}; "
                         "pretrain with the same architecture or start from another model")
    same_names = list(meta.get("names", [])) == list(names)
    state, own = saved["state_dict"], net.state_dict()
    loaded = {k: state[k] for k, v in own.items()
              if k in state and state[k].shape == v.shape and (same_names or not _is_head(k))}
    net.load_state_dict(loaded, strict=False)
    fresh = [k for k in own if k not in loaded]
    log.info("%s: loaded %d of %d tensors from %s (%s); fresh: %s", key, len(loaded), len(own), path,
             _parts(loaded), _parts(fresh) or "none")
    if int(meta.get("input_size", input_size)) != input_size:
        _check_runs(net, input_size, key, path, int(meta["input_size"]))
    return {"path": str(path), "loaded": len(loaded), "fresh": fresh, "names": list(meta.get("names", [])),
            "input_size": meta.get("input_size"), "mlflow_run_id": meta.get("mlflow_run_id")}


def _is_head(name: str) -> bool:
    return any(part in HEADS for part in name.split("."))


def _parts(tensor_names: Sequence[str]) -> str:
    """'backbone 236, head 2': tensors counted by the network part they belong to."""
    counts: dict[str, int] = {}
    for name in tensor_names:
        part = next(p for p in name.split(".") if p != "net")  # ResizeToInput wraps a net as `net`
        counts[part] = counts.get(part, 0) + 1
    return ", ".join(f"{part} {n}" for part, n in counts.items())


def _describe(arch: dict[str, Any]) -> str:
    return "/".join(str(v) for v in arch.values())


@torch.no_grad()
def _check_runs(net: nn.Module, size: int, key: str, path: str | os.PathLike, pretrained_size: int) -> None:
    was_training = net.training
    net.eval()
    try:
        net(torch.zeros(1, 1, size, size))
    except (RuntimeError, AssertionError, ValueError) as e:  # timm asserts fixed input sizes
        raise ParamError(f"param {key}: {path} was pretrained at {pretrained_size} px and does not run at "
                         f"{size} px ({str(e).splitlines()[0]})") from None
    finally:
        net.train(was_training)
    log.info("%s: pretrained at %d px, fine-tuned at %d px", key, pretrained_size, size)


def held_part(net: nn.Module) -> nn.Module:
    """The backbone (regressor) or encoder (U-Net) that freeze_epochs holds still."""
    inner = getattr(net, "net", net)  # ResizeToInput
    return inner.backbone if hasattr(inner, "backbone") else inner.encoder


__all__ = ["held_part", "load_pretrained", "read_saved", "resolve_weights"]
