"""Preprocessing: robust windowing, histogram equalization and CLAHE, square resizing, the combined path."""

from __future__ import annotations

import numpy as np
import pytest

from lmfusion.config import PrepareConfig
from lmfusion.data.preprocess import equalize, preprocess, preprocess_sizes, resize_square, window_to_uint8
from lmfusion.errors import DataError, ParamError


def dark_low_contrast(h: int = 120, w: int = 100) -> np.ndarray:
    """A smooth dark uint8 image using only levels 10..40."""
    yy, xx = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(0).normal(0, 2, (h, w))
    return np.clip(10 + 30 * (0.6 * yy / h + 0.4 * xx / w) + noise, 10, 40).round().astype(np.uint8)


@pytest.mark.parametrize("value", [0.0, 1234.5, -7.0])
def test_window_constant_image_gives_zeros(value: float) -> None:
    out = window_to_uint8(np.full((10, 12), value, np.float32))
    assert out.dtype == np.uint8 and out.shape == (10, 12) and not out.any()


def test_window_spreads_range_clips_outliers_and_handles_nan() -> None:
    ramp = np.linspace(100, 3000, 200 * 50, dtype=np.float32).reshape(200, 50)
    ramp[0, 0] = 1e9  # a hot pixel must not compress everything else
    ramp[5, 5] = np.nan
    out = window_to_uint8(ramp, (0.5, 99.5))
    assert out.dtype == np.uint8
    flat = out.ravel()
    assert flat[1:40].max() == 0 and flat[-40:].min() == 255  # below / above the 0.5 / 99.5 percentiles
    assert out[100].min() > 100 and out[100].max() < 155  # the middle stays in the middle
    assert out[5, 5] == 0
    rest = np.delete(flat, [0, 5 * 50 + 5]).astype(int)
    assert (np.diff(rest) >= 0).all()  # monotonic along the ramp
    assert not window_to_uint8(np.full((3, 3), np.nan)).any()


def test_hist_equalization_spreads_a_dark_low_contrast_image() -> None:
    img = dark_low_contrast()
    out = equalize(img, "hist")
    assert out.dtype == np.uint8 and out.shape == img.shape
    p10, p50, p90 = np.percentile(out, [10, 50, 90])
    assert abs(p10 - 25) < 15 and abs(p50 - 128) < 20 and abs(p90 - 230) < 15, (p10, p50, p90)
    assert out.max() == 255
    # monotonic: equalization reorders nothing
    order = np.argsort(img.ravel(), kind="stable")
    assert (np.diff(out.ravel()[order].astype(int)) >= 0).all()


def test_clahe_and_none() -> None:
    img = dark_low_contrast()
    clahe = equalize(img, "clahe", clahe_clip=2.0, clahe_grid=4)
    assert clahe.dtype == np.uint8 and clahe.shape == img.shape
    stronger = equalize(img, "clahe", clahe_clip=8.0, clahe_grid=4)
    assert img.std() < clahe.std() < stronger.std()  # the clip limit bounds the contrast gain
    assert not np.array_equal(clahe, equalize(img, "hist"))
    same = equalize(img, "none")
    np.testing.assert_array_equal(same, img)
    assert same is not img
    with pytest.raises(ParamError, match="prepare.equalize"):
        equalize(img, "gamma")


@pytest.mark.parametrize("shape", [(300, 200), (20, 30), (64, 64), (500, 40)])
def test_resize_square_shapes(shape: tuple[int, int]) -> None:
    img = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    out = resize_square(img, 64)
    assert out.shape == (64, 64) and out.dtype == np.uint8


def test_resize_square_averages_when_shrinking() -> None:
    checker = (np.indices((256, 256)).sum(0) % 2 * 255).astype(np.uint8)
    out = resize_square(checker, 32)
    assert np.abs(out.astype(int) - 127).max() <= 1  # area averaging, no aliasing


def test_preprocess_is_window_equalize_resize() -> None:
    cfg = PrepareConfig(window=(1.0, 99.0), equalize="hist")
    pixels = np.random.default_rng(2).normal(500, 100, (90, 70)).astype(np.float32)
    expected = resize_square(equalize(window_to_uint8(pixels, (1.0, 99.0)), "hist"), 32)
    np.testing.assert_array_equal(preprocess(pixels, 32, cfg), expected)
    big, small = preprocess_sizes(pixels, (64, 32), cfg)
    assert big.shape == (64, 64) and small.shape == (32, 32)
    np.testing.assert_array_equal(small, expected)
    as_uint16 = pixels.round().astype(np.uint16)
    np.testing.assert_array_equal(preprocess(as_uint16, 32, cfg), preprocess(pixels.round(), 32, cfg))
    with pytest.raises(DataError, match="2-D"):
        preprocess(np.zeros((4, 4, 3)), 32, cfg)
