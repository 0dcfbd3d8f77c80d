"""params.yaml sections as frozen dataclasses, and the one loader of params.yaml.

params.yaml is where a default is read; each section's dataclass defaults equal its values there
(tests/test_config.py checks), so a key deleted from params.yaml leaves the experiment as it was.
The sections live in `sections` (base, data, prepare, heatmap, augment), `training` (both networks and the
synthetic pretraining) and `decoding` (fusion, chain, evaluate, report). The first two are imported from here; the
decoding classes only from `lmfusion.config.decoding`, so that no training stage depends on them.

Every stage loads only the sections it declares in dvc.yaml. Loading rejects unknown keys, wrong types and
out-of-range values with a ParamError whose message names the key (`section.key`) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

import yaml

from lmfusion.config.sections import (LANDMARKS, PRETRAINED, AugmentConfig, BaseConfig, DataConfig, HeatmapConfig,
                                      InferConfig, PrepareConfig)
from lmfusion.config.training import (PretrainConfig, PretrainUnetConfig, PretrainXceptionConfig, TrainConfig,
                                      UnetConfig, XceptionConfig)
from lmfusion.errors import ParamError
from lmfusion.config.typecheck import coerce

_EAGER: dict[str, type] = {
    "base": BaseConfig,
    "data": DataConfig,
    "prepare": PrepareConfig,
    "heatmap": HeatmapConfig,
    "augment": AugmentConfig,
    "train_xception": XceptionConfig,
    "train_unet": UnetConfig,
    "infer": InferConfig,
    "pretrain": PretrainConfig,
    "pretrain_xception": PretrainXceptionConfig,
    "pretrain_unet": PretrainUnetConfig,
}
# lmfusion.config.decoding's sections: imported when one is read, so the stages that read none (the trainings) do not
# depend on that module, and a decoding param added there reruns only the stages that read it (evaluate, report)
_DECODING = {"fusion": "FusionConfig", "chain": "ChainConfig", "evaluate": "EvaluateConfig", "report": "ReportConfig"}
SECTION_NAMES = ("base", "data", "prepare", "heatmap", "augment", "train_xception", "train_unet", "infer", "fusion",
                 "chain", "evaluate", "report", "pretrain", "pretrain_xception", "pretrain_unet")


def section_class(name: str) -> type:
    """The dataclass of params section `name`."""
    if name in _DECODING:
        from lmfusion.config import decoding

        return getattr(decoding, _DECODING[name])
    return _EAGER[name]


def parse_section(name: str, raw: Any) -> Any:
    """Build and validate the dataclass for params section `name` from its raw YAML mapping."""
    cls = section_class(name)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParamError(f"param {name}: must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ParamError(f"param {name}.{unknown[0]}: unknown key; allowed keys: {', '.join(names)}")
    values = {k: coerce(v, hints[k], f"{name}.{k}") for k, v in raw.items()}
    cfg = cls(**values)
    cfg.validate(name)
    return cfg


def load_params(path: str | os.PathLike = "params.yaml", sections: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read params.yaml and return {section: config} for `sections` (all known sections when None)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamError(f"params file {path} not found") from None
    except yaml.YAMLError as e:
        raise ParamError(f"params file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ParamError(f"params file {path} must hold a mapping of sections")
    unknown = sorted(set(raw) - set(SECTION_NAMES))
    if unknown:
        raise ParamError(f"param {unknown[0]}: unknown section; allowed: {', '.join(SECTION_NAMES)}")
    wanted = SECTION_NAMES if sections is None else sections
    return {name: parse_section(name, raw.get(name)) for name in wanted}


def as_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain YAML/JSON-friendly values (tuples become lists)."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v
    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


__all__ = ["LANDMARKS", "PRETRAINED", "SECTION_NAMES", "load_params", "parse_section", "as_dict",
           "section_class", *[c.__name__ for c in _EAGER.values()], "TrainConfig"]
