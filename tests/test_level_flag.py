"""The level flag: the chain's end fit (its score over the steps into and out of its last landmark), the flag rule on
the margin and the end fit, the thresholds fitted on val (against wrong studies, or at chain.flag_rate of the right
ones), their params, and the decoder file's round trip (an older file without the end threshold flags as before)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lmfusion import metrics
from lmfusion.api import LandmarkPredictor
from lmfusion.cli.outputs import summary_row
from lmfusion.config import PrepareConfig, parse_section
from lmfusion.coords import to_norm
from lmfusion.decoding import DECODER_FILE, LandmarkDecoder, chain, fit
from lmfusion.decoding.chain_fit import fit_flag_threshold
from lmfusion.decoding.fit import fit_flag
from lmfusion.decoding.outputs import SplitOutputs
from lmfusion.errors import DataError, ParamError
from lmfusion.heatmaps import encode
from lmfusion.io import write_json

K, H, W = 11, 160, 96
LENGTHS = {"rival_sep": 6.0, "end_radius": 3.0}  # heatmap px
TURN = np.array([8.0, 6.0])  # the last step, L5 -> L5-S1, turns: the lumbosacral junction


def _spine(n: int, seed: int, jitter: float = 0.6) -> np.ndarray:
    """(N, K + 2, 2) positions of two more levels above the K landmarks: 8 px a level, discs and bodies alternating
    2 px in x, the last step turned by TURN. The landmarks are [:, 2:], a chain a level high [:, :K]."""
    j = np.arange(K + 2)
    base = np.stack([np.where(j % 2 == 0, 40.0, 42.0), 14.0 + 8.0 * j], -1)
    base[-1] = base[-2] + TURN
    return np.rint(base + np.random.default_rng(seed).normal(0, jitter, (n, K + 2, 2)))


class _Names:
    """The networks' names alone: `LandmarkPredictor.prediction` turns a decode made here into a Prediction."""

    names = tuple(f"p{k}" for k in range(K))


def _maps(xy: np.ndarray) -> np.ndarray:
    return (encode(xy, H, W, 1.5) * 0.9).astype(np.float16)  # (N, K, H, W)


@pytest.fixture(scope="module")
def model() -> chain.ChainModel:
    return fit.fit_chain_model(_spine(40, seed=1, jitter=1.0)[:, 2:], np.ones((40, 2)), "mm")


def _decoder(model: chain.ChainModel, **kw) -> LandmarkDecoder:
    settings = chain.ChainSettings(prior_weight=0.0, pairwise_weight=1.0, n_candidates=3, end_check=1.0, **LENGTHS)
    return LandmarkDecoder(np.full(K, np.inf), 1e-4, chain_model=model, chain=settings, **kw)


def _decode(decoder: LandmarkDecoder, xy_maps: np.ndarray, xy_reg: np.ndarray):
    sizes = np.tile([[W, H]], (len(xy_reg), 1)).astype(np.float64)
    return decoder.decode(to_norm(xy_reg, W, H), _maps(xy_maps), sizes)


def test_the_end_fit_is_the_chosen_chain_s_score_over_the_steps_at_its_last_landmark(model: chain.ChainModel) -> None:
    spine = _spine(3, seed=2)
    hm, reg = _maps(spine[:, 2:]), spine[:, 2:].astype(np.float64)
    s1 = _maps(spine[:, -1:] + TURN)[:, 0]  # (N, H, W) a sacrum map one more turned step below
    for end_node, anchor in ((False, None), (True, s1)):
        settings = chain.ChainSettings(prior_weight=0.0, pairwise_weight=0.5, n_candidates=3, end_check=1.0,
                                       end_node=end_node, **LENGTHS)
        inputs = chain.check_inputs(hm, reg, np.ones((3, 2)), np.full(K, np.inf), model)
        nodes = chain.prepare(inputs, chain.scan_peaks(hm, reg, 3, 1e-4), settings, 1e-4, anchor=anchor)
        res = chain.solve(nodes, settings)
        pair = 0.5 * nodes.pair
        pair[:, K - 2] += nodes.check
        unary = chain.unary_scores(nodes.cand, nodes.xy_reg, nodes.sigma, 0.0, None)
        idx, _ = chain.viterbi(unary, pair)
        rows = np.arange(3)
        expected = sum(pair[rows, j, idx[:, j], idx[:, j + 1]] for j in range(K - 2, K - 1 + end_node))
        np.testing.assert_allclose(res.end_fit, expected)
        assert np.all(res.end_fit <= 0)
    one = chain.end_fit(np.zeros((2, 0, 4, 4)), np.zeros((2, 1), np.int64), 1)  # one landmark: no step, 0
    np.testing.assert_array_equal(one, [0.0, 0.0])


