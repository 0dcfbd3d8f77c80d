"""The randomized style's contrast and acquisition: every tissue's value drawn per study, and a wider scanner.

In the spirit of SynthSeg (Billot et al. 2023): the networks should learn shapes and their order, not one contrast.
`tissue_values` draws a value per tissue of `mri.TISSUES` around a T2, a T1 or an inverted ordering, or each one
uniformly at random; `sample_scanner` draws the acquisition that `acquire` applies to a rendered slice: k-space
truncation with or without a taper (blur and ringing), Gaussian blur, motion copies and a ghost along the
phase-encoding axis, a bias field of random smoothness, gamma and Rician noise. Resolution loss and wrap-around
(`coarse`, `wrap`, `phase_axis`) act while rendering (randomize.py). The unseen style (a yardstick no training sees)
fixes some of these choices: `t1_values` and `low_resolution_scanner`. Legend: H x W image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from lmfusion.synth import mri

ORDERINGS = ("T2", "T1", "inverted", "random")
_P_ORDERINGS = (0.3, 0.2, 0.15, 0.35)
_MIN_DISC_CONTRAST = 0.12  # between marrow and disc (annulus or nucleus), so the levels stay countable


def tissue_values(rng: np.random.Generator) -> tuple[dict[str, float], str]:
    """One contrast: a value per tissue of mri.TISSUES (0..1.2) and the ordering it was drawn around (ORDERINGS).

    T2, T1 and inverted (1 - T2) orderings each tissue jittered independently by about 25 %; random: every tissue
    uniform in 0..1. The background (air) is near black mostly, anything up to 0.6 sometimes.
    """
    names = tuple(mri.TISSUES)
    kind = str(rng.choice(ORDERINGS, p=_P_ORDERINGS))
    if kind == "random":
        values = rng.uniform(0, 1, len(names))
    else:
        t2 = np.array([mri.TISSUES[k][0] for k in names])
        base = {"T2": t2, "T1": np.array([mri.TISSUES[k][1] for k in names]), "inverted": 1 - t2}[kind]
        values = np.clip(base * np.exp(rng.normal(0, 0.25, len(names))), 0, 1.2)
    out = dict(zip(names, values.astype(float)))
    out["air"] = float(rng.uniform(0, 0.05) if rng.random() < 0.8 else rng.uniform(0, 0.6))
    for _ in range(20):
        if max(abs(out["marrow"] - out["annulus"]), abs(out["marrow"] - out["nucleus"])) >= _MIN_DISC_CONTRAST:
            break
        out["marrow"] = float(rng.uniform(0, 1))
    return out, kind


@dataclass
class Scanner:
    """How one series is acquired in the randomized (and unseen) style."""

    gamma: float
    noise: float  # Rician sigma, relative to intensity 1
    scale: float  # stored value of intensity 1
    bias: np.ndarray  # (G, G) log-gain control points, G = 2..6 (fewer: smoother)
    kspace: tuple[float, float]  # acquired fraction of k-space along y and x
    taper: float  # width of the k-space edge's cosine taper (0: a hard edge, strong ringing)
    blur: float  # Gaussian sigma in px after reconstruction
    coarse: float  # acquired matrix / displayed matrix (< 1: interpolated up)
    interp: int  # OpenCV interpolation used to bring a coarse slice to the displayed matrix
    phase_axis: int  # 1: phase encoding along x (columns), 0: along y (rows)
    wrap: float  # fraction of the phase-encoding extent folded over from each side (0: none)
    motion: float  # weight of copies shifted along the phase axis (breathing, bowel)
    ghost: float  # a copy shifted by half the field of view
    rescale: tuple[float, float]


def sample_scanner(rng: np.random.Generator) -> Scanner:
    """Draw one series' acquisition; every setting is drawn even where unused, so draws do not depend on others."""
    g = int(rng.integers(2, 7))
    low = rng.random() < 0.35
    slope = float(rng.choice([0.5, 2.0, 3.1])) if rng.random() < 0.1 else 1.0
    return Scanner(
        gamma=float(np.exp(rng.normal(0, 0.35))), noise=float(rng.uniform(0, 0.3) ** 2),
        scale=float(rng.uniform(300, 3000)), bias=rng.normal(0, rng.uniform(0.05, 0.45), (g, g)),
        kspace=(float(rng.uniform(0.35, 1.0)), float(rng.uniform(0.35, 1.0))), taper=float(rng.uniform(0, 0.3)),
        blur=float(rng.uniform(0.5, 1.8)) if rng.random() < 0.25 else 0.0,
        coarse=float(rng.uniform(0.35, 0.8)) if low else 1.0,
        interp=int(rng.choice([cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC])),
        phase_axis=int(rng.random() < 0.75), wrap=float(rng.uniform(0.05, 0.2)) if rng.random() < 0.15 else 0.0,
        motion=float(rng.uniform(0.1, 0.35)) if rng.random() < 0.15 else 0.0,
        ghost=float(rng.uniform(0.02, 0.08)) if rng.random() < 0.25 else 0.0, rescale=(slope, 0.0))


