"""params.yaml validation: unknown keys, types, ranges, list -> tuple, fusion.sigma, and a stage's exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmfusion.config import (LANDMARKS, SECTION_NAMES, PrepareConfig, UnetConfig, as_dict, load_params,
                             parse_section)
from lmfusion.config.decoding import FusionConfig
from lmfusion.errors import ParamError

REPO = Path(__file__).resolve().parents[1]


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params))
    return path


def test_repository_params_load_with_every_section() -> None:
    params = load_params(REPO / "params.yaml")
    assert set(params) == set(SECTION_NAMES)
    assert params["base"].landmarks == LANDMARKS
    assert isinstance(params["prepare"], PrepareConfig)


def test_defaults_when_section_missing(tmp_path: Path) -> None:
    params = load_params(write_params(tmp_path / "p.yaml", {"base": {"seed": 3}}), ("base", "prepare"))
    assert params["base"].seed == 3 and params["prepare"] == PrepareConfig()


@pytest.mark.parametrize("section, raw, key", [
    ("prepare", {"unet_sise": 256}, "prepare.unet_sise"),
    ("heatmap", {"sigma": 2.0, "sigmaa": 1}, "heatmap.sigmaa"),
    ("train_unet", {"encoder_name": "resnet18"}, "train_unet.encoder_name"),
])
def test_unknown_key_names_section_and_key(section: str, raw: dict, key: str) -> None:
    with pytest.raises(ParamError, match=f"param {key}: unknown key; allowed keys: "):
        parse_section(section, raw)


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="param prepar: unknown section"):
        load_params(write_params(tmp_path / "p.yaml", {"prepar": {}}))


@pytest.mark.parametrize("section, raw, key", [
    ("prepare", {"unet_size": "256"}, "prepare.unet_size"),
    ("prepare", {"unet_size": 256.0}, "prepare.unet_size"),
    ("augment", {"rotate": "yes"}, "augment.rotate"),
    ("base", {"seed": True}, "base.seed"),
    ("prepare", {"window": [0.5]}, "prepare.window"),
    ("prepare", {"equalize": "gamma"}, "prepare.equalize"),
    ("data", {"on_invalid": "ignore"}, "data.on_invalid"),
    ("train_xception", {"lr": float("nan")}, "train_xception.lr"),
])
def test_wrong_type_names_key(section: str, raw: dict, key: str) -> None:
    with pytest.raises(ParamError, match=f"param {key}: must be"):
        parse_section(section, raw)


@pytest.mark.parametrize("section, raw, key", [
    ("prepare", {"unet_size": 100}, "prepare.unet_size"),
    ("prepare", {"window": [99.0, 1.0]}, "prepare.window"),
    ("prepare", {"val_size": 0}, "prepare.val_size"),
    ("heatmap", {"sigma": 0.1}, "heatmap.sigma"),
    ("train_unet", {"epochs": 3, "warmup_epochs": 3}, "train_unet.warmup_epochs"),
    ("train_unet", {"encoder_depth": 4}, "train_unet.decoder_channels"),
    ("evaluate", {"target_radius": 3.0}, "evaluate.target_radius"),
    ("chain", {"end_check": -1.0}, "chain.end_check"),
    ("base", {"landmarks": ["L1", "L1"]}, "base.landmarks"),
    ("train_xception", {"weights": "no/such/file.pt"}, "train_xception.weights"),
])
def test_out_of_range_names_key(section: str, raw: dict, key: str) -> None:
    with pytest.raises(ParamError, match=f"param {key}: must be"):
        parse_section(section, raw)


def test_lists_become_tuples_and_back() -> None:
    cfg = parse_section("train_unet", {"decoder_channels": [64, 32, 16, 8, 8]})
    assert isinstance(cfg, UnetConfig) and cfg.decoder_channels == (64, 32, 16, 8, 8)
    prep = parse_section("prepare", {"window": [1, 99]})
    assert prep.window == (1.0, 99.0) and all(isinstance(v, float) for v in prep.window)
    assert as_dict(prep)["window"] == [1.0, 99.0]
    assert parse_section("base", {"landmarks": ["L1", "L2"]}).landmarks == ("L1", "L2")


def test_fusion_sigma_auto_or_number() -> None:
    assert parse_section("fusion", {"sigma": "auto"}).sigma == "auto"
    assert parse_section("fusion", {"sigma": 3}).sigma == 3.0
    assert parse_section("fusion", {}) == FusionConfig()
    with pytest.raises(ParamError, match="param fusion.sigma: must be"):
        parse_section("fusion", {"sigma": "wide"})
    with pytest.raises(ParamError, match="param fusion.sigma"):
        parse_section("fusion", {"sigma": -1.0})


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("prepare: [unclosed\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
    with pytest.raises(ParamError, match="not found"):
        load_params(tmp_path / "none.yaml")


def test_stage_with_bad_param_exits_2_with_one_line(tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", {"prepare": {"unet_size": 100}})
    proc = subprocess.run(
        [sys.executable, str(REPO / "stages" / "prepare.py"), str(tmp_path / "data"), str(tmp_path / "out"),
         str(tmp_path / "m.json"), str(tmp_path / "m.png"), "--params", str(params)],
        capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: param prepare.unet_size: must be a multiple of 32")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("section", SECTION_NAMES)
def test_dataclass_defaults_equal_params_yaml(section: str) -> None:
    """params.yaml is the source of every default: deleting a key must not change the experiment."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert parse_section(section, {}) == parse_section(section, raw[section])


def test_rsna2024_format_and_imagenet_weights_are_accepted() -> None:
    assert parse_section("data", {"format": "rsna2024"}).format == "rsna2024"
    assert parse_section("train_xception", {"weights": "imagenet"}).weights == "imagenet"
    assert parse_section("train_unet", {"weights": "imagenet"}).weights == "imagenet"
    with pytest.raises(ParamError, match="param train_unet.weights: must be null, imagenet, synthetic or an existing local file"):
        parse_section("train_unet", {"weights": "imagenet21k"})


def test_data_format_challenge_is_accepted_as_written() -> None:
    """The alias is resolved by the readers' table (tests/test_readers.py); the config only checks the name."""
    assert parse_section("data", {"format": "challenge"}).format == "challenge"
    with pytest.raises(ParamError, match="data.format"):
        parse_section("data", {"format": "kaggle"})


def test_no_training_stage_imports_the_decoding_sections() -> None:
    """A fusion, chain, evaluate or report param added or checked reruns the stages that read it, never a training."""
    from lmfusion import deps

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        reads = {str(p).split(".")[0] for p in stage.get("params", [])}
        listed = "src/lmfusion/config/decoding.py" in stage["deps"]
        assert listed == bool(reads & {"fusion", "chain", "evaluate", "report"}), name
    train = deps.stage_deps(REPO / "stages" / "train_unet.py", REPO)
    assert "src/lmfusion/config/decoding.py" not in train
