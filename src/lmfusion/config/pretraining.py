"""The synthetic pretraining's params: what the pretrain_*@synthetic stages see.

Those stages run the pipeline's own stage scripts with `--pretrain`. They read the user's sections for what the
networks must share with their fine-tuning (prepare's windowing, equalization and sizes; heatmap; augment; the
architecture in train_xception / train_unet) and their own for the rest: the data (`lmfusion synth` studies with
the generator's 11 landmarks, pretrain.val_size studies for validation and no test split) and the training
schedule (pretrain_xception, pretrain_unet). dvc.yaml lists for each pretrain stage exactly the keys read here:
`pretrain_params` derives them from SHARED, and tests/test_pretraining.py checks dvc.yaml against it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from lmfusion import config

TRAINING = {"train_xception": "pretrain_xception", "train_unet": "pretrain_unet"}  # section -> its schedule
# The architecture a fine-tuning loads the pretrained weights into: every key of the network's section but the
# schedule (TrainConfig's keys, from TRAINING's section)
XCEPTION_ARCHITECTURE = ("model", "dropout", "loss", "head")
UNET_ARCHITECTURE = ("arch", "encoder", "encoder_depth", "decoder_channels", "peak_weight", "sacrum_channel",
                     "coord_channels")
PREPROCESSING = ("unet_size", "regressor_size", "window", "equalize", "clahe_clip", "clahe_grid")
# The keys of each user section that the pretraining reads (None: all of them); _view sets the others. Sections not
# named here are the pretraining's own (pretrain, pretrain_xception, pretrain_unet), read as they are.
SHARED: dict[str, tuple[str, ...] | None] = {
    "base": ("seed",),  # landmarks: the generator's 11
    "data": (),  # the generator's studies in the challenge's layout
    "prepare": PREPROCESSING,  # validation: pretrain.val_size studies; no test split
    "heatmap": None,
    "augment": None,
    "train_xception": XCEPTION_ARCHITECTURE,
    "train_unet": UNET_ARCHITECTURE,
}
_OWN = {"prepare": ("pretrain.val_size",), **{s: (own,) for s, own in TRAINING.items()}}  # what _view reads instead


def load_params(path: str | os.PathLike, sections: tuple[str, ...], pretrain: bool = False) -> dict[str, Any]:
    """A stage's sections as params.yaml has them, or (pretrain) as the synthetic pretraining sees them."""
    if not pretrain:
        return config.load_params(path, sections)
    own = ("pretrain", *(TRAINING[s] for s in sections if s in TRAINING))
    p = config.load_params(path, tuple(dict.fromkeys(sections + own)))
    return {s: _view(s, p) for s in sections}


def _view(section: str, p: dict[str, Any]) -> Any:
    """Section `section` as the pretraining sees it: built from SHARED's keys of the user's, so that it reads no
    key that dvc.yaml does not list."""
    cfg, keys = p[section], SHARED.get(section)
    if keys is None:
        return cfg
    shared = {k: getattr(cfg, k) for k in keys}
    if section == "base":
        return config.BaseConfig(**shared, landmarks=config.LANDMARKS)
    if section == "data":
        return config.DataConfig(**shared, format="tianchi", on_invalid="error")
    if section == "prepare":
        return config.PrepareConfig(**shared, val_size=p["pretrain"].val_size, test_size=0)
    schedule = p[TRAINING[section]]
    return type(cfg)(**shared, **{f.name: getattr(schedule, f.name) for f in dataclasses.fields(config.TrainConfig)})


def pretrain_params(params: Sequence[str]) -> list[str]:
    """The params a pretrain_* stage reads (dvc.yaml's `params`), from those of the stage whose script it runs with
    --pretrain (prepare, heatmaps, train_*): SHARED's keys of each section, then the pretraining's own keys that
    replace the rest. The twin's pretrain.sets is dropped: it finds the model of `weights: synthetic`, which a
    pretraining refuses."""
    out: list[str] = []
    for param in params:
        section, _, key = param.partition(".")
        keys = SHARED.get(section, ())
        out += [param] if keys is None else [f"{section}.{k}" for k in keys if key in ("", k)]
        out += [k for k in _OWN.get(section, ()) if k not in out]
    return out


def stage_name(stage: str, pretrain: bool) -> str:
    """The MLflow stage name (and params section of the schedule): train_unet, or pretrain_unet."""
    return TRAINING[stage] if pretrain else stage


__all__ = ["PREPROCESSING", "SHARED", "TRAINING", "UNET_ARCHITECTURE", "XCEPTION_ARCHITECTURE", "load_params",
           "pretrain_params", "stage_name"]
