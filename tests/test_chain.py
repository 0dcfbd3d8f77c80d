"""Chain decode: a level-off channel pulled back by its neighbours, clean images unchanged, the regressed point as
the fallback, lending, the margin, the DP against brute force, the fit on val, the model's round trip, determinism."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from lmfusion import metrics
from lmfusion.config.decoding import ChainConfig
from lmfusion.decoding import LandmarkDecoder, chain, fit, fusion, peaks
from lmfusion.decoding.peaks import argmax, refine
from lmfusion.errors import DataError, ParamError
from lmfusion.heatmaps import encode

K, H, W = 11, 112, 96
LEVEL = np.array([0.0, 16.0])  # one level down: two landmarks, same kind
LENGTHS = {"rival_sep": 6.0, "end_radius": 3.0}  # heatmap px: chain.rival_sep and end_radius at 256 px


def _truth(n: int = 1, seed: int = 0, jitter: float = 0.6) -> np.ndarray:
    """(N, K, 2) chains 8 px a landmark, discs and bodies alternating 2 px in x, some jitter per study."""
    rng = np.random.default_rng(seed)
    base = np.stack([np.where(np.arange(K) % 2 == 0, 40.0, 42.0), 8.0 + 8.0 * np.arange(K)], -1)
    return np.rint(base + rng.normal(0, jitter, size=(n, K, 2)))


def _maps(peaks: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """(N, K, H, W) float16: the maximum of Gaussian peaks, each (N, K, 2) centres with a height."""
    return np.max([encode(xy, H, W, 1.5) * h for xy, h in peaks], axis=0).astype(np.float16)


@pytest.fixture(scope="module")
def model() -> chain.ChainModel:
    return fit.fit_chain_model(_truth(40, seed=1, jitter=1.5), np.ones((40, 2)), "mm")


def _decode(hm: np.ndarray, reg: np.ndarray, model: chain.ChainModel, **kw) -> chain.ChainResult:
    settings = chain.ChainSettings(**{"prior_weight": 0.0, "pairwise_weight": 1.0, **LENGTHS, **kw})
    return chain.decode(hm, reg, np.ones((len(reg), 2)), np.full(K, 4.0), model, settings, min_product=1e-4)


def test_a_level_off_channel_is_pulled_back_by_its_neighbours(model: chain.ChainModel) -> None:
    truth = _truth()
    hm = _maps([(truth, 0.9)])
    hm[0, 5] = _maps([(truth + LEVEL, 0.95), (truth, 0.4)])[0, 5]  # L3's strongest peak sits on L4
    reg = truth + LEVEL / 2  # a regressor halfway between the two levels decides nothing
    np.testing.assert_array_equal(argmax(hm)[0][0, 5], truth[0, 5] + LEVEL)
    res = _decode(hm, reg, model)
    np.testing.assert_array_equal(res.xy_hm, truth)


def test_a_clean_image_decodes_unchanged(model: chain.ChainModel) -> None:
    truth = _truth(3, seed=2)
    hm = _maps([(truth, 0.9), (truth + [0.0, 30.0], 0.2)])
    reg = truth + [2.6, -1.8]  # the regressed point's own heatmap value is low: it does not compete
    res = _decode(hm, reg, model, prior_weight=1.0)
    np.testing.assert_array_equal(res.xy_hm, truth)
    np.testing.assert_array_equal(res.xy_hm, argmax(hm)[0])
    assert res.score.shape == res.margin.shape == (3,)


def test_a_channel_without_peak_falls_back_to_the_regressed_point(model: chain.ChainModel) -> None:
    truth = _truth()
    hm = _maps([(truth, 0.9)])
    hm[0, 3] = 0
    reg = truth + [4.0, 3.0]
    res = _decode(hm, reg, model)
    np.testing.assert_array_equal(res.xy_hm[0, 3], reg[0, 3])
    np.testing.assert_array_equal(res.xy_sub_hm[0, 3], reg[0, 3])  # the regressed point is never refined
    np.testing.assert_array_equal(np.delete(res.xy_hm, 3, 1), np.delete(truth, 3, 1))


def test_lending_offers_the_same_kind_neighbours_peaks(model: chain.ChainModel) -> None:
    truth = _truth()
    hm = _maps([(truth, 0.9)])
    hm[0, 5] = 0  # L3's channel is empty, but L2's channel also fires (weaker) on L3
    also = truth.copy()
    also[0, 3] = truth[0, 5]
    hm[0, 3] = _maps([(truth, 0.9), (also, 0.3)])[0, 3]
    reg = truth + [3.0, 4.0]
    np.testing.assert_array_equal(_decode(hm, reg, model).xy_hm[0, 5], reg[0, 5])
    np.testing.assert_array_equal(_decode(hm, reg, model, lend_penalty=1.0).xy_hm[0, 5], truth[0, 5])
    # a penalty that outweighs the regressed point's empty heatmap keeps the regressed point
    np.testing.assert_array_equal(_decode(hm, reg, model, lend_penalty=50.0).xy_hm[0, 5], reg[0, 5])


def test_margin_is_large_for_a_clean_chain_and_small_for_an_ambiguous_one(model: chain.ChainModel) -> None:
    truth = _truth(2, seed=3)
    clean = _maps([(truth, 0.9), (truth + LEVEL, 0.05)])  # (N, K, H, W)
    ambiguous = _maps([(truth, 0.9), (truth + LEVEL, 0.9)])  # the chain one level down fits just as well
    reg = truth + LEVEL / 2
    m_clean, m_amb = _decode(clean, reg, model).margin, _decode(ambiguous, reg, model).margin
    assert np.all(m_clean > 25.0)  # 11 x log(0.9 / 0.05) = 31.8 minus a little float16 rounding
    assert np.all(m_amb < 0.1)
    assert np.all(_decode(_maps([(truth, 0.9)]), truth, model).margin == np.inf)  # no rival at all


def test_dp_equals_brute_force_on_a_tiny_chain() -> None:
    rng = np.random.default_rng(4)
    unary, pair = rng.normal(size=(5, 3, 3)), rng.normal(size=(5, 2, 3, 3))  # (N, K, M), (N, K-1, M, M)
    idx, best = chain.viterbi(unary, pair)
    for i in range(5):
        scores = {c: unary[i, 0, c[0]] + unary[i, 1, c[1]] + unary[i, 2, c[2]] + pair[i, 0, c[0], c[1]]
                  + pair[i, 1, c[1], c[2]] for c in itertools.product(range(3), repeat=3)}
        top = max(scores, key=scores.get)
        assert tuple(idx[i]) == top and best[i] == pytest.approx(scores[top])
    # ties go to the lowest index
    idx, _ = chain.viterbi(np.zeros((1, 3, 3)), np.zeros((1, 2, 3, 3)))
    assert idx.tolist() == [[0, 0, 0]]


def test_subpixel_refines_own_peaks_like_heatmaps_refine(model: chain.ChainModel) -> None:
    truth = _truth(2, seed=5)
    hm = _maps([(truth + [0.3, -0.2], 0.9)])
    res = _decode(hm, truth, model)
    np.testing.assert_allclose(res.xy_sub_hm, refine(hm.astype(np.float32), res.xy_hm))
    assert np.abs(res.xy_sub_hm - (truth + [0.3, -0.2])).max() < 0.1


def test_a_plateau_gives_one_candidate_at_its_first_pixel() -> None:
    hm = np.zeros((1, 1, 8, 8), np.float32)
    hm[0, 0, 2:4, 3:6] = 0.5
    scan = chain.scan_peaks(hm, np.zeros((1, 1, 2)), 4, 1e-4)
    np.testing.assert_array_equal(scan.xy[0, 0, 0], [3.0, 2.0])
    assert np.isnan(scan.xy[0, 0, 1:]).all() and scan.val[0, 0].tolist() == [0.5, 0, 0, 0]


def _val_split(n: int = 12) -> tuple[np.ndarray, ...]:
    """Every other study's L3 channel peaks strongest a level down; the regressor is halfway."""
    truth = _truth(n, seed=6)
    hm = _maps([(truth, 0.9)])
    hm[::2, 5] = _maps([(truth[::2] + LEVEL, 0.95), (truth[::2], 0.4)])[:, 5]
    return hm, truth + LEVEL / 2, truth


