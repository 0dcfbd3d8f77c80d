"""Fusion: priors, the product's argmax choosing the right peak, fallback, the special sigmas, sub-pixel refinement,
the decode path of every method, and the sigma fitted on validation."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import peaks_xy
from lmfusion.decoding import fit, fusion
from lmfusion.errors import DataError, ParamError
from lmfusion.heatmaps import encode

H = W = 64


def _peaks(centres: list[tuple[float, float]], heights: list[float], sigma: float = 1.5) -> np.ndarray:
    """(H, W) sum of Gaussian peaks with the given heights."""
    maps = encode(np.asarray(centres, dtype=np.float64), H, W, sigma)  # (P, H, W)
    return np.tensordot(np.asarray(heights, np.float32), maps, axes=1)


def test_prior_peak_sigma_per_landmark_and_special_values() -> None:
    xy = np.array([[10.0, 20.0], [30.0, 40.0], [5.2, 6.7], [50.0, 12.0]])  # (K, 2)
    p = fusion.prior(xy, H, W, np.array([2.0, 4.0, 0.0, np.inf]))
    assert p.shape == (4, H, W) and p.dtype == np.float32
    assert p[0, 20, 10] == pytest.approx(1.0) and p[0, 20, 12] == pytest.approx(np.exp(-4 / 8))
    assert p[1, 40, 32] == pytest.approx(np.exp(-4 / 32))  # its own, wider sigma
    assert p[2].sum() == 1.0 and p[2, 7, 5] == 1.0  # sigma 0: the nearest pixel only
    assert np.all(p[3] == 1.0)  # sigma inf: flat
    batch = fusion.prior(np.stack([xy, xy + 1]), H, W, 3.0)  # (N, K, H, W)
    assert batch.shape == (2, 4, H, W) and batch[1, 0, 21, 11] == pytest.approx(1.0)
    with pytest.raises(ParamError, match="fusion.sigma"):
        fusion.prior(xy, H, W, -1.0)
    with pytest.raises(ParamError, match="fusion.sigma"):
        fusion.prior(xy, H, W, np.ones(3))


def test_prior_picks_the_true_peak_over_a_higher_adjacent_impostor() -> None:
    true, impostor = (30.0, 24.0), (31.0, 40.0)  # the next vertebral level, 16 px lower, and brighter
    hm = _peaks([true, impostor], [0.6, 0.95])[None, None]  # (N, K, H, W)
    xy_reg = np.array([[[32.0, 27.0]]])  # the regressor is 3.6 px off, on the right level
    argmax_xy, _ = peaks_xy(hm)
    np.testing.assert_array_equal(argmax_xy[0, 0], impostor)
    res = fusion.fuse(hm, xy_reg, sigma=4.0, min_product=1e-4)
    np.testing.assert_array_equal(res.xy_hm[0, 0], true)
    assert not res.fallback[0, 0] and 0.3 < res.score[0, 0] < 0.6


def test_fallback_when_the_prior_misses_all_heatmap_mass() -> None:
    hm = _peaks([(10.0, 10.0)], [0.9])[None, None]
    xy_reg = np.array([[[52.3, 50.6]]])
    res = fusion.fuse(hm, xy_reg, sigma=2.0, min_product=1e-4, subpixel=True)
    assert res.fallback[0, 0] and res.score[0, 0] < 1e-4
    np.testing.assert_array_equal(res.xy_hm, xy_reg)
    # the same prior with the threshold off keeps the (far) product peak instead
    assert not fusion.fuse(hm, xy_reg, sigma=2.0, min_product=0.0).fallback[0, 0]


def _random_case(n: int = 3, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hm = rng.uniform(0, 0.2, size=(n, k, H, W)).astype(np.float32)
    hm += encode(rng.uniform(5, 58, size=(n, k, 2)), H, W, 2.0) * 0.7  # (N, K, H, W)
    return hm.astype(np.float16), rng.uniform(0, 63, size=(n, k, 2))


def test_sigma_inf_is_argmax_and_sigma_0_is_direct() -> None:
    hm, xy_reg = _random_case()
    for subpixel in (False, True):
        expected, scores = peaks_xy(hm, subpixel=subpixel)
        res = fusion.fuse(hm, xy_reg, np.inf, min_product=0.5, subpixel=subpixel)
        np.testing.assert_array_equal(res.xy_hm, expected)
        np.testing.assert_allclose(res.score, scores)
        assert not res.fallback.any()  # a flat prior never falls back
        res = fusion.fuse(hm, xy_reg, 0.0, min_product=0.5, subpixel=subpixel)
        np.testing.assert_array_equal(res.xy_hm, xy_reg)
        assert not res.fallback.any()


def test_per_landmark_sigma_mixes_the_special_values() -> None:
    hm, xy_reg = _random_case(k=3)
    res = fusion.fuse(hm, xy_reg, np.array([0.0, np.inf, 3.0]), min_product=1e-4)
    np.testing.assert_array_equal(res.xy_hm[:, 0], xy_reg[:, 0])
    np.testing.assert_array_equal(res.xy_hm[:, 1], peaks_xy(hm[:, 1])[0])
    np.testing.assert_array_equal(res.xy_hm[:, 2], fusion.fuse(hm[:, 2:], xy_reg[:, 2:], 3.0, 1e-4).xy_hm[:, 0])


def test_subpixel_refinement_of_the_product_recovers_the_peak() -> None:
    mu_h, s_h = np.array([20.3, 15.6]), 2.0
    mu_p, s_p = np.array([22.4, 13.9]), 3.0
    hm = encode(mu_h[None], H, W, s_h)[None]  # (1, 1, H, W)
    # the product of two Gaussians is a Gaussian centred at the precision-weighted mean
    expected = (mu_h / s_h**2 + mu_p / s_p**2) / (1 / s_h**2 + 1 / s_p**2)
    coarse = fusion.fuse(hm, mu_p[None, None], s_p, 1e-4).xy_hm[0, 0]
    fine = fusion.fuse(hm, mu_p[None, None], s_p, 1e-4, subpixel=True).xy_hm[0, 0]
    assert np.abs(fine - expected).max() < 0.1
    assert np.abs(fine - expected).max() < np.abs(coarse - expected).max()


def test_residual_sigma_is_the_per_axis_rms_with_a_floor() -> None:
    truth = np.zeros((2, 3, 2))
    reg = np.array([[[3.0, 4.0], [0.1, 0.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.1], [np.nan, np.nan]]])
    sigma = fit.residual_sigma(reg, truth)
    np.testing.assert_allclose(sigma, [np.sqrt(25 / 2 / 2), 0.5, 1.0])


def _val_split(rng: np.random.Generator, n: int, k: int, impostors: bool, reg_noise: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth = np.stack([np.full((n, k), 32.0), 10.0 + 14.0 * np.arange(k)[None].repeat(n, 0)], -1)  # (N, K, 2)
    hm = encode(truth, H, W, 1.5) * 0.6  # (N, K, H, W)
    if impostors:  # a brighter copy of the next level down in every other image
        hm[::2] = np.maximum(hm[::2], encode(truth[::2] + [0.0, 14.0], H, W, 1.5))
    reg = truth + rng.normal(0, reg_noise, size=truth.shape)
    return hm.astype(np.float16), reg, truth


def _val_rates(table: list[dict]) -> dict:
    return {row["scale"]: row["sdr"] for row in table}


def test_auto_sigma_picks_argmax_when_the_regressor_is_bad() -> None:
    hm, reg, truth = _val_split(np.random.default_rng(0), n=12, k=3, impostors=False, reg_noise=12.0)
    mm = np.full((12, 2), 1.0)
    sigma, table = fit.auto_sigma(hm, reg, truth, mm, [0.5, 1.0, 2.0, 4.0], radius_mm=2.0, min_product=1e-4)
    assert np.all(np.isinf(sigma))
    chosen = [r for r in table if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["scale"] == "argmax" and chosen[0]["sdr"] == 1.0
    assert len(table) == 6 and {"scale", "sdr", "mre_mm", "fallbacks"} <= set(table[0])


def test_auto_sigma_picks_a_finite_sigma_when_the_heatmap_has_impostors() -> None:
    hm, reg, truth = _val_split(np.random.default_rng(1), n=12, k=3, impostors=True, reg_noise=2.0)
    mm = np.full((12, 2), 0.8)
    sigma, table = fit.auto_sigma(hm, reg, truth, mm, [0.5, 1.0, 2.0, 4.0], radius_mm=2.0, min_product=1e-4)
    assert np.all(np.isfinite(sigma) & (sigma > 0))
    rates = _val_rates(table)
    best = max(rates[s] for s in rates if s not in ("argmax", "direct"))
    assert best > max(rates["argmax"], rates["direct"])
    chosen = next(r for r in table if r["chosen"])
    np.testing.assert_allclose(sigma, fit.residual_sigma(reg, truth) * chosen["scale"])
    assert chosen["sdr"] == best


def test_auto_sigma_picks_direct_when_the_heatmap_is_empty() -> None:
    hm, reg, truth = _val_split(np.random.default_rng(2), n=6, k=2, impostors=False, reg_noise=1.0)
    sigma, table = fit.auto_sigma(np.zeros_like(hm), reg, truth, np.ones((6, 2)), [1.0], 4.0, 1e-4)
    np.testing.assert_array_equal(sigma, 0.0)
    assert next(r for r in table if r["chosen"])["scale"] == "direct"
    with pytest.raises(ParamError, match="auto_scales"):
        fit.auto_sigma(hm, reg, truth, np.ones((6, 2)), [0.0], 4.0, 1e-4)


def _gate_split(n: int = 12, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Even images: a brighter impostor a level down (argmax wrong) and a good regressor (fused right); odd images:
    one clear peak (argmax right) and a regressor 10 px off that pulls a narrow prior's product away (fused wrong)."""
    truth = np.stack([np.full((n, k), 32.0), 10.0 + 14.0 * np.arange(k)[None].repeat(n, 0)], -1)  # (N, K, 2)
    hm = encode(truth, H, W, 1.5) * 0.6  # (N, K, H, W)
    hm[::2] = np.maximum(hm[::2], encode(truth[::2] + [0.0, 14.0], H, W, 1.5))
    reg = truth + np.where(np.arange(n)[:, None, None] % 2 == 0, [0.5, 0.5], [10.0, 0.0])
    return hm.astype(np.float16), reg, truth


