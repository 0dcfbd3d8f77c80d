"""Peaks: argmax and sub-pixel refinement, border peaks, batches, local maxima, chunks, and the one edge rule for
reading a map at a point."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import peaks_xy
from lmfusion.decoding import peaks
from lmfusion.decoding.peaks import argmax, local_maxima, refine, rival_ratio, values_at
from lmfusion.heatmaps import encode


def test_decode_integer_round_trip() -> None:
    xy = np.array([[3.0, 5.0], [15.0, 0.0], [0.0, 11.0]])
    out, scores = peaks_xy(encode(xy, 12, 16, 1.5))
    np.testing.assert_array_equal(out, xy)
    np.testing.assert_allclose(scores, 1.0)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-9), (np.float32, 1e-5), (np.float16, 0.01)])
def test_subpixel_decode_recovers_position(dtype: type, tol: float) -> None:
    rng = np.random.default_rng(0)
    for sigma in (1.2, 1.7, 2.0, 2.5, 3.0):
        xy = rng.uniform(5, 59, size=(20, 2))  # (K, 2) random sub-pixel positions
        hm = encode(xy, 64, 64, sigma, dtype=dtype)
        coarse, _ = peaks_xy(hm)
        fine, _ = peaks_xy(hm, subpixel=True)
        err = np.abs(fine - xy).max()
        assert err < tol, (sigma, err)
        assert err < np.abs(coarse - xy).max() or err < 1e-9


@pytest.mark.parametrize("xy", [[0.0, 4.0], [-0.4, 4.3], [15.0, 0.0], [15.45, 11.4]])
def test_border_peak_is_not_refined_out_of_range(xy: list[float]) -> None:
    hm = encode(np.array([xy]), 12, 16, 1.5)
    fine, _ = peaks_xy(hm, subpixel=True)
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
    out, scores = peaks_xy(hm, subpixel=True)
    assert out.shape == (2, 3, 5, 2) and scores.shape == (2, 3, 5)
    np.testing.assert_allclose(out, xy, atol=1e-3)
    single, _ = peaks_xy(hm[1, 2], subpixel=True)
    np.testing.assert_allclose(single, out[1, 2])


def test_an_empty_map_decodes_with_score_0() -> None:
    hm = encode(np.array([[np.nan, np.nan], [4.0, 4.0]]), 8, 8, 2.0)
    _, scores = peaks_xy(hm, subpixel=True)
    assert scores[0] == 0.0 and scores[1] == pytest.approx(1.0)


def test_values_at_reads_the_nearest_pixel_and_0_outside_the_map_or_for_nan() -> None:
    maps = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (M, K, H, W)
    xy = np.array([[[0.4, 0.4], [4.4, 3.4], [2.0, 1.6]],
                   [[-0.6, 1.0], [4.6, 0.0], [np.nan, 2.0]]])  # (M, K, 2)
    got = values_at(maps, xy)
    assert got.dtype == np.float64 and got.shape == (2, 3)
    np.testing.assert_array_equal(got[0], [maps[0, 0, 0, 0], maps[0, 1, 3, 4], maps[0, 2, 2, 2]])
    np.testing.assert_array_equal(got[1], [0.0, 0.0, 0.0])  # left of, right of the map; NaN


def test_local_maxima_keep_a_plateau_s_first_pixel_strongest_first() -> None:
    hm = np.zeros((1, 1, 8, 8), np.float32)
    hm[0, 0, 2:4, 3:6] = 0.5
    hm[0, 0, 6, 1] = 0.9
    xy, xy_sub, val = local_maxima(hm, 3, 1e-4)
    np.testing.assert_array_equal(xy[0, 0, :2], [[1.0, 6.0], [3.0, 2.0]])
    assert val[0, 0].tolist() == [pytest.approx(0.9), 0.5, 0.0] and np.isnan(xy[0, 0, 2]).all()
    assert np.isnan(xy_sub[0, 0, 2]).all()


def test_chunks_cover_every_map_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peaks, "CHUNK_ELEMENTS", 2 * 3 * 4 * 4)  # two maps of (K, H, W) per chunk
    hm = np.ones((5, 3, 4, 4), np.float16)
    xy = np.arange(5 * 3 * 2, dtype=np.float64).reshape(5, 3, 2)
    got = list(peaks.chunks(hm, xy))
    assert [c[0] for c in got] == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert all(c[1].dtype == np.float32 for c in got)
    np.testing.assert_array_equal(np.concatenate([c[2] for c in got]), xy)
    assert len(list(peaks.chunks(hm[:0], xy[:0]))) == 1  # one empty chunk: callers concatenate


def test_rival_ratio_is_the_strongest_far_peak_over_the_top_one() -> None:
    centres = np.array([[[20.0, 10.0], [20.0, 40.0]], [[20.0, 10.0], [20.0, 13.0]]])  # (S, P, 2): far, near
    hm = np.stack([np.maximum(encode(c[:1], 64, 64, 1.5)[0], 0.5 * encode(c[1:], 64, 64, 1.5)[0]) for c in centres])
    hm = hm[:, None].astype(np.float32)  # (S, K=1, H, W)
    got = rival_ratio(hm, sep=6.0, floor=1e-4)
    assert got.shape == (2, 1) and got[0, 0] == pytest.approx(0.5, abs=1e-3)
    assert got[1, 0] < 0.5  # a second maximum within sep px is part of the same peak, not a rival
    assert rival_ratio(np.zeros((1, 2, 8, 8), np.float32), 6.0, 1e-4).tolist() == [[0.0, 0.0]]  # no peak at all
