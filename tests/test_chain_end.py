"""The chain's end node: the S1 body from the U-Net's sacrum map below the last landmark. A chain one level high
everywhere is pulled down by it; the end step's fit and round trip; the decoder's K + 1 maps; the fit's choice. The
end check: nothing below the last landmark looks like the one before it."""

from __future__ import annotations

import numpy as np
import pytest

from lmfusion.anatomy import sacrum_anchor
from lmfusion.config.decoding import ChainConfig
from lmfusion.decoding import LandmarkDecoder, chain, fit
from lmfusion.decoding.decoder import split_maps
from lmfusion.errors import DataError
from lmfusion.heatmaps import encode

K, H, W = 11, 160, 96
LEVEL = np.array([0.0, 16.0])  # one level: two landmarks, same kind
SIGMA = np.full(K, 4.0)
LENGTHS = {"rival_sep": 6.0, "end_radius": 3.0}  # heatmap px: chain.rival_sep and end_radius at 256 px


def _truth(n: int = 1, seed: int = 0, jitter: float = 0.6) -> np.ndarray:
    """(N, K, 2) chains 8 px a landmark from y = 30, discs and bodies alternating 2 px in x."""
    rng = np.random.default_rng(seed)
    base = np.stack([np.where(np.arange(K) % 2 == 0, 40.0, 42.0), 30.0 + 8.0 * np.arange(K)], -1)
    return np.rint(base + rng.normal(0, jitter, size=(n, K, 2)))


def _map(xy: np.ndarray, height: float = 1.0) -> np.ndarray:
    """(N, K', H, W) float16 Gaussian peaks at (N, K', 2) centres."""
    return (encode(xy, H, W, 1.5) * height).astype(np.float16)


def _high_chain(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every channel's strongest peak a level too high (the wrong count), the true one weaker; the sacrum map on the
    true S1 body. Returns the landmarks' maps (N, K, H, W) and the sacrum map (N, H, W)."""
    hm = np.maximum(_map(truth - LEVEL, 1.0), _map(truth, 0.8))
    s1 = sacrum_anchor(truth, range(K))  # (N, 2)
    return hm, _map(np.rint(s1)[:, None], 0.9)[:, 0]


@pytest.fixture(scope="module")
def model() -> chain.ChainModel:
    return fit.fit_chain_model(_truth(40, seed=1, jitter=1.5), np.ones((40, 2)), "mm")


def _decode(hm, reg, model, anchor=None, **kw) -> chain.ChainResult:
    settings = chain.ChainSettings(**{"prior_weight": 0.0, "pairwise_weight": 1.0, **LENGTHS, **kw})
    return chain.decode(hm, reg, np.ones((len(reg), 2)), SIGMA, model, settings, 1e-4, anchor=anchor)


def test_the_end_node_pulls_a_chain_one_level_high_down_to_the_truth(model: chain.ChainModel) -> None:
    truth = _truth(3, seed=2)
    hm, s1 = _high_chain(truth)
    reg = truth - LEVEL / 2  # a regressor halfway decides nothing
    np.testing.assert_array_equal(_decode(hm, reg, model).xy_hm, truth - LEVEL)  # without: one level high
    res = _decode(hm, reg, model, anchor=s1, end_node=True)
    np.testing.assert_array_equal(res.xy_hm, truth)
    assert res.xy_hm.shape == res.xy_sub_hm.shape == (3, K, 2) and res.margin.shape == (3,)


def test_a_clean_chain_is_unchanged_by_the_end_node_and_an_empty_sacrum_map(model: chain.ChainModel) -> None:
    truth = _truth(2, seed=3)
    hm = _map(truth, 0.9)
    for anchor in (sacrum_anchor(truth, range(K)), None):
        s1 = np.zeros((2, H, W), np.float16) if anchor is None else _map(np.rint(anchor)[:, None])[:, 0]
        np.testing.assert_array_equal(_decode(hm, truth, model, anchor=s1, end_node=True, prior_weight=1.0).xy_hm,
                                      truth)


def test_the_end_step_is_fitted_saved_and_optional(model: chain.ChainModel) -> None:
    assert model.has_end and model.end_mean[1] > 0  # the S1 body lies below L5-S1
    assert 4.0 < np.linalg.norm(model.end_mean) < 12.0  # about one step (8 px) on, turned as the chain turns
    back = chain.ChainModel.from_dict(model.to_dict())
    np.testing.assert_array_equal(back.end_cov, model.end_cov)
    old = {k: v for k, v in model.to_dict().items() if not k.startswith("end_")}  # a decoder.json of before
    assert not chain.ChainModel.from_dict(old).has_end
    with pytest.raises(DataError, match="end step"):
        chain.ChainModel.from_dict(old).with_end()
    two = fit.fit_chain_model(_truth(5)[:, :2], np.ones((5, 2)))  # too short to extrapolate an S1 body
    assert not two.has_end
    # the landmarks' steps are those of the model without an end: an old decoder decodes as before
    np.testing.assert_array_equal(model.with_end().mean[:-1], model.mean)


def test_the_decoder_reads_the_sacrum_map_as_the_last_of_k_plus_one_maps(model: chain.ChainModel) -> None:
    truth = _truth(2, seed=4)
    hm, s1 = _high_chain(truth)
    coords = (truth - LEVEL / 2) / [W, H]  # 0..1 (pixel centres aside: a halfway regressor either way)
    settings = chain.ChainSettings(prior_weight=0.0, pairwise_weight=1.0, end_node=True, **LENGTHS)
    decoder = LandmarkDecoder(SIGMA, 1e-4, chain_model=model, chain=settings)
    both = np.concatenate([hm, s1[:, None]], 1)  # (N, K + 1, H, W): what a U-Net with the sacrum map gives
    maps, anchor = split_maps(both, K)
    assert maps.shape == hm.shape and anchor.shape == s1.shape
    sizes = np.tile([W, H], (2, 1))
    a = decoder.decode(coords, both, sizes).xy["chain"]
    b = decoder.decode(coords, hm, sizes, anchor=s1).xy["chain"]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, truth, atol=1.0)
    assert split_maps(hm, K)[1] is None
    with pytest.raises(DataError, match="sacrum map"):
        decoder.decode(coords, hm, sizes)  # fitted with the end node, decoded without the map


