"""On-the-fly augmentation: the paper's geometric one (random translation, rotation and scale, with OpenCV) and,
with augment.intensity, a random gamma, blur and noise.

Legend: N images, K landmarks, S image side. Landmarks are (K, 2) (x, y) pixel coordinates with pixel centres at
integers, which is the convention of `cv2.warpAffine`: a matrix M moves the content at p to M @ [p, 1].

One 2x3 matrix per sample (rotation and scale about the image centre, then a translation) moves the image and its
landmarks together. Ranges are given at `reference_size` (the paper's 512 px input) and scaled to the image, so the
same params move the anatomy by the same fraction of the image at any size. A draw that would push a landmark off
the image is redrawn up to `max_tries` times; after that the sample keeps the identity (counted, never clipped).

Heatmap targets are not warped: they are rendered again from the moved landmarks (`heatmaps.encode` at the
configured sigma). Warping the stored targets would interpolate and rescale the Gaussians (a 1.3x zoom would widen
sigma by 1.3); re-rendering is exact and keeps sigma constant.
"""

from __future__ import annotations

import cv2
import numpy as np

from lmfusion.config import AugmentConfig

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def random_affine(rng: np.random.Generator, size: int, cfg: AugmentConfig) -> np.ndarray:
    """Draw one (2, 3) matrix for a size x size image: rotation and scale about the centre, then translation.

    Switched-off transforms draw nothing, so the sequence of draws depends only on which ones are on.
    """
    angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg) if cfg.rotate else 0.0
    scale = rng.uniform(*cfg.scale_range) if cfg.scale else 1.0
    if cfg.translate:
        k = size / cfg.reference_size
        tx = rng.uniform(-cfg.translate_x, cfg.translate_x) * k
        ty = rng.uniform(-cfg.translate_y, cfg.translate_y) * k
    else:
        tx = ty = 0.0
    c = (size - 1) / 2.0  # the centre of a size-pixel axis whose pixel centres are 0..size-1
    m = cv2.getRotationMatrix2D((c, c), float(angle), float(scale))  # (2, 3)
    m[:, 2] += (tx, ty)
    return m


def transform_points(xy: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(..., 2) points moved by a (2, 3) matrix; NaN points stay NaN."""
    xy = np.asarray(xy, dtype=np.float64)
    return xy @ matrix[:, :2].T + matrix[:, 2]


def apply_affine(image: np.ndarray, xy: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp an (H, W) image (bilinear, zero border) and its (K, 2) landmarks with the same (2, 3) matrix."""
    h, w = image.shape[:2]
    warped = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    return warped, transform_points(xy, matrix)


def _inside(xy: np.ndarray, height: int, width: int) -> bool:
    """True when every finite landmark lies on a pixel centre range of the image; missing (NaN) ones are ignored."""
    finite = np.isfinite(xy).all(-1)
    p = xy[finite]
    return bool(((p[:, 0] >= 0) & (p[:, 0] <= width - 1) & (p[:, 1] >= 0) & (p[:, 1] <= height - 1)).all())


def draw_affine(rng: np.random.Generator, xy: np.ndarray, size: int, cfg: AugmentConfig,
                required: int | None = None) -> tuple[np.ndarray, bool]:
    """A random matrix that keeps all landmarks (K, 2) inside a size x size image (only the first `required` when
    given: auxiliary points may leave it).

    Returns the matrix and whether it fell back to the identity after `cfg.max_tries` draws.
    """
    for _ in range(cfg.max_tries):
        m = random_affine(rng, size, cfg)
        if _inside(transform_points(xy[:required], m), size, size):
            return m, False
    return IDENTITY.copy(), True


def augment(image: np.ndarray, xy: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
            required: int | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Augment one square (S, S) image and its (K, 2) landmarks (the first `required` kept inside); returns image,
    landmarks, fell_back."""
    m, fell_back = draw_affine(rng, xy, image.shape[-1], cfg, required)
    if fell_back:
        warped, moved = image, np.asarray(xy, dtype=np.float64)
    else:
        warped, moved = apply_affine(image, xy, m)
    if cfg.intensity:
        warped = vary_intensity(warped, cfg, rng)
    return warped, moved, fell_back


def vary_intensity(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A uint8 image (S, S) with a random gamma (log-uniform in gamma_range), Gaussian blur (sigma up to blur_sigma
    px at reference_size) and Gaussian noise (up to noise_std of the range): the contrast, sharpness and noise of
    scanners the synthetic data does not draw."""
    lo, hi = cfg.gamma_range
    x = (image.astype(np.float32) / 255.0) ** np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    sigma = rng.uniform(0.0, cfg.blur_sigma) * image.shape[-1] / cfg.reference_size
    if sigma >= 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    x = x + rng.normal(0.0, rng.uniform(0.0, cfg.noise_std), x.shape).astype(np.float32)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
