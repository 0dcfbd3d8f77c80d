"""Metrics on hand-computed cases: anisotropic spacing, SDR at the boundary, wrong level, the summary's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmfusion import metrics
from lmfusion.errors import DataError


def test_radial_errors_use_each_axis_spacing() -> None:
    truth = np.zeros((2, 3, 2))
    pred = np.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 2.0]], [[2.0, 0.0], [0.0, 2.0], [-3.0, 4.0]]])
    spacing = np.array([[0.5, 2.0], [1.0, 1.0]])  # (N, 2) mm per pixel in x, y
    err = metrics.radial_errors(pred, truth, spacing)
    np.testing.assert_allclose(err, [[1.0, 4.0, np.sqrt(17.0)], [2.0, 2.0, 5.0]])
    with pytest.raises(DataError, match="do not match"):
        metrics.radial_errors(pred, truth[:, :2], spacing)
    with pytest.raises(DataError, match="do not match"):
        metrics.radial_errors(pred, truth, spacing[:1])


def test_sdr_counts_the_boundary_and_misses_nan() -> None:
    err = np.array([[1.0, 2.0], [2.0 + 1e-9, np.nan]])
    assert metrics.sdr(err, [2.0, 2.5, 0.5]) == {"2mm": 0.5, "2.5mm": 0.75, "0.5mm": 0.0}
    assert np.isnan(metrics.sdr(np.zeros((0, 3)), [2.0])["2mm"])


def test_wrong_level_on_a_hand_case() -> None:
    truth = np.array([[[0.0, 0.0], [0.0, 10.0], [0.0, 20.0], [0.0, 30.0]]])  # (1, K, 2) top to bottom
    pred = np.array([[[0.0, 4.0], [0.0, 16.0], [0.0, 14.0], [0.0, 50.0]]])
    spacing = np.array([[1.0, 1.0]])
    # k0: own 4, next 6 -> right; k1: own 6, next 4 -> wrong; k2: own 6, previous 4 -> wrong; k3: last, own 20
    # against only the previous (k2) at 30 -> right, although it is even closer to nothing else
    np.testing.assert_array_equal(metrics.wrong_level(pred, truth, spacing), [[False, True, True, False]])
    # the spacing decides: the point is nearer its own landmark in y and nearer the next one in x
    truth2 = np.array([[[0.0, 0.0], [6.0, 8.0]]])
    pred2 = np.array([[[3.5, 3.5], [6.0, 8.0]]])
    assert not metrics.wrong_level(pred2, truth2, np.array([[1.0, 1.0]]))[0, 0]  # own 4.95 mm, next 5.15 mm
    assert metrics.wrong_level(pred2, truth2, np.array([[1.0, 0.5]]))[0, 0]  # own 3.91 mm, next 3.36 mm
    assert not metrics.wrong_level(pred2[:, :1], truth2[:, :1], np.array([[1.0, 0.5]])).any()  # K = 1


def test_relative_improvement() -> None:
    assert metrics.relative_improvement(0.713, 0.996) == pytest.approx(0.3969, abs=1e-4)  # the paper's 8 mm SDR
    assert metrics.relative_improvement(0.5, 0.25) == -0.5
    with pytest.raises(ZeroDivisionError):
        metrics.relative_improvement(0.0, 0.5)


def test_summarize_layout_values_and_json() -> None:
    truth = np.array([[[0.0, 0.0], [0.0, 10.0]], [[0.0, 0.0], [0.0, 10.0]]])  # (N=2, K=2, 2)
    pred = truth + np.array([[[1.0, 0.0], [0.0, 3.0]], [[0.0, 6.0], [0.0, 7.0]]])
    spacing = np.array([[1.0, 1.0], [1.0, 1.0 / 3.0]])
    s = metrics.summarize(pred, truth, spacing, ["L1", "L1-L2"], [1.0, 2.5])
    # errors (mm): image 0 -> 1, 3; image 1 -> 2, 7/3, and its L1 lies 4/3 mm from L1-L2's truth: wrong level
    e = np.array([1.0, 3.0, 2.0, 7 / 3])
    assert set(s) == {"sdr", "mre_mm", "sd_mm", "wrong_level", "per_landmark"}
    assert s["sdr"] == {"1mm": 0.25, "2.5mm": 0.75}
    assert s["mre_mm"] == round(e.mean(), 4) and s["sd_mm"] == round(e.std(), 4)
    assert s["wrong_level"] == 1
    assert list(s["per_landmark"]) == ["L1", "L1-L2"]
    assert s["per_landmark"]["L1"] == {"mre_mm": 1.5, "sd_mm": 0.5, "sdr_1mm": 0.5, "sdr_2.5mm": 1.0}
    assert s["per_landmark"]["L1-L2"] == {"mre_mm": round(8 / 3, 4), "sd_mm": round(1 / 3, 4), "sdr_1mm": 0.0,
                                          "sdr_2.5mm": 0.5}
    json.dumps(s, allow_nan=False)
    with pytest.raises(DataError, match="base.landmarks"):
        metrics.summarize(pred, truth, spacing, ["L1"], [1.0])


def _spine(k: int = 11) -> np.ndarray:
    """(1, K, 2) a straight chain, one landmark every 10 px down, alternating a little in x (disc, body)."""
    return np.stack([np.where(np.arange(k) % 2 == 0, 50.0, 52.0), 10.0 + 10.0 * np.arange(k)], -1)[None]


def test_study_identified_needs_every_landmark_within_the_radius() -> None:
    err = np.array([[1.0, 8.0, 2.0], [1.0, 8.0 + 1e-9, 2.0], [1.0, np.nan, 2.0]])
    np.testing.assert_array_equal(metrics.study_identified(err, 8.0), [True, False, False])
    assert metrics.study_identified(np.zeros((0, 3)), 8.0).shape == (0,)


def test_level_shift_on_hand_cases() -> None:
    truth, spacing = _spine(), np.array([[1.0, 1.0]])
    assert metrics.level_shift(truth + 1.0, truth, spacing).tolist() == [0]  # clean, 1.4 mm off everywhere
    # the whole chain moved a level (two landmarks, 20 px) down: 9 landmarks have a k + 2, all nearer it
    down = truth + [0.0, 20.0]
    assert metrics.level_shift(down, truth, spacing).tolist() == [1]
    assert metrics.level_shift(truth - [0.0, 20.0], truth, spacing).tolist() == [-1]
    # one wrong landmark (L3 on L4's body) is not a whole-level shift
    one = truth.copy()
    one[0, 5] = truth[0, 7]
    assert metrics.level_shift(one, truth, spacing).tolist() == [0]
    # 5 of the 9 landmarks with a k + 2 are on it: more than half; 4 of 9 is not
    part = truth.copy()
    part[0, :5] = truth[0, 2:7]
    assert metrics.level_shift(part, truth, spacing).tolist() == [1]
    part[0, 4] = truth[0, 4]
    assert metrics.level_shift(part, truth, spacing).tolist() == [0]
    # per study: a batch of a clean and a shifted study
    both = np.concatenate([truth, down])
    assert metrics.level_shift(both, np.concatenate([truth, truth]), np.ones((2, 2))).tolist() == [0, 1]
    assert metrics.level_shift(truth[:, :2] + 5, truth[:, :2], spacing).tolist() == [0]  # K < 3


def test_flag_rates_count_caught_wrong_and_flagged_right_studies() -> None:
    flagged = np.array([True, False, True, True, False])
    wrong = np.array([True, True, False, False, False])
    assert metrics.flag_rates(flagged, wrong) == {"caught": 0.5, "false_alarm": 2 / 3}
    rates = metrics.flag_rates(flagged[:1], wrong[:1])
    assert rates["caught"] == 1.0 and np.isnan(rates["false_alarm"])


def test_wrong_level_studies_is_any_wrong_landmark() -> None:
    truth = np.array([[[0.0, 0.0], [0.0, 10.0], [0.0, 20.0]]] * 2)
    pred = truth.copy()
    pred[1, 1] = [0.0, 19.0]  # study 1's middle landmark sits on the one below
    np.testing.assert_array_equal(metrics.wrong_level_studies(pred, truth, np.ones((2, 2))), [False, True])
