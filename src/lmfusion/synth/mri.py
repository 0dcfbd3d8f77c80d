"""MR image formation for the synthetic data: tissue shapes painted onto a pixel grid, then acquired.

`render` paints a scene's shapes in order with anti-aliased masks and per-tissue textures; `acquire` keeps part of
k-space (zero-filled: blur and ringing), applies a smooth bias field and coil profile, a gamma, Rician noise (the
magnitude of complex Gaussian noise) and 16-bit storage. Legend: H x W image; affines map (u, v) mm to (x, y) px.

The bytes do not depend on the CPU. numpy's transcendental functions and reductions, and OpenCV's filters, take
other code paths (and round differently, by a few units in the last place) with AVX2, AVX-512 or none; in float32
those differences changed a few stored values of a study now and then (and with them the dataset's hash). So every
such operation runs in float64, where they stay about twelve orders of magnitude below a stored value's step, and
only plain arithmetic (+, -, x, /, sqrt: correctly rounded on every CPU) runs in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lmfusion.synth import junction
from lmfusion.synth.phantom import Anatomy, inset

# tissue: T2 and T1 intensity (CSF on T2 = 1), texture amplitudes: fine (marrow), coarse (0.5 cm), muscle striation
_AA_GROWTH = 0.7  # px
TISSUES = {
    "air": (0.0, 0.0, 0.0, 0.0, 0.0), "muscle": (0.22, 0.32, 0.05, 0.12, 0.14), "fat": (0.78, 0.92, 0.04, 0.04, 0.03),
    "skin": (0.36, 0.45, 0.05, 0.05, 0.0), "gut": (0.42, 0.45, 0.06, 0.25, 0.0), "wall": (0.18, 0.28, 0.06, 0.1, 0.0),
    "fluid": (0.85, 0.14, 0.05, 0.10, 0.0), "content": (0.34, 0.38, 0.08, 0.15, 0.0), "gas": (0.03, 0.03, 0, 0, 0),
    "liver": (0.20, 0.40, 0.04, 0.08, 0.0), "vessel": (0.08, 0.18, 0.05, 0.1, 0.0),
    "bladder": (0.95, 0.10, 0.02, 0.03, 0.0),
    "csf": (1.0, 0.10, 0.02, 0.05, 0.0), "cord": (0.40, 0.42, 0.03, 0.05, 0.0), "root": (0.30, 0.40, 0, 0, 0),
    "epifat": (0.68, 0.88, 0.06, 0.10, 0.0), "ligament": (0.07, 0.10, 0.05, 0.05, 0.0),
    "cortex": (0.12, 0.10, 0.05, 0.05, 0.0), "marrow": (0.42, 0.58, 0.10, 0.07, 0.0),
    "spinal": (0.30, 0.48, 0.12, 0.10, 0.0), "annulus": (0.13, 0.30, 0.06, 0.05, 0.0),
    "nucleus": (0.85, 0.34, 0.05, 0.05, 0.0),
}

# fat-suppressed T2 (STIR-like) intensities of the tissues that change; the rest keep their T2 values
_STIR = {"fat": 0.07, "epifat": 0.09, "marrow": 0.2, "spinal": 0.16, "muscle": 0.26, "liver": 0.3, "content": 0.4,
         "nucleus": 0.95}
P_MOTION = 0.12


@dataclass
class Look:
    """How the scanner and display treat one series."""

    gamma: float
    noise: float  # Rician sigma relative to CSF on T2
    scale: float  # stored value of intensity 1
    bias: np.ndarray  # (4, 4) log-gain control points
    coil: float  # posterior coil gain slope across the image
    falloff: float  # superior-inferior coverage loss
    resolution: tuple[float, float]  # acquired fraction of k-space along y and x (zero-filled: blur and ringing)
    ghost: float
    rescale: tuple[float, float]
    motion: float = 0.0  # breathing and bowel motion: faint copies smeared along the phase-encoding (x) direction


def blur(img: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """Gaussian blur with sigmas (x, y) in pixels, its kernel cut at 3 sigma (OpenCV's own choice for float images
    is 4 sigma: a third more taps for 0.3 % of the weight)."""
    sy = sx if sy is None else sy
    ksize = (2 * int(np.ceil(3 * sx)) + 1, 2 * int(np.ceil(3 * sy)) + 1)
    return cv2.GaussianBlur(img, ksize, sigmaX=sx, sigmaY=sy)


def _textures(rng: np.random.Generator, shape: tuple[int, int], spacing: tuple[float, float]) -> dict:
    """Unit-variance noise fields: fine mottling (marrow), 5 mm blobs, and streaks along the body axis (muscle)."""
    h, w = shape

    def field(sx: float, sy: float, down: int = 1) -> np.ndarray:
        z = rng.standard_normal((-(-h // down), -(-w // down)))
        z = blur(z, sx / spacing[0] / down, sy / spacing[1] / down)
        if down > 1:
            z = cv2.resize(z, (w, h), interpolation=cv2.INTER_CUBIC)
        return z / (z.std() + 1e-6)

    mottle = field(0.6, 0.6) + field(1.8, 1.8, 2)  # marrow: grain on top of 2 mm mottling
    fields = {"fine": mottle / mottle.std(), "coarse": field(5.0, 5.0, 4), "stri": field(0.5, 5.0, 2)}
    return {k: v.astype(np.float32) for k, v in fields.items()}  # rounded once: render paints in float32


def _coverage(pts: list[np.ndarray], box: tuple[int, int, int, int], thick: int, exact: bool,
              soft: bool) -> np.ndarray:
    """Anti-aliased coverage (0..255, float64) of polygons or polylines in box (x0, y0, x1, y1).

    `exact` shapes (the bodies and discs whose centroids are the landmarks) are filled at 4x without anti-aliasing
    and averaged down, which keeps their area centroid within a few hundredths of a pixel; the others use OpenCV's
    anti-aliased fill, which covers about 0.7 px beyond the edge, so they are inset first (unless blurred anyway).
    """
    x0, y0, x1, y1 = box
    if thick:
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.polylines(mask, [np.round((q - (x0, y0)) * 16).astype(np.int32) for q in pts], False, 255, thick,
                      cv2.LINE_AA, shift=4)
        return mask.astype(np.float64)
    k = 4 if exact else 1
    mask = np.zeros((k * (y1 - y0), k * (x1 - x0)), np.uint8)
    for q in pts:
        q = k * (q - (x0, y0)) + (k - 1) / 2  # pixel centres stay at integers
        if not soft:
            q = inset(q, 0.5 if k > 1 else _AA_GROWTH)
        q = np.round(q * 16).astype(np.int32)
        cv2.fillPoly(mask, [q], 255, cv2.LINE_8 if k > 1 else cv2.LINE_AA, shift=4)
    if k == 1:
        return mask.astype(np.float64)
    return cv2.resize(mask.astype(np.float64), (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)


def render(anatomy: Anatomy, values: dict[str, float], affine: np.ndarray, shape: tuple[int, int],
            spacing: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Paint the shapes in order with anti-aliased masks; returns (H, W) float32 intensities.

    Masks and textures come from OpenCV's filters in float64 and are rounded once to float32; the painting itself
    is float32 arithmetic (+, -, x), which rounds the same way on every CPU."""
    h, w = shape
    img = np.zeros(shape, np.float32)
    tex = _textures(rng, shape, spacing)
    for s in anatomy.shapes:
        if not s.polys or s.alpha <= 0:  # no polygons, or geometry only (the fused sacrum's segments)
            continue
        pts = [q @ affine[:, :2].T + affine[:, 2] for q in s.polys]
        thick = max(1, int(round(s.width / spacing[0]))) if s.width else 0
        sigma = s.soft / spacing[0]
        pad = 2 + thick + int(np.ceil(3 * sigma))
        allp = np.concatenate(pts)
        x0, y0 = np.maximum(np.floor(allp.min(0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(allp.max(0)).astype(int) + pad + 1, (w, h))
        if x0 >= x1 or y0 >= y1:
            continue
        a = _coverage(pts, (x0, y0, x1, y1), thick, s.exact, sigma > 0.3) * (s.alpha / 255.0)
        if sigma > 0.3:
            a = blur(a, sigma)
        a = a.astype(np.float32)
        base = values[s.tissue] * (1 - s.mix) + (values[s.mix_to] * s.mix if s.mix else 0.0)
        fa, ca, sa = (TISSUES[s.tissue] if s.tissue in TISSUES else junction.TISSUES[s.tissue])[2:]
        box = (slice(y0, y1), slice(x0, x1))
        val = fa * tex["fine"][box]  # val = base x gain x (1 + textures), roi += a x (val - roi), in place
        val += 1
        val += ca * tex["coarse"][box]
        val += sa * tex["stri"][box]
        val *= base * s.gain
        roi = img[box]
        val -= roi
        val *= a
        roi += val
    return img


def kspace(img: np.ndarray, fraction: tuple[float, float]) -> np.ndarray:
    """Keep the central `fraction` of k-space per axis with a short cosine taper, as a zero-filled acquisition."""
    h, w = img.shape

    def window(freq: np.ndarray, frac: float) -> np.ndarray:
        r = np.abs(freq) / (0.5 * frac)  # 1 at the acquired edge
        return np.where(r < 0.85, 1.0, np.where(r < 1.0, 0.5 + 0.5 * np.cos(np.pi * (r - 0.85) / 0.15), 0.0))

    k = np.fft.rfft2(img.astype(np.float64))
    k *= (window(np.fft.fftfreq(h), fraction[0])[:, None] * window(np.fft.rfftfreq(w), fraction[1])[None, :])
    return np.fft.irfft2(k, s=(h, w))


def acquire(clean: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Limited k-space, motion ghost, bias field, gamma and Rician noise; returns the stored uint16 values."""
    h, w = clean.shape
    img = kspace(clean, look.resolution)
    if look.ghost:  # a faint motion ghost along the phase-encoding (x) direction
        img = img + look.ghost * np.roll(img, w // 2, axis=1)
    if look.motion:
        shifts = rng.integers(2, max(3, w // 12), 4) * rng.choice([-1, 1], 4)
        img = (1 - look.motion) * img + look.motion * np.mean([np.roll(img, int(d), axis=1) for d in shifts], 0)
    bias = cv2.resize(look.bias.astype(np.float64), (w, h), interpolation=cv2.INTER_CUBIC)
    x = np.linspace(-0.5, 0.5, w)[None, :]
    y = np.linspace(-1, 1, h)[:, None]
    img = np.maximum(img, 0) * np.exp(bias + look.coil * x - look.falloff * y ** 2)
    img = img ** look.gamma
    n = rng.standard_normal((2, h, w)) * look.noise
    mag = np.sqrt((img + n[0]) ** 2 + n[1] ** 2) * (look.scale / look.rescale[0])
    return np.clip(np.round(mag), 0, 65535).astype(np.uint16)


def sample_look(rng: np.random.Generator, dark: bool) -> Look:
    """Scanner settings for one series; `dark` gives a high gamma (most tissue near black, fat and CSF bright)."""
    slope = float(rng.choice([0.5, 2.0, 3.1])) if rng.random() < 0.1 else 1.0
    return Look(gamma=rng.uniform(1.6, 2.3) if dark else rng.uniform(0.75, 1.35), noise=rng.uniform(0.012, 0.045),
                scale=rng.uniform(300, 3000), bias=rng.normal(0, 0.12, (4, 4)), coil=rng.uniform(-0.2, 1.2),
                falloff=rng.uniform(0, 0.5), resolution=(rng.uniform(0.7, 0.95), rng.uniform(0.6, 0.9)),
                ghost=rng.uniform(0.01, 0.05) if rng.random() < 0.3 else 0.0, rescale=(slope, 0.0),
                motion=rng.uniform(0.1, 0.3) if rng.random() < P_MOTION else 0.0)


def tissue_values(rng: np.random.Generator, column: int, stir: bool = False) -> dict[str, float]:
    """Per-study tissue intensities for one contrast (column 0: T2, 1: T1), each varied by up to 15 %.

    `stir`: a fat-suppressed T2 (STIR-like): fat and fatty marrow go dark, fluid, discs and the canal stay bright.
    """
    values = {k: v[column] * (rng.uniform(0.85, 1.15) if k != "csf" else 1.0) for k, v in TISSUES.items()}
    if stir:
        values.update({k: v * rng.uniform(0.8, 1.2) for k, v in _STIR.items()})
    return values


def fold(img: np.ndarray, margin: int) -> np.ndarray:
    """Wrap-around: an image rendered `margin` px wider on each side of x, the overhangs folded onto the far sides
    (anatomy outside a too small phase-encoding field of view aliases into it)."""
    if margin <= 0:
        return img
    out = img[:, margin:-margin].copy()
    out[:, -margin:] += img[:, :margin]
    out[:, :margin] += img[:, -margin:]
    return out
