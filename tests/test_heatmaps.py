"""Heatmap encoding: the Gaussian targets' shape, dtype and values, NaN landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from lmfusion.heatmaps import encode


def test_encode_shape_dtype_and_peak() -> None:
    xy = np.array([[3.0, 5.0], [10.0, 2.0]])  # (K, 2)
    hm = encode(xy, height=12, width=16, sigma=2.0)
    assert hm.shape == (2, 12, 16) and hm.dtype == np.float32
    assert hm[0, 5, 3] == pytest.approx(1.0) and hm[1, 2, 10] == pytest.approx(1.0)
    assert hm[0, 5, 5] == pytest.approx(np.exp(-4 / 8))  # two pixels along x from the centre
    assert hm.max() <= 1.0 and hm.min() >= 0.0
    assert encode(xy, 12, 16, 2.0, dtype=np.float16).dtype == np.float16


def test_nan_landmark_gives_zero_map() -> None:
    xy = np.array([[np.nan, np.nan], [4.0, 4.0]])
    hm = encode(xy, 8, 8, 2.0)
    assert not hm[0].any() and hm[1].max() == pytest.approx(1.0)
    assert np.isfinite(hm).all()
