"""benchmarks/bench_randomized.py's settings: the pipeline folder's params (its own data and splits, the --set
overrides on top) and one-line errors for a bad override (the training it runs is the pipeline's own stages)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import load_benchmark
from lmfusion.config import LANDMARKS, load_params
from lmfusion.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _bench():
    return load_benchmark("bench_randomized")


def test_the_pipeline_params_take_the_overrides_and_stay_valid(tmp_path: Path) -> None:
    bench = _bench()
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    p = bench.pipeline_params(raw, ["train_unet.sacrum_channel=true", "train_unet.epochs=40",
                                    "chain.end_node=false"], val=100, test=50)
    assert p["train_unet"]["sacrum_channel"] is True and p["train_unet"]["epochs"] == 40
    assert p["chain"]["end_node"] is False and p["train_xception"] == raw["train_xception"]
    assert p["data"] == {"format": "tianchi", "path": "data", "on_invalid": "error"}
    assert (p["prepare"]["val_size"], p["prepare"]["test_size"]) == (100, 50)
    assert p["base"]["landmarks"] == list(LANDMARKS)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    checked = load_params(tmp_path / "params.yaml", ("train_unet", "chain"))  # every stage would accept it
    assert checked["train_unet"].epochs == 40
    assert raw["train_unet"]["epochs"] == 24  # the overrides copy, never change, the params they start from


@pytest.mark.parametrize("spec,match", [("epochs=3", "expected SECTION.KEY=VALUE"),
                                        ("train_unet.epochs", "expected SECTION.KEY=VALUE"),
                                        ("nosuch.epochs=3", "no section 'nosuch'")])
def test_a_bad_override_stops_with_one_line(spec: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        _bench().pipeline_params({"train_unet": {}}, [spec], val=1, test=1)
