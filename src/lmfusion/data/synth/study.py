"""One synthetic study: the subject, its series and the annotated landmarks (written by `tianchi`).

A study has a sagittal T2 series (3 slices, the middle one annotated), a sagittal T1 slice and an axial T2 slice.
The subject comes from `phantom` / `spine` (geometry in mm), the images from `mri` (rendering and
acquisition); here each study gets its matrix, pixel spacing and field of view, and is written with its UIDs and
annotation. Landmarks are the drawn shapes' centroids mapped by the image's affine and rounded to 2 decimals (the
rounded values are the ground truth). Legend: K landmarks, H x W image; points are (x, y) = (column, row), pixel
centres at integers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmfusion import config
from lmfusion.anatomy import TURN_POINTS, lumbosacral_turn_deg
from lmfusion.data.synth import axial, mri, phantom
from lmfusion.data.synth import spine as phantom_spine
from lmfusion.errors import ParamError
_MATRICES = ((256, 0.06), (320, 0.12), (384, 0.28), (448, 0.14), (512, 0.2), (576, 0.06), (640, 0.05), (704, 0.04),
             (768, 0.05))
_TOP_LEVEL = "T6"  # the highest body centre a field of view may reach (the drawn spine starts at T5)
_MAX_SPACING = 1.1  # mm: coarser pixels only on the smallest matrices of the largest fields of view
# default: as varied as real lumbar series; target: a small set in another style, every series fat-suppressed
# (STIR-like) and the lumbosacral junctions steeper (the pretraining measurement's target domain); randomized: every
# tissue value, the acquisition and more anatomy drawn per study (its own draws, in randomize.py); unseen: the
# randomized generator with a thick slice, a T1-like contrast, low resolution and a strong bias field fixed, for
# judging only (benchmarks/bench_styles.py): no training set should use it
STYLES = {"default": {"stir": 0.12, "lordosis": phantom.LORDOSIS_MEDIAN},
          "target": {"stir": 1.0, "lordosis": 2.0}, "randomized": {}, "unseen": {}}
HARD_CASES = ("steep junction", "sacralised L5", "lumbarised S1", "view to T8", "sacrum cut", "spine in upper half",
              "small spine", "matrix over 700", "non-square", "STIR-like", "wrap-around", "motion", "dark")
RANDOMIZED_CASES = ("inverted", "T1-like", "random contrast", "thick slice", "scoliotic roll", "low resolution",
                    "ringing", "strong bias", "collapsed disc", "Modic", "osteophytes", "herniation", "ribs",
                    "iliac crest", "strong warp")  # shown by randomized and unseen studies only, besides HARD_CASES
_P_WRAP = 0.08
_DESCRIPTIONS = {"t2sag": ("T2_TSE_SAG", "t2_tse_sag", "SAG T2 FSE", "T2_TSE_SAG_384"),
                 "t1sag": ("T1_TSE_SAG", "t1_tse_sag", "SAG T1 FSE"), "t2ax": ("T2_TSE_TRA", "t2_tse_tra", "AX T2 FSE")}


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
    cases: tuple[str, ...] = ()  # the hard cases this study shows (HARD_CASES, and RANDOMIZED_CASES)


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ParamError(f"synth style: unknown style {style!r}; known: {', '.join(STYLES)}")


def style_cases(style: str) -> tuple[str, ...]:
    """The cases a style's studies can show (SynthStudy.cases)."""
    return HARD_CASES + (RANDOMIZED_CASES if style in ("randomized", "unseen") else ())


def check_names(names: tuple[str, ...]) -> None:
    known = phantom.LEVELS + phantom.DISCS
    for n in names:
        if n not in known:
            raise ParamError(f"synth landmarks: unknown name {n!r}; known: {', '.join(known)}")


