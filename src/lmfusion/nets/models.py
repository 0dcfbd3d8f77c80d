"""The two networks, as wiring: a timm backbone with our own head, and a segmentation_models_pytorch net.

Legend: N images, K landmarks, S input side, H x W heatmap pixels (= S x S here).
Weights: null (from scratch), a local file, or `imagenet`, which timm and smp fetch into their own caches (the only
download, and only when a param asks for it); the first convolution is adapted to the one input channel
(lmfusion.nets.weights).
"""

from __future__ import annotations

import difflib
import math
import inspect
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmfusion.errors import DataError, ParamError
from lmfusion.io import atomic_path
from lmfusion.nets.weights import IMAGENET, fetching, imagenet_encoder, load_weights

log = logging.getLogger("lmfusion")

KINDS = ("regressor", "heatmap")
HEADS = ("pooled", "flatten")  # the regressor's: see build_regressor
# initial output logit of the U-Net: probability 0.01. From scratch, a net starting at 0.5 everywhere spends
# its first epochs only pushing the background down before any landmark peak forms.
HEATMAP_PRIOR_LOGIT = math.log(0.01 / 0.99)


class CoordinateRegressor(nn.Module):
    """Backbone features -> dropout -> linear to K x 2 normalized coordinates.

    `in_features`: what the backbone gives per image once flattened; its pooled `num_features` unless the backbone
    keeps its last feature map (head `flatten`). A kept map is divided by its number of positions, so the linear
    layer starts as a weighted mean: Adam moves each weight by about the learning rate whatever the fan-in, and
    over the 16 positions of a 128 px input the unscaled output moved 16 times as far per step (it diverged at the
    one-cycle peak).
    """

    def __init__(self, backbone: nn.Module, n_landmarks: int, dropout: float, in_features: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.n_landmarks = n_landmarks
        self.dropout = nn.Dropout(dropout)
        in_features = in_features or backbone.num_features
        self.scale = backbone.num_features / in_features  # 1 / positions of a kept map; 1 when pooled
        self.head = nn.Linear(in_features, n_landmarks * 2)
        # start at the image centre (the mean of a 0..1 target): with the default init, the 2048 pooled features of
        # a fresh backbone put outputs about +-0.5 off, and from scratch the regressor then barely moves; tiny (not
        # zero) weights keep the gradient flowing into the backbone from the first step
        nn.init.normal_(self.head.weight, std=1e-4)
        nn.init.constant_(self.head.bias, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x).flatten(1) * self.scale  # (N, F), or (N, F x h x w) from a kept feature map
        return self.head(self.dropout(features)).view(-1, self.n_landmarks, 2)  # (N, K, 2)


def _suggest(name: str, valid: list[str], n: int = 5) -> str:
    close = difflib.get_close_matches(name, valid, n=n, cutoff=0.5)
    return ", ".join(close or valid[:n])


def build_regressor(model: str, n_landmarks: int, dropout: float, weights: str | None = None,
                    head: str = "pooled", input_size: int | None = None) -> nn.Module:
    """A timm backbone (any model name, one input channel, no classifier) with dropout and a linear head.

    The head is our own because some backbones (legacy_xception) ignore timm's drop_rate. `head`: `pooled` (timm's
    global average, the paper's Xception + FC) or `flatten` (the linear layer sees the last feature map whole, so
    where a feature lies reaches it; needs `input_size`). Forward: (N, 1, S, S) -> (N, K, 2) normalized coordinates.
    """
    import timm

    if head not in HEADS:
        raise ParamError(f"param train_xception.head: {head!r} is not one of {', '.join(HEADS)}")
    if head == "flatten" and not input_size:
        raise ValueError("head 'flatten' needs the input size")

    if not timm.is_model(model):
        raise ParamError(f"param train_xception.model: unknown timm model {model!r}; close names: "
                         f"{_suggest(model, timm.list_models())}")
    pool = {"global_pool": ""} if head == "flatten" else {}  # else each model's own pooling (ViTs: a token)
    if weights == IMAGENET:
        if not timm.is_model_pretrained(model):
            raise ParamError(f"param train_xception.weights: timm has no pretrained weights for {model!r}; use null "
                             "or a local file")
        save = f"torch.save(timm.create_model('{model}', pretrained=True).state_dict(), '{model}.pt')"
        with fetching("train_xception.weights", f"timm's {model}", save):
            backbone = timm.create_model(model, pretrained=True, in_chans=1, num_classes=0, **pool)
    else:
        backbone = timm.create_model(model, pretrained=False, in_chans=1, num_classes=0, **pool)
    in_features = None
    if head == "flatten":
        with torch.no_grad():
            in_features = backbone.eval()(torch.zeros(1, 1, input_size, input_size)).numel()
        backbone.train()
    net = CoordinateRegressor(backbone, n_landmarks, dropout, in_features)
    if weights and weights != IMAGENET:
        load_weights(net, weights, "train_xception.weights", fallback=net.backbone)
    return net


def _arch_class(arch: str) -> type:
    import segmentation_models_pytorch as smp

    archs = smp.MODEL_ARCHITECTURES_MAPPING  # lower-case name -> class
    cls = archs.get(arch.lower())
    if cls is None:
        names = [c.__name__ for c in archs.values()]
        raise ParamError(f"param train_unet.arch: unknown segmentation_models_pytorch architecture {arch!r}; "
                         f"valid: {', '.join(names)}")
    return cls


def build_unet(arch: str, encoder: str, n_landmarks: int, encoder_depth: int,
                      decoder_channels: tuple[int, ...] | list[int], weights: str | None = None,
                      extra_channels: int = 0, coord_channels: bool = False) -> nn.Module:
    """A segmentation_models_pytorch net with one input channel and one output map per landmark.

    Forward: (N, 1, S, S) -> (N, K + extra_channels, S, S) logits (resized to the input where an architecture's
    output stride differs); the first K are the landmarks', the extra ones auxiliary targets (the sacrum anchor).
    `decoder_channels` (one per encoder stage) goes only to the architectures whose decoder takes such a list
    (Unet, UnetPlusPlus, MAnet); the others use their defaults. `coord_channels`: the encoder also sees each
    pixel's x and y in -1..1 (CoordConv), so it knows where in the field of view a vertebra lies.
    """
    from segmentation_models_pytorch.encoders import get_encoder_names

    cls = _arch_class(arch)
    encoders = get_encoder_names()
    if encoder not in encoders:
        raise ParamError(f"param train_unet.encoder: unknown segmentation_models_pytorch encoder {encoder!r}; "
                         f"close names: {_suggest(encoder, encoders)}")
    kwargs: dict[str, Any] = {"encoder_name": encoder, "encoder_weights": None,
                              "in_channels": 3 if coord_channels else 1, "classes": n_landmarks + extra_channels, "encoder_depth": encoder_depth}
    default = inspect.signature(cls).parameters.get("decoder_channels")
    if default is not None and isinstance(default.default, (list, tuple)):
        kwargs["decoder_channels"] = list(decoder_channels)
    try:
        net = cls(**kwargs)
    except (ValueError, TypeError, KeyError, AssertionError) as e:
        raise ParamError(f"param train_unet: {cls.__name__} with encoder {encoder} and encoder_depth "
                         f"{encoder_depth} cannot be built: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                         ) from None
    encoder_module = net.encoder
    head = [m for m in net.segmentation_head.modules() if isinstance(m, nn.Conv2d)][-1]
    if head.bias is not None:  # start at "background everywhere", as a sparse map mostly is
        nn.init.constant_(head.bias, HEATMAP_PRIOR_LOGIT)
    if coord_channels:
        net = CoordInput(net)
    try:
        side = _probe(net, 64)
    except RuntimeError as e:
        raise ParamError(f"param train_unet: {cls.__name__} with encoder {encoder} does not run on a 64 px input "
                         f"({str(e).splitlines()[0]})") from None
    if side != 64:
        net = ResizeToInput(net)
    if weights == IMAGENET:
        imagenet_encoder(encoder_module, encoder, encoder_depth)
    elif weights:
        load_weights(net, weights, "train_unet.weights", fallback=encoder_module)
    return net


class CoordInput(nn.Module):
    """Appends two channels to the input, each pixel's x and y in -1..1 (CoordConv), before the wrapped net."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, dtype=x.dtype, device=x.device).view(1, 1, h, 1).expand(n, 1, h, w)
        xs = torch.linspace(-1, 1, w, dtype=x.dtype, device=x.device).view(1, 1, 1, w).expand(n, 1, h, w)
        return self.net(torch.cat([x, xs, ys], 1))


class ResizeToInput(nn.Module):
    """Bilinear resize of the logits to the input size, for architectures whose output has another stride (e.g.
    FPN below encoder_depth 5): the targets and decoders expect one map pixel per input pixel."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)  # (N, K, H', W')
        return nn.functional.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _probe(net: nn.Module, size: int) -> int:
    """Run a size x size input through the net in eval mode (no random numbers, no running-stat updates); freeze
    the parameters that get no gradient and return the output's side.

    smp keeps the encoder stages below encoder_depth (e.g. resnet layer3-4 at depth 3) although they never run;
    frozen, they cost DistributedDataParallel no search for unused parameters and stay as initialized, as they
    would in a single process.
    """
    was_training = net.training
    net.eval()
    out = net(torch.zeros(1, 1, size, size))
    out.float().mean().backward()
    for p in net.parameters():
        if p.grad is None:
            p.requires_grad_(False)
        p.grad = None
    net.train(was_training)
    return int(out.shape[-1])


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or similar) wrapper."""
    return model.module if hasattr(model, "module") else model


def save_model(path: str | os.PathLike, model: nn.Module, meta: dict) -> None:
    """Save {"state_dict", "meta"} atomically. meta: kind ('regressor'|'heatmap'), builder (the builder's keyword
    arguments), names (landmarks), input_size, and anything else JSON-like (e.g. mlflow_run_id)."""
    if meta.get("kind") not in KINDS or not isinstance(meta.get("builder"), dict):
        raise ValueError(f"meta needs kind in {KINDS} and builder kwargs, got {meta}")
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)


def build_from_meta(meta: dict) -> nn.Module:
    """A fresh network (no weights loaded) from a saved model's meta."""
    kwargs = {k: v for k, v in meta["builder"].items() if k != "weights"}
    return build_regressor(**kwargs) if meta["kind"] == "regressor" else build_unet(**kwargs)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a saved network from its meta and load its weights; returns (model in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: model file missing; train it first (dvc repro)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = saved["meta"], saved["state_dict"]
        if meta.get("kind") not in KINDS:
            raise KeyError("kind")
    except Exception as e:  # a truncated or foreign file raises many types
        raise DataError(f"{path}: not a readable lmfusion model file ({type(e).__name__}: {e})") from None
    model = build_from_meta(meta)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(f"{path}: weights do not fit the network in its meta ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), meta