def test_fit_chain_is_never_worse_on_val_than_fused_or_argmax(model: chain.ChainModel) -> None:
    hm, reg, truth = _val_split()
    settings, table = fit.fit_chain(hm, reg, truth, np.ones((12, 2)), np.full(K, 4.0), model,
                                      prior_weights=[0.0, 1.0], pairwise_weights=[0.5, 1.0], candidate_counts=[2, 4],
                                      radius_mm=2.0, min_product=1e-4, lend_penalties=[None, 2.0], **LENGTHS)
    assert len(table) == 2 + 2 * 2 * 2 * 2 and [r["mode"] for r in table[:2]] == ["fused", "argmax"]
    chosen = [r for r in table if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["sdr"] == max(r["sdr"] for r in table) == 1.0
    assert chosen[0]["sdr"] > max(table[0]["sdr"], table[1]["sdr"])
    assert settings.mode == "chain" and settings.n_candidates == chosen[0]["n_candidates"]
    json.dumps(table)
    # on a clean split nothing beats the fused decode: the earlier candidate wins the tie
    clean = _maps([(truth, 0.9)])
    settings, _ = fit.fit_chain(clean, truth, truth, np.ones((12, 2)), np.full(K, 4.0), model, [1.0], [1.0], [2],
                                  radius_mm=2.0, min_product=1e-4, **LENGTHS)
    assert settings.mode == "fused"
    res = LandmarkDecoder(np.full(K, 4.0), 1e-4, chain_model=model, chain=settings).decode_hm(clean, truth)
    np.testing.assert_array_equal(res.xy["chain"], fusion.fuse(clean, truth, np.full(K, 4.0), 1e-4).xy_hm)
    assert not np.isnan(res.margin).any()  # a margin from the joint DP (inf: no rival chain)


def test_chain_model_round_trip_units_and_degenerate_fit() -> None:
    truth = _truth(30, seed=7)
    for unit in chain.UNITS:
        m = fit.fit_chain_model(truth, np.full((30, 2), 0.7), unit)
        back = chain.ChainModel.from_dict(json.loads(json.dumps(m.to_dict())))
        assert back.unit == unit
        np.testing.assert_array_equal(back.mean, m.mean)
        np.testing.assert_array_equal(back.cov, m.cov)
    # in spine units the steps of a straight chain add up to a unit vector
    assert np.linalg.norm(m.mean.sum(0)) == pytest.approx(1.0, abs=1e-3)
    one = fit.fit_chain_model(truth[:1], np.ones((1, 2)), "mm")  # zero spread: only the regularisation
    assert np.all(np.isfinite(one.precision))
    with pytest.raises(DataError, match="keys"):
        chain.ChainModel.from_dict({**m.to_dict(), "extra": 1})
    with pytest.raises(ParamError, match="unit"):
        fit.fit_chain_model(truth, np.ones((30, 2)), "inch")


def test_spine_unit_is_scale_free(model: chain.ChainModel) -> None:
    hm, reg, truth = _val_split(4)
    spine = fit.fit_chain_model(_truth(40, seed=1), np.ones((40, 2)), "spine")
    s = chain.ChainSettings(prior_weight=0.0, pairwise_weight=1.0, **LENGTHS)
    a = chain.decode(hm, reg, np.ones((4, 2)), 4.0, spine, s, 1e-4)
    b = chain.decode(hm, reg, np.full((4, 2), 3.0), 4.0, spine, s, 1e-4)  # the same studies, 3x larger bodies
    np.testing.assert_array_equal(a.xy_hm, truth)
    np.testing.assert_array_equal(a.xy_hm, b.xy_hm)
    np.testing.assert_allclose(a.score, b.score)


def test_decode_is_deterministic_per_study_and_chunk_invariant(model: chain.ChainModel,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    truth = _truth(5, seed=8)
    hm = (_maps([(truth, 0.8), (truth + LEVEL, 0.6)]) + rng.uniform(0, 0.05, (5, K, H, W))).astype(np.float16)
    reg = truth + rng.normal(0, 3, truth.shape)
    kw = {"prior_weight": 0.5, "lend_penalty": 1.0}
    a, b = _decode(hm, reg, model, **kw), _decode(hm, reg, model, **kw)
    for f in ("xy_hm", "xy_sub_hm", "score", "margin"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    part = _decode(hm[3:], reg[3:], model, **kw)
    np.testing.assert_array_equal(part.xy_hm, a.xy_hm[3:])
    monkeypatch.setattr(peaks, "CHUNK_ELEMENTS", K * H * W * 2)  # two studies per chunk
    small = _decode(hm, reg, model, **kw)
    np.testing.assert_array_equal(small.xy_sub_hm, a.xy_sub_hm)
    np.testing.assert_array_equal(small.margin, a.margin)


def test_modes_settings_and_bad_inputs(model: chain.ChainModel) -> None:
    hm, reg, _ = _val_split(2)
    settings = chain.ChainSettings(mode="argmax", prior_weight=0.0, pairwise_weight=1.0, **LENGTHS)
    res = LandmarkDecoder(np.full(K, 4.0), 1e-4, chain_model=model, chain=settings).decode_hm(hm, reg)
    np.testing.assert_array_equal(res.xy["chain"], argmax(hm)[0])
    np.testing.assert_array_equal(res.xy["chain_subpixel"], refine(hm.astype(np.float32), argmax(hm)[0]))
    joint = _decode(hm, reg, model)  # the mode is the decoder's: the DP's own answer and margin are the same
    np.testing.assert_array_equal(res.margin, joint.margin)
    s = chain.ChainSettings(mode="fused", lend_penalty=2.0, **LENGTHS)
    assert chain.ChainSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    for bad in ({"mode": "viterbi"}, {"n_candidates": 0}, {"pairwise_weight": -1.0}, {"lend_penalty": np.inf},
                {"rival_sep": 0.0}, {"end_radius": -1.0}):
        with pytest.raises(ParamError):
            chain.ChainSettings(**{**LENGTHS, **bad})
    with pytest.raises(TypeError):
        chain.ChainSettings(mode="chain")  # no library default for the lengths: they come from the params
    with pytest.raises(ParamError, match="unknown"):
        chain.ChainSettings.from_dict({"modus": "chain", **LENGTHS})
    with pytest.raises(ParamError, match="missing keys \\['end_radius'\\]"):
        chain.ChainSettings.from_dict({"rival_sep": 6.0})
    with pytest.raises(DataError, match="expected heatmaps"):
        _decode(hm, reg[:, :5], model)
    empty = _decode(hm[:0], reg[:0], model)  # no studies: empty results, not an error
    assert empty.xy_hm.shape == (0, K, 2) and empty.margin.shape == (0,)


def test_margin_threshold_rule_and_rates() -> None:
    margins = np.array([0.5, 2.0, 3.0, 10.0, 12.0, np.inf, 1.0])
    wrong = np.array([True, False, True, False, False, False, False])
    t = fit.fit_flag_threshold(margins, wrong, budget=1.0)
    # catching both wrong studies costs 2 of 5 right ones (J = 0.6); catching 0.5 alone costs 0 (J = 0.5)
    assert 3.0 < t < 3.0 + 1e-9
    assert metrics.flag_rates(margins < t, wrong) == {"caught": 1.0, "false_alarm": 0.4}
    # no wrong study on val: the 5th percentile of the right ones' finite margins
    t = fit.fit_flag_threshold(margins, np.zeros(7, bool))
    assert t == pytest.approx(np.percentile([0.5, 2.0, 3.0, 10.0, 12.0, 1.0], 5))
    assert fit.fit_flag_threshold(np.array([np.inf]), np.array([False])) is None  # no finite margin: no threshold


def test_a_trusted_regressor_s_point_competes_with_the_peaks_by_its_reliability(model: chain.ChainModel) -> None:
    truth = _truth(2, seed=9)
    hm = _maps([(truth + LEVEL, 0.9)])  # (N, K, H, W): every channel fires a level off, nothing at the truth
    settings = chain.ChainSettings(prior_weight=0.25, pairwise_weight=0.0, trust_regressor=True, **LENGTHS)
    mm, sigma = np.ones((2, 2)), np.full(K, 4.0)
    sure = chain.decode(hm, truth, mm, sigma, model, settings, 1e-4, reliability=np.ones(K))
    np.testing.assert_array_equal(sure.xy_hm, truth)  # worth the top peak, and the prior favours it
    doubtful = chain.decode(hm, truth, mm, sigma, model, settings, 1e-4, reliability=np.full(K, 0.05))
    np.testing.assert_array_equal(doubtful.xy_hm, truth + LEVEL)
    untrusted = chain.decode(hm, truth, mm, sigma, model,
                             chain.ChainSettings(prior_weight=0.25, pairwise_weight=0.0, **LENGTHS), 1e-4,
                             reliability=np.ones(K))
    np.testing.assert_array_equal(untrusted.xy_hm, truth + LEVEL)  # the setting off: the reliability is not used
    assert fit.regressor_reliability(truth, truth + [0.0, 3.0], mm, 2.0).tolist() == [1 / 3] * K  # floored


def test_a_right_peak_ranked_fifth_needs_the_fuller_search_which_the_fit_prefers_on_a_tie(
        model: chain.ChainModel) -> None:
    truth = _truth(2, seed=11)
    hm = _maps([(truth, 0.9)])
    rivals = [(truth + LEVEL * s, h) for s, h in ((-2, 0.95), (-1, 0.9), (1, 0.85), (2, 0.8))]
    hm[:, 5] = _maps([*rivals, (truth, 0.4)])[:, 5]  # L3's right peak is only its fifth strongest
    reg = truth + [20.0, 0.0]  # a regressed point far off: no help from the fallback candidate
    narrow, full = _decode(hm, reg, model, n_candidates=4), _decode(hm, reg, model, n_candidates=8)
    np.testing.assert_array_equal(full.xy_hm, truth)
    assert (narrow.xy_hm[:, 5] != truth[:, 5]).any(axis=-1).all()
    counts = ChainConfig().grid()["candidate_counts"]
    assert counts[0] == max(counts)  # the earliest candidate wins a tie on val
    second = _maps([(truth, 0.9)])
    second[:, 5] = _maps([(truth + LEVEL, 0.95), (truth, 0.4)])[:, 5]  # ranked second: 4 and 8 both find it
    settings, table = fit.fit_chain(second, reg, truth, np.ones((2, 2)), np.full(K, 4.0), model, [0.0], [1.0],
                                    counts, radius_mm=2.0, min_product=1e-4, **LENGTHS)
    assert [r["sdr"] for r in table[2:]] == [1.0] * len(counts) and max(table[0]["sdr"], table[1]["sdr"]) < 1.0
    assert settings.mode == "chain" and settings.n_candidates == max(counts)
