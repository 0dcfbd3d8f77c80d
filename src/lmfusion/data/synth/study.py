"""One synthetic study: the subject, its series and the annotated landmarks (written by `challenge`).

A study has a sagittal T2 series (3 slices, the middle one annotated), a sagittal T1 slice and an axial T2 slice.
The subject comes from `phantom` / `phantom_spine` (geometry in mm), the images from `mri` (rendering and
acquisition); here each study gets its matrix, pixel spacing and field of view, and is written with its UIDs and
annotation. Landmarks are the drawn shapes' centroids mapped by the image's affine and rounded to 2 decimals (the
rounded values are the ground truth). Legend: K landmarks, H x W image; points are (x, y) = (column, row), pixel
centres at integers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmfusion import config
from lmfusion.data.synth import axial, mri, phantom
from lmfusion.data.synth import spine as phantom_spine
from lmfusion.errors import ParamError
_MATRICES = ((256, 0.06), (320, 0.14), (384, 0.32), (448, 0.16), (512, 0.22), (576, 0.05), (640, 0.05))
_DESCRIPTIONS = {"t2sag": ("T2_TSE_SAG", "t2_tse_sag", "SAG T2 FSE", "T2_TSE_SAG_384"),
                 "t1sag": ("T1_TSE_SAG", "t1_tse_sag", "SAG T1 FSE"), "t2ax": ("T2_TSE_TRA", "t2_tse_tra", "AX T2 FSE")}
# default: as varied as real lumbar series; target: a small set in another style (the pretraining measurement's
# target domain)
STYLES = ("default", "target")


@dataclass
class SynthImage:
    """One DICOM file to write."""

    series: str  # t2sag | t1sag | t2ax
    index: int  # slice index in its series (the annotation's zIndex)
    pixels: np.ndarray  # (H, W) uint16 stored values
    spacing: tuple[float, float]  # (x, y) mm
    description: str
    orientation: tuple[float, ...]
    position: tuple[float, float, float]
    echo_time: float
    repetition_time: float
    rescale: tuple[float, float]


@dataclass
class SynthStudy:
    image: np.ndarray  # (H, W) uint16, the annotated mid-sagittal T2 slice (stored values)
    landmarks: np.ndarray  # (K, 2) float64 (x, y) pixels, rounded to 2 decimals
    spacing: tuple[float, float]  # (x, y) mm of the annotated slice
    names: tuple[str, ...]
    tags: tuple[str, ...]  # per landmark grading tag: v1.. for bodies and discs
    extra: dict[str, tuple[np.ndarray, str]]  # other points of the drawn anatomy (e.g. T11-T12) and their tags
    images: list[SynthImage]
    annotated: int  # index of the annotated slice in `images`


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ParamError(f"synth style: unknown style {style!r}; known: {', '.join(STYLES)}")


def check_names(names: tuple[str, ...]) -> None:
    known = phantom.LEVELS + phantom.DISCS
    for n in names:
        if n not in known:
            raise ParamError(f"synth landmarks: unknown name {n!r}; known: {', '.join(known)}")


def _grid(rng: np.random.Generator, pts: np.ndarray) -> tuple[int, int, tuple[float, float], np.ndarray]:
    """Matrix, spacing and the mm -> pixel affine (2, 3), so that `pts` (mm) fall inside with a margin."""
    span = np.ptp(pts, 0)
    fov = max(rng.uniform(300, 400), span[1] / 0.72, span[0] / 0.6)
    sizes, probs = zip(*_MATRICES)
    h = int(rng.choice(sizes, p=probs))
    while h * 0.9 < fov and h < sizes[-1]:
        h = sizes[sizes.index(h) + 1]
    sx = round(float(np.clip(fov / h, 0.5, 0.9)), 6)
    sy = sx if rng.random() < 0.75 else round(float(np.clip(sx * rng.uniform(0.96, 1.04), 0.5, 0.9)), 6)
    w = h
    if rng.random() < 0.15:
        w = max(256, int(round(h * rng.uniform(0.78, 0.95) / 16)) * 16)
        w = max(w, min(h, int(np.ceil(span[0] / 0.6 / sx / 16)) * 16))
    scale = np.array([1 / sx, 1 / sy])
    lo, hi = (pts.min(0) - pts.mean(0)) * scale, (pts.max(0) - pts.mean(0)) * scale
    want = np.array([rng.uniform(0.35, 0.58) * (w - 1), rng.uniform(0.42, 0.58) * (h - 1)])
    margin = np.array([0.1 * w, 0.07 * h])
    anchor = np.clip(want, margin - lo, np.array([w - 1, h - 1]) - margin - hi)
    affine = np.column_stack([np.diag(scale), anchor - pts.mean(0) * scale])
    return h, w, (sx, sy), affine


def _tags(p: phantom.Patient) -> dict[str, str]:
    """Grading tags as in the challenge: bodies v1 (normal) / v2 (wedge or next to a worn disc); discs v1..v4."""
    tags = {}
    for i, lv in enumerate(phantom.LEVELS):
        near = max(p.degeneration[max(i - 1, 0)], p.degeneration[i])
        tags[lv] = "v2" if p.extras["wedge"] == i or near > 0.8 else "v1"
    for i, dn in enumerate(phantom.DISCS):
        tags[dn] = "v" + str(1 + int(np.searchsorted([0.3, 0.6, 0.85], p.degeneration[i], side="right")))
    return tags


def generate_study(rng: np.random.Generator, names: tuple[str, ...] = config.LANDMARKS,
                   style: str = "default") -> SynthStudy:
    """One synthetic study (all its images in memory) drawn from `rng` in `style` (STYLES)."""
    names = tuple(names)
    check_names(names)
    check_style(style)
    p = phantom.sample_patient(rng)
    mid = phantom_spine.build_sagittal(p, 0.0)
    h, w, spacing, affine = _grid(rng, np.array([mid.points[n] for n in names]))
    to_px = lambda q: q @ affine[:, :2].T + affine[:, 2]  # noqa: E731
    landmarks = np.round(to_px(np.array([mid.points[n] for n in names])), 2)
    dark = rng.random() < 0.18
    look_t2, look_t1 = mri.sample_look(rng, dark), mri.sample_look(rng, dark and rng.random() < 0.5)
    t2, t1 = mri.tissue_values(rng, 0), mri.tissue_values(rng, 1)
    gap = round(float(rng.uniform(3.8, 5.5)), 2)
    table = np.round(rng.uniform(-40, 40, 2), 2)
    te2, tr2 = round(float(rng.uniform(90, 125)), 1), round(float(rng.uniform(2500, 4200)), 0)
    descr = {k: str(rng.choice(v)) for k, v in _DESCRIPTIONS.items()}
    images = []

    def position(x: float, sp: tuple[float, float]) -> tuple[float, float, float]:
        # the top-left pixel centre; rows run along +y (posterior), columns along -z (inferior)
        return (x, round(table[0] - w * spacing[0] / 2 + sp[0] / 2, 4),
                round(table[1] + h * spacing[1] / 2 - sp[1] / 2, 4))

    for k, lateral in enumerate((gap, 0.0, -gap)):  # instance order = ImagePositionPatient along the slice normal
        anatomy = mid if lateral == 0 else phantom_spine.build_sagittal(p, lateral)
        pix = mri.acquire(mri.render(anatomy, t2, affine, (h, w), spacing, rng), look_t2, rng)
        images.append(SynthImage("t2sag", k, pix, spacing, descr["t2sag"], (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                                 position(lateral, spacing), te2, tr2, look_t2.rescale))
    # T1: same field of view on a coarser matrix
    h1 = max(256, int(round(h * rng.uniform(0.55, 0.8) / 16)) * 16) if h > 256 else h
    w1 = int(round(w * h1 / h))
    sp1 = (round(w * spacing[0] / w1, 6), round(h * spacing[1] / h1, 6))
    aff1 = affine * np.array([[w1 / w], [h1 / h]])
    aff1[:, 2] += 0.5 * np.array([w1 / w, h1 / h]) - 0.5
    pix = mri.acquire(mri.render(mid, t1, aff1, (h1, w1), sp1, rng), look_t1, rng)
    images.append(SynthImage("t1sag", 0, pix, sp1, descr["t1sag"], (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                             position(0.0, sp1), round(float(rng.uniform(8, 14)), 1),
                             round(float(rng.uniform(400, 700)), 0), look_t1.rescale))
    # axial T2 through L4-L5
    ha = 256 if rng.random() < 0.8 else 320
    spa = round(float(rng.uniform(0.62, 0.8)), 6)
    centre = np.array([(ha - 1) / 2 + rng.normal(0, 8), rng.uniform(0.40, 0.48) * ha])
    aff_a = np.column_stack([np.eye(2) / spa, centre])
    pix = mri.acquire(mri.render(axial.build_axial(p), t2, aff_a, (ha, ha), (spa, spa), rng), look_t2, rng)
    z = table[1] + h * spacing[1] / 2 - to_px(mid.points["L4-L5"][None])[0, 1] * spacing[1]
    images.append(SynthImage("t2ax", 0, pix, (spa, spa), descr["t2ax"], (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                             (round(-centre[0] * spa, 4), round(table[0] - centre[1] * spa, 4), round(float(z), 4)),
                             te2, tr2, look_t2.rescale))
    tags = _tags(p)
    extra = {n: (np.round(to_px(v[None])[0], 2), tags[n]) for n, v in mid.points.items() if n not in names}
    return SynthStudy(image=images[1].pixels, landmarks=landmarks, spacing=spacing, names=names,
                      tags=tuple(tags[n] for n in names), extra=extra, images=images, annotated=1)