def test_a_chain_a_level_high_ends_on_an_ordinary_step_and_is_flagged_by_its_end_fit(
        model: chain.ChainModel) -> None:
    right, high = _spine(20, seed=3), _spine(2, seed=4)
    decoder = _decoder(model)
    val = _decode(decoder, right[:, 2:], right[:, 2:].astype(np.float64))
    out = _decode(decoder, high[:, :K], high[:, :K].astype(np.float64))  # every channel fires a level high
    np.testing.assert_array_equal(out.xy["chain"], high[:, :K])  # nothing at the truth: the chain follows them
    assert out.end_fit.max() < val.end_fit.min()  # its last step is L4 -> L4-L5, not the junction's turn
    t = fit_flag_threshold(val.end_fit, np.zeros(20, bool), rate=0.05)
    flagged = decoder.replace(end_threshold=t)
    assert _decode(flagged, high[:, :K], high[:, :K].astype(np.float64)).level_uncertain.all()
    assert flagged.flag(val.margin, val.end_fit).sum() <= 1  # 5% of 20 right studies: at most one


def test_the_flag_reads_the_margin_or_the_end_fit() -> None:
    margin = np.array([0.5, 5.0, 5.0, np.inf, np.nan])
    end = np.array([-0.1, -3.0, -0.2, -0.2, np.nan])
    decoder = LandmarkDecoder(np.full(3, 2.0), 1e-4, margin_threshold=1.0, end_threshold=-1.0)
    np.testing.assert_array_equal(decoder.flag(margin, end), [True, True, False, False, False])
    np.testing.assert_array_equal(decoder.replace(end_threshold=None).flag(margin, end), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(decoder.replace(margin_threshold=0.0).flag(margin, end), [0, 1, 0, 0, 0])


def test_the_flag_threshold_rule_with_and_without_wrong_val_studies() -> None:
    end = np.array([-0.2, -2.0, -0.4, -0.1, -0.3, -0.5, -1.5])
    wrong = np.array([False, True, False, False, False, False, True])
    t = fit_flag_threshold(end, wrong)  # both wrong studies lie below every right one
    assert -1.5 < t < -1.5 + 1e-9 and np.array_equal(end < t, wrong)
    right = end[~wrong]
    for rate in (0.05, 0.2, 0.5):  # no wrong study: that quantile of the right studies' values
        assert fit_flag_threshold(right, np.zeros(5, bool), rate) == pytest.approx(np.quantile(right, rate))
    assert fit_flag_threshold(np.array([np.inf, np.nan]), np.zeros(2, bool)) is None  # nothing finite: no threshold
    with pytest.raises(DataError, match="expected \\(N,\\) scores"):
        fit_flag_threshold(end, wrong[:3])


def _val(model: chain.ChainModel) -> tuple[SplitOutputs, LandmarkDecoder]:
    spine = _spine(10, seed=5)[:, 2:]
    rivals = (encode(spine + [0.0, 16.0], H, W, 1.5) * 0.3).astype(np.float16)  # weak peaks a level down: margins
    val = SplitOutputs(rows=np.arange(10), coords_norm=to_norm(spine.astype(np.float64), W, H),
                       heatmaps=np.maximum(_maps(spine), rivals), truth=spine,
                       sizes=np.tile([[W, H]], (10, 1)).astype(np.float64), spacing=np.ones((10, 2)))
    return val, _decoder(model)


@pytest.mark.parametrize(("raw", "margin_auto", "end_auto"), [
    ({}, False, True),  # the defaults: the end fit at flag_rate, not the margin
    ({"margin_threshold": "auto", "flag_rate": 0.2}, True, True),
    ({"margin_threshold": 2.0, "end_threshold": -0.5}, False, False),
])
def test_the_thresholds_are_fitted_on_val_as_the_params_say(model: chain.ChainModel, raw: dict, margin_auto: bool,
                                                            end_auto: bool) -> None:
    cfg = parse_section("chain", raw)
    val, decoder = _val(model)
    decoded = decoder.decode(val.coords_norm, val.heatmaps, val.sizes, val.spacing)
    fitted, record = fit_flag(decoder, decoded, val, cfg)
    margins = decoded.margin[np.isfinite(decoded.margin)]
    assert margins.size == 10
    want_margin = np.quantile(margins, cfg.flag_rate) if margin_auto else raw.get("margin_threshold", 0.0)
    want_end = np.quantile(decoded.end_fit, cfg.flag_rate) if end_auto else raw["end_threshold"]
    assert fitted.margin_threshold == pytest.approx(want_margin)
    assert fitted.end_threshold == pytest.approx(want_end)
    assert record["end_threshold_mode"] == ("auto" if end_auto else "fixed") and record["flag_rate"] == cfg.flag_rate
    assert parse_section("chain", {"end_threshold": None}).end_threshold is None  # null: the end fit never flags


def test_the_flag_params_are_checked() -> None:
    with pytest.raises(ParamError, match="chain.end_threshold"):
        parse_section("chain", {"end_threshold": 0.5})  # an end fit is never above 0: that would flag everything
    for rate in (0.0, 1.0):
        with pytest.raises(ParamError, match="chain.flag_rate"):
            parse_section("chain", {"flag_rate": rate})


def test_the_decoder_file_keeps_the_end_threshold_and_an_older_one_flags_by_the_margin(
        tmp_path: Path, model: chain.ChainModel) -> None:
    decoder = _decoder(model, margin_threshold=1.5, end_threshold=-0.75)
    write_json(tmp_path / DECODER_FILE, decoder.to_dict())
    loaded = LandmarkDecoder.load(tmp_path)
    assert (loaded.margin_threshold, loaded.end_threshold) == (1.5, -0.75) and loaded.chain == decoder.chain
    old = {k: v for k, v in decoder.to_dict().items() if k != "end_threshold"}  # written before the end fit
    write_json(tmp_path / DECODER_FILE, old)
    loaded = LandmarkDecoder.load(tmp_path)
    assert loaded.end_threshold is None
    np.testing.assert_array_equal(loaded.flag(np.array([1.0, 2.0]), np.array([-5.0, -5.0])), [True, False])
    write_json(tmp_path / DECODER_FILE, decoder.replace(end_threshold=None).to_dict())
    assert LandmarkDecoder.load(tmp_path).end_threshold is None


def test_a_flag_fitted_against_wrong_val_studies_keeps_within_its_budget() -> None:
    scores = np.array([0.5, 2.0, 3.0, 10.0, 12.0, 1.0, 4.0])
    wrong = np.array([True, False, True, False, False, False, False])
    # unbounded, catching both wrong studies (below 3.0) is worth flagging 2 of 5 right ones; within 15 % only 0.5 is
    assert 3.0 < fit_flag_threshold(scores, wrong, budget=1.0) < 3.0 + 1e-9
    assert 0.5 < fit_flag_threshold(scores, wrong, budget=0.15) < 0.5 + 1e-9
    # a score that does not separate the wrong studies on val (they score highest): the rate quantile instead of
    # a threshold that flags nearly every right study
    high = np.array([9.0, 1.0, 2.0, 3.0, 4.0, 8.5])
    odd = np.array([True, False, False, False, False, True])
    expected = np.quantile([1.0, 2.0, 3.0, 4.0], 0.25)
    assert fit_flag_threshold(high, odd, rate=0.25, budget=0.15) == pytest.approx(expected)


def test_the_level_check_flags_an_answer_a_level_away_and_is_kept_in_the_decoder_file(
        tmp_path: Path, model: chain.ChainModel) -> None:
    decoder = _decoder(model, check_weight=1.0)  # the check: the chain's own weights, so it agrees
    spine = _spine(4, seed=5)
    out = _decode(decoder, spine[:, 2:], spine[:, 2:].astype(np.float64))
    np.testing.assert_array_equal(out.level_check, np.zeros(4))
    assert not out.level_uncertain.any()
    np.testing.assert_array_equal(decoder.flag(np.full(4, np.inf), np.zeros(4), np.array([0.0, 1.0, -1.0, np.nan])),
                                  [False, True, True, False])
    assert np.isnan(_decode(decoder.replace(check_weight=None), spine[:, 2:], spine[:, 2:]).level_check).all()
    write_json(tmp_path / DECODER_FILE, decoder.to_dict())
    assert LandmarkDecoder.load(tmp_path).check_weight == 1.0
    old = {k: v for k, v in decoder.to_dict().items() if k != "check_weight"}  # written before the level check
    write_json(tmp_path / DECODER_FILE, old)
    assert LandmarkDecoder.load(tmp_path).check_weight is None
    with pytest.raises(ParamError, match="chain.check_weight"):
        parse_section("chain", {"check_weight": -1.0})
    assert parse_section("chain", {"check_weight": None}).check_weight is None
    with pytest.raises(DataError, match="check_weight"):
        decoder.replace(check_weight=float("inf"))


def test_the_check_answers_where_it_disagrees_and_the_answer_is_less_sure_than_val(model: chain.ChainModel) -> None:
    spine = _spine(1, seed=6, jitter=0.0).astype(np.float64)
    truth, high = spine[:, 2:], spine[:, :K]  # (1, K, 2): the landmarks, and every one a level up
    # two peaks per channel: the upper five sure of their level, the lower six a little surer of the level above
    strength = np.r_[np.full(5, 0.95), np.full(6, 0.5)][None, :, None, None]
    other = np.r_[np.full(5, 0.3), np.full(6, 0.6)][None, :, None, None]
    maps = np.maximum(encode(truth, H, W, 1.5) * strength, encode(high, H, W, 1.5) * other).astype(np.float16)
    sizes = np.array([[W, H]], np.float64)
    base = _decoder(model, check_weight=50.0)
    decoder = base.replace(chain=dataclasses.replace(base.chain, pairwise_weight=0.0, end_check=0.0))  # each top peak
    out = decoder.decode(to_norm(truth, W, H), maps, sizes)
    assert metrics.level_shift(out.xy["chain"], truth, np.ones((1, 2)))[0] == -1  # six of eleven on the level above
    np.testing.assert_array_equal(out.level_check, [-1.0])  # a level above the check's: the surer upper five's
    assert out.level_uncertain.all() and not out.check_answered.any()  # no check_confidence: the check only flags
    answered = decoder.replace(check_confidence=0.9).decode(to_norm(truth, W, H), maps, sizes)  # sure ~0.76 < 0.9
    assert answered.check_answered.all() and answered.level_uncertain.all()
    np.testing.assert_allclose(answered.xy["chain"], truth, atol=1.0)
    kept = decoder.replace(check_confidence=0.5).decode(to_norm(truth, W, H), maps, sizes)  # sure enough: kept
    assert not kept.check_answered.any()
    np.testing.assert_array_equal(kept.xy["chain"], out.xy["chain"])
    # a reader sees both: the prediction's JSON and summary.csv carry the step and who answered (chain methods only)
    for method, shown in (("chain_subpixel", True), ("fused", False)):
        result = LandmarkPredictor(_Names(), PrepareConfig(), decoder, method).prediction(answered, 0, (1.0, 1.0), True)
        assert (result.level_check, result.check_answered) == (-1.0, shown)
        assert (result.to_dict()["level_check"], result.to_dict()["check_answered"]) == (-1, shown)
        row = summary_row("s", Path("s.dcm"), result)
        assert (row["level_check"], row["check_answered"], row["level_uncertain"]) == (-1.0, shown, True)
    unchecked = LandmarkPredictor(_Names(), PrepareConfig(), decoder.replace(check_weight=None), "chain")
    assert unchecked.prediction(kept, 0, (1.0, 1.0), True).to_dict()["level_check"] == -1  # the decode's own
    plain = unchecked.decoder.decode(to_norm(truth, W, H), maps, sizes)
    assert unchecked.prediction(plain, 0, (1.0, 1.0), True).to_dict()["level_check"] is None  # no check: null
    with pytest.raises(ParamError, match="chain.check_confidence"):
        parse_section("chain", {"check_confidence": 1.5})