def t1_values(rng: np.random.Generator) -> tuple[dict[str, float], str]:
    """The unseen style's contrast: T1-like, fat and a fatty marrow bright, CSF and discs dark-ish.

    mri.TISSUES' T1 values, the marrow raised 15-45 % (fatty marrow), each tissue jittered by about 10 %; the marrow
    stays at least 0.15 above both disc tissues. Returns the values and the ordering "T1".
    """
    names = tuple(mri.TISSUES)
    base = np.array([mri.TISSUES[k][1] for k in names]) * np.exp(rng.normal(0, 0.1, len(names)))
    out = dict(zip(names, np.clip(base, 0, 1.2).astype(float)))
    out["marrow"] = float(min(1.0, out["marrow"] * rng.uniform(1.15, 1.45)))
    out["marrow"] = max(out["marrow"], out["annulus"] + 0.15, out["nucleus"] + 0.15)
    out["air"] = float(rng.uniform(0, 0.03))
    return out, "T1"


def low_resolution_scanner(rng: np.random.Generator) -> Scanner:
    """The unseen style's acquisition: a randomized draw (`sample_scanner`) with a coarse matrix (35-50 % of the
    displayed one, interpolated up) of which only the central 60-85 % of k-space is kept per axis (about 1.5-3.5 mm
    resolved at typical spacings), a strong smooth bias field (2 x 2 or 3 x 3 control points spanning 1.4-2.0 in log
    gain, a 4-7 fold change across the image) and gamma near 1; no blur, wrap-around, motion or ghost."""
    sc = sample_scanner(rng)
    g = int(rng.integers(2, 4))
    bias = rng.normal(0, 1, (g, g))
    bias = (bias - bias.mean()) / max(float(np.ptp(bias)), 1e-6) * rng.uniform(1.4, 2.0)
    coarse = float(rng.uniform(0.35, 0.5))  # k-space below in the displayed matrix's units: of the coarse one's
    return replace(sc, gamma=float(np.exp(rng.normal(0, 0.1))), bias=bias,
                   kspace=(coarse * float(rng.uniform(0.6, 0.85)), coarse * float(rng.uniform(0.6, 0.85))),
                   taper=float(rng.uniform(0.1, 0.3)), blur=0.0, coarse=coarse,
                   interp=int(rng.choice([cv2.INTER_LINEAR, cv2.INTER_CUBIC])), wrap=0.0, motion=0.0, ghost=0.0)


def kspace(img: np.ndarray, fraction: tuple[float, float], taper: float) -> np.ndarray:
    """Keep the central `fraction` of k-space per axis (zero-filled), with a cosine taper `taper` wide at its edge."""
    h, w = img.shape

    def window(freq: np.ndarray, frac: float) -> np.ndarray:
        r = np.abs(freq) / (0.5 * frac)  # 1 at the acquired edge
        if taper <= 1e-3:
            return (r <= 1.0).astype(np.float64)
        return np.clip(0.5 + 0.5 * np.cos(np.pi * np.clip((r - 1 + taper) / taper, 0, 1)), 0, 1) * (r <= 1.0)

    k = np.fft.rfft2(img.astype(np.float64))
    k *= window(np.fft.fftfreq(h), fraction[0])[:, None] * window(np.fft.rfftfreq(w), fraction[1])[None, :]
    return np.fft.irfft2(k, s=(h, w))


def upsample(img: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    """`img` brought to `size` (w, h) with the scanner's interpolation. Bilinear is computed here (in float64, one
    fixed order of operations: the same bytes on every CPU), as OpenCV's INTER_LINEAR places its taps (pixel centres
    at integers, edges clamped); OpenCV's own bilinear path changes its results with cv2.setUseOptimized."""
    if interp != cv2.INTER_LINEAR:
        return cv2.resize(img, size, interpolation=interp)

    def taps(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n_dst) + 0.5) * (n_src / n_dst) - 0.5
        lo = np.clip(np.floor(pos).astype(int), 0, n_src - 1)
        frac = np.where((pos < 0) | (lo >= n_src - 1), 0.0, pos - lo)
        return lo, np.minimum(lo + 1, n_src - 1), frac

    y0, y1, fy = taps(img.shape[0], size[1])
    x0, x1, fx = taps(img.shape[1], size[0])
    rows = img[y0] * (1 - fy)[:, None] + img[y1] * fy[:, None]  # (h, W)
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx  # (h, w)


def fold(img: np.ndarray, margin: int, axis: int) -> np.ndarray:
    """mri.fold along x (axis 1) or y (axis 0)."""
    return mri.fold(img, margin) if axis == 1 else mri.fold(img.T, margin).T.copy()


def acquire(clean: np.ndarray, sc: Scanner, rng: np.random.Generator) -> np.ndarray:
    """k-space, blur, ghost and motion, bias field, gamma and Rician noise; returns the stored (H, W) uint16."""
    h, w = clean.shape
    img = kspace(clean, sc.kspace, sc.taper)
    if sc.blur:
        img = mri.blur(img, sc.blur)
    along = img.shape[sc.phase_axis]
    if sc.ghost:
        img = img + sc.ghost * np.roll(img, along // 2, axis=sc.phase_axis)
    if sc.motion:
        shifts = rng.integers(2, max(3, along // 10), 4) * rng.choice([-1, 1], 4)
        copies = np.mean([np.roll(img, int(d), axis=sc.phase_axis) for d in shifts], 0)
        img = (1 - sc.motion) * img + sc.motion * copies
    bias = cv2.resize(sc.bias.astype(np.float64), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.maximum(img, 0) ** sc.gamma * np.exp(bias)
    n = rng.standard_normal((2, h, w)) * sc.noise
    mag = np.sqrt((img + n[0]) ** 2 + n[1] ** 2) * (sc.scale / sc.rescale[0])
    return np.clip(np.round(mag), 0, 65535).astype(np.uint16)
