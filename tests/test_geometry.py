"""Heatmap geometry: the pixel-length params, given at heatmap.reference_size, in pixels of the heatmap at hand;
exactly today's lengths at the default 192 px, the paper's scale by prepare.unet_size alone, a wrong reference size
stopping a stage, and the fitted decoder carrying the scaled lengths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import TINY_PARAMS
from lmfusion.config import load_params, parse_section
from lmfusion.config.geometry import decode_geometry, target_sigma, to_heatmap_px
from lmfusion.errors import DataError, ParamError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("size, expected", [
    (192, (1.5, 4.5, 4.5, 2.25)),  # the default prepare.unet_size: the lengths of before, exactly
    (256, (2.0, 6.0, 6.0, 3.0)),  # the reference size: the params as written
    (512, (4.0, 12.0, 12.0, 6.0)),  # the paper's input size
])
def test_the_repository_params_scale_with_the_heatmap_size(size: int, expected: tuple[float, ...]) -> None:
    p = load_params(REPO / "params.yaml", ("heatmap", "fusion", "chain"))
    g = decode_geometry(p["heatmap"], p["fusion"], p["chain"], size)
    assert (target_sigma(p["heatmap"], size), g.gate_sep, g.rival_sep, g.end_radius) == expected  # exact floats
    assert g.fusion_sigma is None  # fusion.sigma: auto is fitted on val, in heatmap px


def test_a_numeric_fusion_sigma_and_another_reference_size() -> None:
    heatmap = parse_section("heatmap", {"sigma": 1.2, "reference_size": 512})  # the paper's sigma at its size
    fusion, chain = parse_section("fusion", {"sigma": 8}), parse_section("chain", {})
    g = decode_geometry(heatmap, fusion, chain, 192)
    assert g.fusion_sigma == 3.0 and g.gate_sep == 2.25 and target_sigma(heatmap, 192) == pytest.approx(0.45)
    assert decode_geometry(heatmap, fusion, chain, 512).fusion_sigma == 8.0
    with pytest.raises(DataError, match="sizes must be >= 1"):
        to_heatmap_px(2.0, 0, 256)


def test_the_tiny_pipeline_keeps_its_target_sigma() -> None:
    heatmap = parse_section("heatmap", TINY_PARAMS["heatmap"])
    assert target_sigma(heatmap, TINY_PARAMS["prepare"]["unet_size"]) == 1.5


@pytest.mark.parametrize("section, raw, key", [
    ("heatmap", {"reference_size": 0}, "heatmap.reference_size"),
    ("heatmap", {"reference_size": -256}, "heatmap.reference_size"),
    ("heatmap", {"sigma": -2.0}, "heatmap.sigma"),
    ("fusion", {"gate_sep": 0.0}, "fusion.gate_sep"),
    ("fusion", {"sigma": -1.0}, "fusion.sigma"),
    ("chain", {"rival_sep": -6.0}, "chain.rival_sep"),
    ("chain", {"end_radius": -3.0}, "chain.end_radius"),
])
def test_a_wrong_length_or_reference_size_names_its_key(section: str, raw: dict, key: str) -> None:
    with pytest.raises(ParamError, match=f"param {key}: must be"):
        parse_section(section, raw)


def test_the_old_min_sep_is_an_unknown_key_naming_the_new_ones() -> None:
    with pytest.raises(ParamError, match="param chain.min_sep: unknown key; allowed keys: .*rival_sep.*end_radius"):
        parse_section("chain", {"min_sep": 4.5})


@pytest.mark.parametrize("stage, args", [
    ("heatmaps", ["prepared", "heatmaps", "preview.png"]),
    ("evaluate", ["prepared", "outputs", "decoder.json", "evaluate.json", "plots", "runs.json"]),
])
def test_a_zero_reference_size_stops_the_stage_with_one_line(tmp_path: Path, stage: str, args: list[str]) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"heatmap": {"reference_size": 0}}))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py"), *args, "--params", str(params)],
                          capture_output=True, text=True, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: param heatmap.reference_size: must be")


def test_the_fitted_decoder_carries_the_scaled_lengths() -> None:
    from lmfusion.decoding.fit import fit_decoder
    from lmfusion.decoding.outputs import SplitOutputs
    from lmfusion.heatmaps import encode

    rng = np.random.default_rng(0)
    n, k, size = 6, 3, 64
    truth = np.stack([rng.uniform(20, 44, (n, k)), 12.0 + 16.0 * np.arange(k) + rng.normal(0, 1, (n, k))], -1)
    val = SplitOutputs(rows=np.arange(n), coords_norm=(truth + rng.normal(0, 1, truth.shape) + 0.5) / size,
                       heatmaps=encode(truth, size, size, 1.5, np.float16), truth=truth,
                       sizes=np.full((n, 2), float(size)), spacing=np.ones((n, 2)))
    p = {s: parse_section(s, raw) for s, raw in (("heatmap", {}), ("fusion", {"sigma": 4.0, "gate": 0.3}),
                                                 ("chain", {"end_node": False, "candidates": 4}))}
    geometry = decode_geometry(p["heatmap"], p["fusion"], p["chain"], size)
    decoder, fit, _ = fit_decoder(val, truth, np.ones((n, 2)), p["fusion"], p["chain"], 8.0, geometry)
    assert (decoder.gate_sep, decoder.chain.rival_sep, decoder.chain.end_radius) == (1.5, 1.5, 0.75)
    np.testing.assert_array_equal(decoder.sigma_hm, np.full(k, 1.0))  # 4 px at 256 is 1 px at 64
    assert fit["sigma_hm"] == 1.0 and decoder.to_dict()["chain"]["rival_sep"] == 1.5  # decoder.json: heatmap px