def test_the_gate_takes_the_prior_only_where_the_heatmap_is_ambiguous() -> None:
    hm, reg, truth = _gate_split()
    sigma, mm = np.full(3, 2.0), np.ones((12, 2))
    ratio, table = fit.fit_gate(hm, reg, truth, mm, sigma, 1e-4, [0.0, 0.3, 0.9], sep=6.0, radius_mm=2.0)
    rows = {r["gate_ratio"]: r for r in table}
    assert [r["gate_ratio"] for r in table] == [0.0, 0.3, 0.9, "inf"]  # most prior first: ties go there
    assert rows["inf"]["sdr"] == rows[0.0]["sdr"] == 0.5  # argmax and fused: each wrong on half the images
    assert ratio == 0.3 and rows[0.3]["chosen"] and rows[0.3]["study_identification"] == 1.0
    assert rows[0.3]["prior_used"] == 0.5 and rows[0.0]["prior_used"] == 1.0 and rows["inf"]["prior_used"] == 0.0
    clean = encode(truth, H, W, 1.5).astype(np.float16)  # nothing to gain from the gate: fused, the first of ties
    assert fit.fit_gate(clean, truth, truth, mm, sigma, 1e-4, [0.3, 0.0], 6.0, 2.0)[0] == 0.0
    with pytest.raises(DataError, match="gate"):
        fit.fit_gate(hm[:0], reg[:0], truth[:0], mm[:0], sigma, 1e-4, [0.0], 6.0, 2.0)
