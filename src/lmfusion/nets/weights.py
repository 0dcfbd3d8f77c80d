"""Starting weights of the networks: `imagenet`, which timm and smp fetch into their own caches (the only download,
and only when a param asks for it), or a local file; a colour first convolution is summed to the one input
channel."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from lmfusion.errors import LmfusionError, ParamError

log = logging.getLogger("lmfusion")

IMAGENET = "imagenet"


@contextlib.contextmanager
def fetching(key: str, what: str, save: str) -> Iterator[None]:
    """Turn any failure to download pretrained weights into one line that says how to pass a local file."""
    try:
        yield
    except Exception as e:  # huggingface_hub, requests, httpx and urllib raise many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise LmfusionError(f"param {key}: imagenet: could not fetch the ImageNet weights of {what} "
                            f"({type(e).__name__}{': ' + first[:160] if first else ''}); offline, save them where "
                            f"there is internet ({save}) and set {key} to that local file") from None


def imagenet_encoder(encoder_module: nn.Module, encoder: str, depth: int) -> None:
    """Load smp's ImageNet weights of `encoder` (first convolution summed to one channel) into the built net's
    encoder; the net itself was built and checked without them."""
    import segmentation_models_pytorch as smp

    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
    if IMAGENET not in settings:
        raise ParamError(f"param train_unet.weights: smp has no imagenet weights for encoder {encoder!r} "
                         f"(it has: {', '.join(settings) or 'none'}); use null or a local file")
    save = (f"torch.save(segmentation_models_pytorch.encoders.get_encoder('{encoder}', weights='imagenet')"
            f".state_dict(), '{encoder}.pt')")
    with fetching("train_unet.weights", f"smp's encoder {encoder}", save):
        pretrained = smp.encoders.get_encoder(encoder, in_channels=1, depth=depth, weights=IMAGENET)
    try:
        encoder_module.load_state_dict(pretrained.state_dict())
    except RuntimeError as e:
        raise ParamError(f"param train_unet.weights: the imagenet encoder {encoder} does not fit the built net "
                         f"({str(e).splitlines()[0]})") from None
    log.info("loaded the ImageNet weights of encoder %s", encoder)


def load_weights(net: nn.Module, path: str | os.PathLike, key: str, fallback: nn.Module) -> None:
    """Load a local state dict: the whole net's (also a save_model file), else matching tensors of the backbone.

    A backbone checkpoint (e.g. ImageNet weights saved with 3 input channels) loads every tensor whose name and
    shape match, a colour first convolution summed over its input channels (as timm and smp adapt theirs); the
    others keep their initialization and are logged.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"param {key}: {path} is not a local file (weights: null, imagenet or a local file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise ParamError(f"param {key}: {path} is not a readable torch state dict ({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ParamError(f"param {key}: {path} holds no state dict")
    for target in (net, fallback):
        own = target.state_dict()
        matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if len(matching) == len(own) == len(state):
            target.load_state_dict(matching)
            log.info("loaded %s weights from %s", "all" if target is net else "backbone", path)
            return
    own = fallback.state_dict()
    fitted = {k: _fit_channels(v, own[k]) for k, v in state.items() if k in own and isinstance(v, torch.Tensor)}
    matching = {k: v for k, v in fitted.items() if v is not None}
    if not matching:
        raise ParamError(f"param {key}: no tensor of {path} matches the network or its backbone by name and shape")
    fallback.load_state_dict(matching, strict=False)
    log.info("loaded %d of %d backbone tensors from %s (others keep their initialization)", len(matching), len(own),
             path)


def _fit_channels(tensor: torch.Tensor, own: torch.Tensor) -> torch.Tensor | None:
    """`tensor` when it has `own`'s shape; a colour convolution (O, C, kh, kw) summed to our one channel
    (O, 1, kh, kw); else None."""
    if tensor.shape == own.shape:
        return tensor
    if tensor.ndim == 4 and own.ndim == 4 and own.shape[1] == 1 and tensor.shape[1] > 1 and (
            tensor.shape[0] == own.shape[0] and tensor.shape[2:] == own.shape[2:]):
        return tensor.sum(1, keepdim=True)
    return None
