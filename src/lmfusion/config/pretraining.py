"""The synthetic pretraining's params: what the pretrain_*@synthetic stages see.

Those stages run the pipeline's own stage scripts with `--pretrain`. They read the user's sections for what the
networks must share with their fine-tuning (prepare's windowing, equalization and sizes; heatmap; augment; the
architecture in train_xception / train_unet) and their own for the rest: the data (`lmfusion synth` studies with
the generator's 11 landmarks, pretrain.val_size studies for validation and no test split) and the training
schedule (pretrain_xception, pretrain_unet). dvc.yaml lists for each pretrain stage exactly the keys read here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from lmfusion import config

TRAINING = {"train_xception": "pretrain_xception", "train_unet": "pretrain_unet"}  # section -> its schedule


def load_params(path: str | os.PathLike, sections: tuple[str, ...], pretrain: bool = False) -> dict[str, Any]:
    """A stage's sections as params.yaml has them, or (pretrain) as the synthetic pretraining sees them."""
    if not pretrain:
        return config.load_params(path, sections)
    own = ("pretrain", *(TRAINING[s] for s in sections if s in TRAINING))
    p = config.load_params(path, tuple(dict.fromkeys(sections + own)))
    return {s: _view(s, p) for s in sections}


def _view(section: str, p: dict[str, Any]) -> Any:
    cfg = p[section]
    if section == "base":
        return dataclasses.replace(cfg, landmarks=config.LANDMARKS)
    if section == "data":
        return config.DataConfig(format="tianchi", path=cfg.path, on_invalid="error")
    if section == "prepare":
        return dataclasses.replace(cfg, val_size=p["pretrain"].val_size, test_size=0)
    if section in TRAINING:
        schedule = p[TRAINING[section]]
        return dataclasses.replace(cfg, **{f.name: getattr(schedule, f.name)
                                           for f in dataclasses.fields(config.TrainConfig)})
    return cfg


def stage_name(stage: str, pretrain: bool) -> str:
    """The MLflow stage name (and params section of the schedule): train_unet, or pretrain_unet."""
    return TRAINING[stage] if pretrain else stage


__all__ = ["TRAINING", "load_params", "stage_name"]
