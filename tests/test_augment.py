"""Augmentation (lmfusion.data.augment), the datasets that apply it (lmfusion.data.datasets) and the networks'
input normalization they share with inference (lmfusion.nets.infer.to_input)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lmfusion.config import AugmentConfig
from lmfusion.data.augment import IDENTITY, apply_affine, augment, draw_affine, random_affine, vary_intensity
from lmfusion.data.datasets import HeatmapDataset, RegressorDataset
from lmfusion.heatmaps import encode
from lmfusion.nets.infer import to_input

ALL_OFF = AugmentConfig(translate=False, rotate=False, scale=False)


def _dots(xy: np.ndarray, size: int) -> np.ndarray:
    """One Gaussian dot per landmark, as K separate float32 images (K, S, S)."""
    return encode(xy, size, size, sigma=1.5, dtype=np.float32)


def _centroid(image: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[:image.shape[0], :image.shape[1]]
    w = image.sum()
    return np.array([(xs * image).sum() / w, (ys * image).sum() / w])


def test_switched_off_transforms_give_identity():
    rng = np.random.default_rng(0)
    for _ in range(5):
        np.testing.assert_allclose(random_affine(rng, 64, ALL_OFF), IDENTITY, atol=1e-12)


@pytest.mark.parametrize("which", ["translate", "rotate", "scale"])
def test_each_switch_alone(which):
    cfg = dataclasses.replace(ALL_OFF, **{which: True})
    rng = np.random.default_rng(1)
    size = 128
    for _ in range(20):
        m = random_affine(rng, size, cfg)
        linear, shift = m[:, :2], m[:, 2]
        c = np.full(2, (size - 1) / 2)
        if which == "translate":
            np.testing.assert_allclose(linear, np.eye(2), atol=1e-12)
            k = size / cfg.reference_size  # ranges are given at the reference size
            assert abs(shift[0]) <= cfg.translate_x * k and abs(shift[1]) <= cfg.translate_y * k
        else:
            np.testing.assert_allclose(linear @ c + shift, c, atol=1e-9)  # the centre stays put
            s = np.sqrt(np.linalg.det(linear))
            if which == "rotate":
                assert s == pytest.approx(1.0)
                angle = np.degrees(np.arctan2(linear[1, 0], linear[0, 0]))
                assert abs(angle) <= cfg.rotate_deg + 1e-9
            else:
                np.testing.assert_allclose(linear, s * np.eye(2), atol=1e-12)
                assert cfg.scale_range[0] <= s <= cfg.scale_range[1]


def test_dots_land_on_moved_landmarks():
    size = 64
    xy = np.array([[20.3, 18.7], [40.0, 30.5], [31.6, 44.2]])  # (K, 2)
    dots = _dots(xy, size)
    rng = np.random.default_rng(3)
    cfg = AugmentConfig()
    for _ in range(10):
        m, fell_back = draw_affine(rng, xy, size, cfg)
        assert not fell_back
        moved = None
        for k in range(len(xy)):
            warped, moved = apply_affine(dots[k], xy, m)
            np.testing.assert_allclose(_centroid(warped), moved[k], atol=0.5)


def test_uint8_image_and_landmarks_move_together():
    size = 64
    xy = np.array([[22.0, 20.0], [40.0, 42.0]])
    image = (encode(xy, size, size, 1.5).max(0) * 255).astype(np.uint8)
    out, moved, fell_back = augment(image, xy, AugmentConfig(intensity=False), np.random.default_rng(5))
    assert out.dtype == np.uint8 and out.shape == image.shape and not fell_back
    for p in moved:  # the brightest pixel near each moved landmark is within a pixel of it
        x0, y0 = np.floor(p).astype(int) - 2
        patch = out[y0:y0 + 6, x0:x0 + 6]
        py, px = np.unravel_index(patch.argmax(), patch.shape)
        assert np.hypot(px + x0 - p[0], py + y0 - p[1]) <= 1.5


def test_fallback_to_identity_when_landmarks_would_leave():
    size = 32
    corners = np.array([[0.0, 0.0], [31.0, 0.0], [0.0, 31.0], [31.0, 31.0]])
    cfg = AugmentConfig(translate=False, rotate=False, scale=True, scale_range=(1.1, 1.2), max_tries=3,
                        intensity=False)
    image = np.arange(size * size, dtype=np.uint8).reshape(size, size)
    out, moved, fell_back = augment(image, corners, cfg, np.random.default_rng(0))
    assert fell_back
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(moved, corners)


def test_nan_landmarks_are_ignored_by_the_inside_check():
    xy = np.array([[10.0, 10.0], [np.nan, np.nan]])
    m, fell_back = draw_affine(np.random.default_rng(0), xy, 32, AugmentConfig())
    assert not fell_back and m.shape == (2, 3)


def test_to_input_shapes_and_range():
    x = to_input(np.array([[0, 255]], np.uint8))
    assert x.shape == (1, 1, 1, 2) and x.dtype == torch.float32
    np.testing.assert_allclose(x.flatten().numpy(), [-1.0, 1.0])
    assert to_input(np.zeros((5, 8, 8), np.uint8)).shape == (5, 1, 8, 8)


def _regressor_set(aug: AugmentConfig | None) -> RegressorDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, 32, 32), dtype=np.uint8)
    return RegressorDataset(images, rng.uniform(0.3, 0.7, (4, 3, 2)), aug=aug, seed=7)


def test_regressor_items_depend_only_on_seed_epoch_and_index():
    a, b = _regressor_set(AugmentConfig()), _regressor_set(AugmentConfig())
    a.set_epoch(2)
    b.set_epoch(2)
    xa, ya, _ = a[1]
    _ = b[3], b[0]  # another order first
    xb, yb, _ = b[1]
    assert xa.shape == (1, 32, 32) and ya.shape == (3, 2) and ya.dtype == torch.float32
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    b.set_epoch(3)
    assert not torch.equal(b[1][1], ya)


def test_regressor_without_augmentation_returns_the_stored_targets():
    ds = _regressor_set(None)
    x, y, fell_back = ds[2]
    np.testing.assert_allclose(y.numpy(), ds.landmarks_norm[2], atol=1e-6)
    assert torch.equal(x, to_input(ds.images[2])[0]) and not fell_back


def test_heatmap_dataset_targets():
    size, sigma = 32, 1.5
    xy = np.array([[[10.0, 12.0], [20.0, 22.0]]] * 2)  # (N, K, 2)
    images = np.zeros((2, size, size), np.uint8)
    stored = encode(xy, size, size, sigma, dtype=np.float16)  # (N, K, S, S)
    plain = HeatmapDataset(images, xy, sigma, aug=None, seed=0, targets=stored)
    x, t, _ = plain[1]
    assert x.shape == (1, size, size) and t.shape == (2, size, size) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), stored[1].astype(np.float32))

    aug = HeatmapDataset(images, xy, sigma, aug=AugmentConfig(), seed=0, targets=stored)
    _, t, fell_back = aug[0]
    rng = np.random.default_rng([0, 0, 0])  # the dataset's generator for epoch 0, index 0
    _, moved, _ = augment(images[0], xy[0], AugmentConfig(), rng)
    np.testing.assert_allclose(t.numpy(), encode(moved, size, size, sigma), atol=1e-6)
    assert t.max() <= 1.0 and not fell_back


def test_intensity_variation_only_when_asked_and_it_keeps_the_landmarks() -> None:
    image = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1)).astype(np.uint8)
    xy = np.array([[20.0, 30.0], [40.0, 35.0]])
    plain, varied = AugmentConfig(intensity=False), AugmentConfig(intensity=True, blur_sigma=8.0)
    a = augment(image, xy, plain, np.random.default_rng(3))
    b = augment(image, xy, varied, np.random.default_rng(3))
    np.testing.assert_array_equal(a[1], b[1])  # the same geometric draw: the intensity draws come after it
    assert a[2] == b[2] and b[0].dtype == np.uint8 and b[0].shape == image.shape
    assert not np.array_equal(a[0], b[0])
    # a gamma of exactly 1 without blur or noise leaves the image as it was
    same = AugmentConfig(intensity=True, gamma_range=(1.0, 1.0), blur_sigma=0.0, noise_std=0.0)
    np.testing.assert_array_equal(vary_intensity(image, same, np.random.default_rng(0)), image)