def _grid(rng: np.random.Generator, pts: np.ndarray, top: float) -> tuple[int, int, tuple[float, float], np.ndarray]:
    """Matrix, spacing and the mm -> pixel affine (2, 3) of a field of view as scanners set it.

    The landmarks `pts` (mm) fill 30-90 % of the image height; the chain sits anywhere from the top of the image
    (the pelvis filling the rest) to the bottom edge (the sacrum cut off), so the view reaches from the lower
    lumbar spine alone up to the mid-thoracic spine, but never above `top` (v in mm, where the drawn spine ends).
    Matrices run from 256 to 768 px, 15 % of them non-square.
    """
    span = np.ptp(pts, 0)
    fill = 0.3 + 0.6 * rng.beta(2.0, 2.0)
    fov = max(span[1] / fill, span[0] / 0.6, 200.0)
    sizes, probs = zip(*_MATRICES)
    h = int(rng.choice(sizes, p=probs))
    while h * _MAX_SPACING < fov and h < sizes[-1]:
        h = sizes[sizes.index(h) + 1]
    sx = round(float(np.clip(fov / h, 0.5, _MAX_SPACING)), 6)
    sy = sx if rng.random() < 0.75 else round(float(np.clip(sx * rng.uniform(0.96, 1.04), 0.5, _MAX_SPACING)), 6)
    w = h
    if rng.random() < 0.15:
        w = max(256, int(round(h * rng.uniform(0.7, 0.95) / 16)) * 16)
        w = max(w, min(h, int(np.ceil(span[0] / 0.6 / sx / 16)) * 16))
    scale = np.array([1 / sx, 1 / sy])
    lo, hi = (pts.min(0) - pts.mean(0)) * scale, (pts.max(0) - pts.mean(0)) * scale
    margin = np.array([0.1 * w, 0.04 * h])
    room = np.array([w - 1, h - 1]) - 2 * margin - (hi - lo)  # free play of the landmarks' box, >= 0 mostly
    want = margin - lo + np.array([rng.uniform(0.25, 0.75), rng.beta(0.8, 0.8)]) * np.maximum(room, 0)
    upper = np.array([w - 1, h - 1]) - margin - hi
    upper[1] = min(upper[1], (pts[:, 1].mean() - top) * scale[1])  # image row 0 at or below `top`
    anchor = np.maximum(np.minimum(want, upper), margin - lo)
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


def _cases(p: phantom.Patient, px: dict[str, np.ndarray], shape: tuple[int, int], fill: float, stir: bool,
           wrap: int, look: mri.Look, dark: bool) -> tuple[str, ...]:
    """The HARD_CASES a study shows, from its patient, the landmarks' pixels `px` and its acquisition."""
    h, w = shape
    turn = lumbosacral_turn_deg(np.array([[px[n] for n in TURN_POINTS]]), np.ones((1, 2)), TURN_POINTS)[0]  # px
    shown = {"steep junction": turn > 45, "sacralised L5": p.extras["transitional"] == "sacralised",
             "lumbarised S1": p.extras["transitional"] == "lumbarised", "view to T8": px["T8"][1] >= 0,
             "sacrum cut": px["S2"][1] > h - 1, "spine in upper half": px["L5-S1"][1] < 0.55 * h,
             "small spine": fill < 0.4, "matrix over 700": max(h, w) > 700, "non-square": h != w,
             "STIR-like": stir, "wrap-around": wrap > 0, "motion": look.motion > 0, "dark": dark}
    return tuple(c for c in HARD_CASES if shown[c])


def generate_study(rng: np.random.Generator, names: tuple[str, ...] = config.LANDMARKS,
                   style: str = "default") -> SynthStudy:
    """One synthetic study (all its images in memory) drawn from `rng` in `style` (STYLES)."""
    names = tuple(names)
    check_names(names)
    check_style(style)
    if style in ("randomized", "unseen"):  # their own draws; the other styles' below stay as they were
        from lmfusion.data.synth import randomize

        draws = randomize.UNSEEN if style == "unseen" else randomize.RANDOMIZED
        return randomize.generate_randomized(rng, names, draws)
    p = phantom.sample_patient(rng, STYLES[style]["lordosis"])
    mid = phantom_spine.build_sagittal(p, 0.0)
    pts = np.array([mid.points[n] for n in names])
    h, w, spacing, affine = _grid(rng, pts, mid.points[_TOP_LEVEL][1])
    to_px = lambda q: q @ affine[:, :2].T + affine[:, 2]  # noqa: E731
    landmarks = np.round(to_px(pts), 2)
    dark = rng.random() < 0.18
    stir = bool(rng.random() < STYLES[style]["stir"])
    look_t2, look_t1 = mri.sample_look(rng, dark), mri.sample_look(rng, dark and rng.random() < 0.5)
    t2, t1 = mri.tissue_values(rng, 0, stir), mri.tissue_values(rng, 1)
    wrap = int(rng.uniform(0.08, 0.2) * w) if rng.random() < _P_WRAP else 0
    wide = affine + np.array([[0, 0, wrap], [0, 0, 0]])  # the T2 slices of a wrapped study, before folding
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
        clean = mri.fold(mri.render(anatomy, t2, wide, (h, w + 2 * wrap), spacing, rng), wrap)
        pix = mri.acquire(clean, look_t2, rng)
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
    extra = {n: (np.round(to_px(v[None])[0], 2), tags[n]) for n, v in mid.points.items()
             if n not in names and n in tags}
    px = {n: to_px(v[None])[0] for n, v in mid.points.items()}
    fill = float(np.ptp(pts[:, 1]) / (h * spacing[1]))
    return SynthStudy(image=images[1].pixels, landmarks=landmarks, spacing=spacing, names=names,
                      tags=tuple(tags[n] for n in names), extra=extra, images=images, annotated=1,
                      cases=_cases(p, px, (h, w), fill, stir, wrap, look_t2, dark))
