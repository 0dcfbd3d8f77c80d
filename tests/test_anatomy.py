"""The lumbosacral turn on hand-made spines."""

from __future__ import annotations

import numpy as np
import pytest

from lmfusion.anatomy import lumbosacral_turn_deg, sacrum_anchor

NAMES = ("L1", "L3", "L5", "L5-S1")


def test_a_straight_spine_turns_0_and_a_right_angle_turns_90() -> None:
    straight = [[0, 0], [0, 10], [0, 20], [0, 25]]
    bent = [[0, 0], [0, 10], [0, 20], [5, 20]]
    turn = lumbosacral_turn_deg(np.array([straight, bent], float), np.ones((2, 2)), NAMES)
    np.testing.assert_allclose(turn, [0.0, 90.0], atol=1e-9)


def test_the_turn_is_measured_in_mm() -> None:
    xy = np.array([[[0, 0], [0, 10], [0, 20], [10, 30]]], float)  # 45 degrees in square pixels
    assert lumbosacral_turn_deg(xy, np.array([[1.0, 1.0]]), NAMES)[0] == pytest.approx(45.0)
    assert lumbosacral_turn_deg(xy, np.array([[0.5, 1.0]]), NAMES)[0] == pytest.approx(np.degrees(np.arctan(0.5)))


def test_other_landmark_sets_have_no_turn() -> None:
    assert lumbosacral_turn_deg(np.zeros((1, 2, 2)), np.ones((1, 2)), ("L1-L2", "L5-S1")) is None


def test_sacrum_anchor_continues_the_spine_round_its_turn():
    names = ("L4-L5", "L5", "L5-S1")
    straight = np.array([[[10.0, 0.0], [10.0, 10.0], [10.0, 20.0]]])
    np.testing.assert_allclose(sacrum_anchor(straight, names), [[10.0, 30.0]])
    # turning 90 degrees from one step to the next: the anchor turns 90 degrees more
    bent = np.array([[[0.0, 0.0], [0.0, 10.0], [10.0, 10.0]]])
    np.testing.assert_allclose(sacrum_anchor(bent, names), [[10.0, 0.0]], atol=1e-9)
    assert sacrum_anchor(straight[:, :2], names[:2]) is None
    # only the last three landmarks count: a longer chain gives the same point
    longer = np.concatenate([[[[10.0, -10.0]]], straight], 1)
    np.testing.assert_allclose(sacrum_anchor(longer, ("L4", *names)), [[10.0, 30.0]])
