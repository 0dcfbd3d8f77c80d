"""Heatmap codec: encode shapes and values, argmax and sub-pixel decode, NaN landmarks, border peaks, batches."""

from __future__ import annotations

import numpy as np
import pytest

from lmfusion.heatmaps import argmax, decode, encode, refine


def test_encode_shape_dtype_and_peak() -> None:
    xy = np.array([[3.0, 5.0], [10.0, 2.0]])  # (K, 2)
    hm = encode(xy, height=12, width=16, sigma=2.0)
    assert hm.shape == (2, 12, 16) and hm.dtype == np.float32
    assert hm[0, 5, 3] == pytest.approx(1.0) and hm[1, 2, 10] == pytest.approx(1.0)
    assert hm[0, 5, 5] == pytest.approx(np.exp(-4 / 8))  # two pixels along x from the centre
    assert hm.max() <= 1.0 and hm.min() >= 0.0
    assert encode(xy, 12, 16, 2.0, dtype=np.float16).dtype == np.float16


def test_decode_integer_round_trip() -> None:
    xy = np.array([[3.0, 5.0], [15.0, 0.0], [0.0, 11.0]])
    out, scores = decode(encode(xy, 12, 16, 1.5))
    np.testing.assert_array_equal(out, xy)
    np.testing.assert_allclose(scores, 1.0)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-9), (np.float32, 1e-5), (np.float16, 0.01)])
def test_subpixel_decode_recovers_position(dtype: type, tol: float) -> None:
    rng = np.random.default_rng(0)
    for sigma in (1.2, 1.7, 2.0, 2.5, 3.0):
        xy = rng.uniform(5, 59, size=(20, 2))  # (K, 2) random sub-pixel positions
        hm = encode(xy, 64, 64, sigma, dtype=dtype)
        coarse, _ = decode(hm)
        fine, _ = decode(hm, subpixel=True)
        err = np.abs(fine - xy).max()
        assert err < tol, (sigma, err)
        assert err < np.abs(coarse - xy).max() or err < 1e-9


def test_nan_landmark_gives_zero_map() -> None:
    xy = np.array([[np.nan, np.nan], [4.0, 4.0]])
    hm = encode(xy, 8, 8, 2.0)
    assert not hm[0].any() and hm[1].max() == pytest.approx(1.0)
    assert np.isfinite(hm).all()
    _, scores = decode(hm, subpixel=True)
    assert scores[0] == 0.0


@pytest.mark.parametrize("xy", [[0.0, 4.0], [-0.4, 4.3], [15.0, 0.0], [15.45, 11.4]])
def test_border_peak_is_not_refined_out_of_range(xy: list[float]) -> None:
    hm = encode(np.array([xy]), 12, 16, 1.5)
    fine, _ = decode(hm, subpixel=True)
    assert 0 <= fine[0, 0] <= 15 and 0 <= fine[0, 1] <= 11
    coarse, _ = argmax(hm)
    on_border_x = coarse[0, 0] in (0, 15)
    if on_border_x:
        assert fine[0, 0] == coarse[0, 0]  # no neighbour on one side: the integer position stays


def test_refine_moves_at_most_half_a_pixel_and_ignores_non_peaks() -> None:
    flat = np.ones((1, 9, 9))
    np.testing.assert_array_equal(refine(flat, np.array([[4.0, 4.0]])), [[4.0, 4.0]])
    hm = encode(np.array([[4.49, 3.51]]), 9, 9, 0.5)
    fine = refine(hm, argmax(hm)[0])
    assert np.abs(fine - argmax(hm)[0]).max() <= 0.5


def test_batch_dimensions() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(4, 28, size=(2, 3, 5, 2))  # (A, B, K, 2)
    hm = encode(xy, 32, 32, 2.0)
    assert hm.shape == (2, 3, 5, 32, 32)
    out, scores = decode(hm, subpixel=True)
    assert out.shape == (2, 3, 5, 2) and scores.shape == (2, 3, 5)
    np.testing.assert_allclose(out, xy, atol=1e-3)
    single, _ = decode(hm[1, 2], subpixel=True)
    np.testing.assert_allclose(single, out[1, 2])