def test_fit_tries_the_end_node_and_keeps_it_only_where_val_gains(model: chain.ChainModel) -> None:
    truth = _truth(8, seed=5)
    hm, s1 = _high_chain(truth)
    reg = truth - LEVEL / 2
    grid = {**ChainConfig(pairwise_weight=1.0, prior_weight=0.0, candidates=4, trust_regressor=False,
                          end_node="auto", end_check=0.0).grid(), **LENGTHS}
    assert grid["end_nodes"] == (False, True)
    settings, table = fit.fit_chain(hm, reg, truth, np.ones((8, 2)), SIGMA, model, radius_mm=2.0, min_product=1e-4,
                                    anchor=s1, **grid)
    assert settings.end_node and settings.mode == "chain"
    assert [r["end_node"] for r in table[2:]] == [False, True]
    assert table[3]["sdr"] == 1.0 > table[2]["sdr"]
    clean = _map(truth, 0.9)  # nothing to gain: the earlier candidate (no end node, or fused) wins the tie
    settings, _ = fit.fit_chain(clean, truth, truth, np.ones((8, 2)), SIGMA, model, radius_mm=2.0, min_product=1e-4,
                                anchor=s1, **grid)
    assert not settings.end_node
    with pytest.raises(DataError, match="sacrum maps"):
        fit.fit_chain(hm, reg, truth, np.ones((8, 2)), SIGMA, model, radius_mm=2.0, min_product=1e-4, **grid)
    assert ChainConfig(end_node=False).grid()["end_nodes"] == (False,)


def _collapsed_last_disc(truth: np.ndarray) -> np.ndarray:
    """(N, K, H, W) every channel's strongest peak a level too high, the true one nearly as strong: the count a
    collapsed L5-S1 invites. No sacrum map."""
    return np.maximum(_map(truth - LEVEL, 1.0), _map(truth, 0.95))


def test_the_end_check_pulls_a_chain_one_level_high_down_without_a_sacrum_map(model: chain.ChainModel) -> None:
    truth = _truth(3, seed=6, jitter=0.0)  # a smooth chain: one step beyond L4-L5 is L5
    truth[:, :, 0] = 41.0 + np.arange(3)[:, None]
    hm = _collapsed_last_disc(truth)
    reg = truth - LEVEL / 2
    np.testing.assert_array_equal(_decode(hm, reg, model).xy_hm, truth - LEVEL)  # off: one level high
    # on: the high chain's point one step beyond its end is the true L5, where the L5 map fires
    res = _decode(hm, reg, model, end_check=1.0)
    np.testing.assert_array_equal(res.xy_hm, truth)
    assert np.all(res.margin > 0)
    clean = _map(truth, 0.9)  # a clean chain: nothing beyond its end, the check changes nothing
    np.testing.assert_array_equal(_decode(clean, reg, model, end_check=5.0).xy_hm, truth)


def test_the_end_check_reads_the_map_one_step_beyond_and_nothing_outside_it() -> None:
    hm = np.zeros((1, 3, 40, 20), np.float32)
    hm[0, 1, 30, 10] = 0.75  # landmark K-2's map: one pixel at (10, 30)
    a = [[10.0, 10.0], [10.0, 16.0], [10.0, 9.0]]  # landmark K-2's candidates
    b = [[10.0, 20.0], [10.0, 38.0], [10.0, 20.0]]  # landmark K-1's
    xy = np.array([[[[10.0, 0.0]] * 3, a, b]])  # (1, 3 nodes, M = 3, 2)
    terms = chain.end_check_terms(hm, xy, radius=1.0)  # (1, M_a, M_b)
    assert terms.shape == (1, 3, 3)
    np.testing.assert_allclose(terms[0, 0, 0], np.log(0.25))  # 20 + (20 - 10) = 30: on the peak
    np.testing.assert_allclose(terms[0, 2, 0], np.log(0.25))  # 31: within the radius
    assert terms[0, 1, 0] == 0.0  # 24: nothing there
    assert np.all(terms[0, :, 1] == 0.0)  # 38 + (38 - a) is past the map's 40 rows: nothing
