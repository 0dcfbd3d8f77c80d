"""The landmark decoder: every method from one decode, chunk invariance, rescaling to original pixels, the fitted
decoder's file, and one definition of the method names (dvc.yaml's plots name the same ones)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import peaks_xy
from lmfusion.coords import rescale, to_norm
from lmfusion.decoding import DECODER_FILE, METHODS, LandmarkDecoder, fit, fusion, peaks
from lmfusion.decoding.chain import ChainSettings
from lmfusion.errors import DataError
from lmfusion.heatmaps import encode
from lmfusion.io import write_json

REPO = Path(__file__).resolve().parents[1]
H = W = 64
LENGTHS = {"rival_sep": 6.0, "end_radius": 3.0}  # heatmap px: chain.rival_sep and end_radius at 256 px


def _random_case(n: int = 3, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hm = rng.uniform(0, 0.2, size=(n, k, H, W)).astype(np.float32)
    hm += encode(rng.uniform(5, 58, size=(n, k, 2)), H, W, 2.0) * 0.7  # (N, K, H, W)
    return hm.astype(np.float16), rng.uniform(0, 63, size=(n, k, 2))


def test_decode_hm_gives_every_method_and_is_chunk_invariant(monkeypatch: pytest.MonkeyPatch) -> None:
    hm, xy_reg = _random_case(n=5, k=3, seed=1)
    sigma = np.array([2.0, 3.0, 5.0])
    out = LandmarkDecoder(sigma, 1e-4).decode_hm(hm, xy_reg)
    assert set(out.xy) == {"direct", "argmax", "argmax_subpixel", "fused", "fused_subpixel", "gated", "gated_subpixel",
                           "chain", "chain_subpixel"}
    assert all(v.shape == (5, 3, 2) for v in out.xy.values()) and out.fallback.shape == (5, 3)
    np.testing.assert_array_equal(out.xy["direct"], xy_reg)
    np.testing.assert_array_equal(out.xy["argmax"], peaks_xy(hm)[0])
    np.testing.assert_array_equal(out.xy["argmax_subpixel"], peaks_xy(hm, subpixel=True)[0])
    np.testing.assert_array_equal(out.xy["fused"], fusion.fuse(hm, xy_reg, sigma, 1e-4).xy_hm)
    np.testing.assert_array_equal(out.xy["fused_subpixel"], fusion.fuse(hm, xy_reg, sigma, 1e-4, True).xy_hm)
    assert out.fallbacks == int(out.fallback.sum())
    monkeypatch.setattr(peaks, "CHUNK_ELEMENTS", H * W * 3 * 2)  # two images per chunk
    small = LandmarkDecoder(sigma, 1e-4).decode_hm(hm, xy_reg)
    for m in out.xy:
        np.testing.assert_array_equal(small.xy[m], out.xy[m])
    with pytest.raises(DataError, match="do not match"):
        LandmarkDecoder(sigma, 1e-4).decode_hm(hm, xy_reg[:, :2])


def test_decode_rescales_every_method_to_the_original_pixels() -> None:
    hm, xy_reg = _random_case(n=2, k=3, seed=2)
    sizes = np.array([[320.0, 480.0], [512.0, 256.0]])  # (N, 2) original width, height
    decoder = LandmarkDecoder(np.array([2.0, np.inf, 0.0]), 1e-4)
    decoded = decoder.decode(to_norm(xy_reg, W, H), hm, sizes)
    in_hm = decoder.decode_hm(hm, xy_reg)
    for m in METHODS:
        expected = rescale(in_hm.xy[m], (W, H), (sizes[:, None, 0], sizes[:, None, 1]))
        np.testing.assert_allclose(decoded.xy[m], expected, atol=1e-9)
    for m in METHODS:
        assert decoded.scores[m].shape == (2, 3) and np.all((decoded.scores[m] >= 0) & (decoded.scores[m] <= 1))
    with pytest.raises(DataError, match="N, K, H, W"):
        decoder.decode(to_norm(xy_reg, W, H), hm[0], sizes)


def test_decoder_file_round_trip_keeps_infinite_sigma(tmp_path: Path) -> None:
    model = fit.fit_chain_model(np.cumsum(np.ones((4, 3, 2)), axis=1), np.ones((4, 2)))
    decoder = LandmarkDecoder(np.array([1.5, np.inf, 0.0]), 0.001, chain_model=model,
                              chain=ChainSettings(prior_weight=0.5, n_candidates=3, **LENGTHS), margin_threshold=2.5,
                              best_method="chain_subpixel", gate_ratio=0.3, gate_sep=5.0,
                              reliability=np.array([0.25, 1.0, 0.5]))
    write_json(tmp_path / DECODER_FILE, {**decoder.to_dict(), "fit": {"mode": "fixed"}})
    for path in (tmp_path / DECODER_FILE, tmp_path):  # the file, or the models folder holding it
        loaded = LandmarkDecoder.load(path)
        np.testing.assert_array_equal(loaded.sigma_hm, decoder.sigma_hm)
        np.testing.assert_allclose(loaded.chain_model.cov, model.cov)
        assert (loaded.min_product, loaded.chain, loaded.margin_threshold, loaded.best_method) == (
            decoder.min_product, decoder.chain, 2.5, "chain_subpixel")
        assert (loaded.gate_ratio, loaded.gate_sep, loaded.reliability.tolist()) == (0.3, 5.0, [0.25, 1.0, 0.5])


def test_an_old_decoder_file_reads_its_one_min_sep_and_a_missing_length_is_named(tmp_path: Path) -> None:
    model = fit.fit_chain_model(np.cumsum(np.ones((4, 3, 2)), axis=1), np.ones((4, 2)))
    decoder = LandmarkDecoder(np.full(3, 1.5), 1e-3, chain_model=model, chain=ChainSettings(**LENGTHS),
                              gate_ratio=0.3, gate_sep=4.5)
    raw = decoder.to_dict()
    assert raw["gate_sep"] == 4.5 and {raw["chain"][k] for k in LENGTHS} == {6.0, 3.0}  # heatmap px, in the file
    old = {k: v for k, v in raw["chain"].items() if k not in LENGTHS}
    write_json(tmp_path / DECODER_FILE, {**raw, "chain": {**old, "min_sep": 4.5}})  # before rival_sep and end_radius
    loaded = LandmarkDecoder.load(tmp_path).chain
    assert (loaded.rival_sep, loaded.end_radius) == (4.5, 2.25)  # as that release decoded: min_sep and min_sep / 2
    write_json(tmp_path / DECODER_FILE, {**raw, "chain": old})
    with pytest.raises(DataError, match=f"{DECODER_FILE}: field chain.rival_sep missing .*rerun the evaluate stage"):
        LandmarkDecoder.load(tmp_path)
    write_json(tmp_path / DECODER_FILE, {k: v for k, v in raw.items() if k != "gate_sep"})
    with pytest.raises(DataError, match=f"{DECODER_FILE}: field gate_sep missing"):
        LandmarkDecoder.load(tmp_path)
    with pytest.raises(DataError, match="gate_sep"):
        LandmarkDecoder(np.full(3, 1.5), 1e-3, gate_ratio=0.3)  # no library default: it comes from the params
    with pytest.raises(DataError, match="chain settings"):
        LandmarkDecoder(np.full(3, 1.5), 1e-3, chain_model=model)


def test_the_old_decoder_file_name_is_read_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    decoder = LandmarkDecoder(np.array([1.5, np.inf]), 0.001, best_method="fused")
    write_json(tmp_path / "fusion.json", decoder.to_dict())
    with caplog.at_level(logging.WARNING, logger="lmfusion"):
        loaded = LandmarkDecoder.load(tmp_path / DECODER_FILE)
    np.testing.assert_array_equal(loaded.sigma_hm, decoder.sigma_hm)
    assert "fusion.json" in caplog.text and DECODER_FILE in caplog.text
    caplog.clear()
    write_json(tmp_path / DECODER_FILE, decoder.replace(best_method="argmax").to_dict())
    assert LandmarkDecoder.load(tmp_path).best_method == "argmax" and not caplog.text  # the new name wins, silently
    with pytest.raises(OSError):
        LandmarkDecoder.load(tmp_path / "elsewhere" / DECODER_FILE)


def test_without_a_chain_model_chain_is_fused_and_nothing_is_flagged() -> None:
    hm, xy_reg = _random_case(n=2, k=3, seed=3)
    out = LandmarkDecoder(np.full(3, 2.0), 1e-4).decode(to_norm(xy_reg, W, H), hm, np.full((2, 2), 64.0))
    np.testing.assert_array_equal(out.xy["chain"], out.xy["fused"])
    assert np.isnan(out.margin).all() and not out.level_uncertain.any()


def test_the_chain_pulls_a_level_off_landmark_back_and_flags_by_margin() -> None:
    truth = np.array([[[32.0, 8.0 + 8 * k] for k in range(6)]])  # (1, K=6, 2): a chain down the middle
    hm = np.maximum(encode(truth, H, W, 1.5), 0.5 * encode(truth + [0.0, 16.0], H, W, 1.5))  # a level-down rival
    hm[0, 2] = np.maximum(0.6 * hm[0, 2], encode(truth[0, 4], H, W, 1.5))  # landmark 2 peaks two places down
    model = fit.fit_chain_model(np.repeat(truth, 5, 0) + np.random.default_rng(0).normal(0, 0.3, (5, 6, 2)),
                                      np.ones((5, 2)))
    decoder = LandmarkDecoder(np.full(6, np.inf), 1e-4, chain_model=model,
                              chain=ChainSettings(prior_weight=0.0, pairwise_weight=1.0, n_candidates=3, **LENGTHS))
    out = decoder.decode(to_norm(truth, W, H), hm.astype(np.float16), np.array([[W, H]], np.float64))
    np.testing.assert_allclose(out.xy["argmax"][0, 2], truth[0, 4])  # alone, the landmark sits a level off
    np.testing.assert_allclose(out.xy["chain"][0], truth[0])  # in the chain, its neighbours pull it back
    assert 0 < out.margin[0] < np.inf and not out.level_uncertain[0]
    assert decoder.replace(margin_threshold=out.margin[0] + 1).decode(
        to_norm(truth, W, H), hm.astype(np.float16), np.array([[W, H]], np.float64)).level_uncertain[0]


def test_dvc_plots_name_the_decoders_methods() -> None:
    plots = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    sdr = next(p for p in plots if isinstance(p, dict) and "SDR against radius (test)" in p)
    assert tuple(sdr["SDR against radius (test)"]["y"]["plots/evaluate/sdr.csv"]) == METHODS


def test_shifted_studies_lists_the_method_s_own_first() -> None:
    from types import SimpleNamespace

    from lmfusion.figures.evaluation import SHOWN, shifted_studies

    truth = np.stack([np.stack([np.full(7, 50.0), 10.0 + 10.0 * np.arange(7)], 1)] * 3)  # (3, 7, 2), 10 px apart
    xy = {m: truth.copy() for m in SHOWN}
    xy["chain"][1] += [0.0, 20.0]  # study 1: the chain two landmarks (a level) too low
    xy["fused"][2] -= [0.0, 20.0]  # study 2: fused a level too high
    split = SimpleNamespace(truth=truth, spacing=np.ones((3, 2)))
    assert shifted_studies(SimpleNamespace(xy=xy), split, "chain").tolist() == [1, 2]
    assert shifted_studies(SimpleNamespace(xy=xy), split, "fused").tolist() == [2, 1]
    clean = SimpleNamespace(xy={m: truth for m in SHOWN})
    assert shifted_studies(clean, split, "chain").size == 0


def test_gated_is_argmax_or_fused_per_landmark_by_the_gate() -> None:
    hm, xy_reg = _random_case(n=4, k=3, seed=4)
    base = LandmarkDecoder(np.full(3, 3.0), 1e-4, gate_sep=6.0)
    never, always = base.decode_hm(hm, xy_reg), base.replace(gate_ratio=0.0).decode_hm(hm, xy_reg)
    for sub in ("", "_subpixel"):
        np.testing.assert_array_equal(never.xy["gated" + sub], never.xy["argmax" + sub])
        np.testing.assert_array_equal(always.xy["gated" + sub], always.xy["fused" + sub])
    assert not never.prior_used.any() and always.prior_used.all()
    some = base.replace(gate_ratio=0.5).decode_hm(hm, xy_reg)
    ratio = peaks.rival_ratio(hm.astype(np.float32), base.gate_sep, base.min_product)
    np.testing.assert_array_equal(some.prior_used, ratio >= 0.5)
    picked = np.where(some.prior_used[..., None], some.xy["fused"], some.xy["argmax"])
    np.testing.assert_array_equal(some.xy["gated"], picked)
