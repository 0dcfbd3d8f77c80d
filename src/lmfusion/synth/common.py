"""What every style's study shares: the series it writes (SynthImage, SynthStudy), the field of view and matrix
as scanners set them, the challenge's grading tags and the hard cases a study shows.

Legend: K landmarks, H x W image; points are (x, y) = (column, row), pixel centres at integers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from lmfusion.anatomy import TURN_POINTS, lumbosacral_turn_deg
from lmfusion.errors import ParamError
from lmfusion.synth import mri, phantom

_MATRICES = ((256, 0.06), (320, 0.12), (384, 0.28), (448, 0.14), (512, 0.2), (576, 0.06), (640, 0.05), (704, 0.04),
             (768, 0.05))
TOP_LEVEL = "T6"  # the highest body centre a field of view may reach (the drawn spine starts at T5)
_MAX_SPACING = 1.1  # mm: coarser pixels only on the smallest matrices of the largest fields of view
HARD_CASES = ("steep junction", "sacralised L5", "lumbarised S1", "view to T8", "sacrum cut", "spine in upper half",
              "small spine", "matrix over 700", "non-square", "STIR-like", "wrap-around", "motion", "dark")
RANDOMIZED_CASES = ("inverted", "T1-like", "random contrast", "thick slice", "scoliotic roll", "low resolution",
                    "ringing", "strong bias", "collapsed disc", "Modic", "osteophytes", "herniation", "ribs",
                    "iliac crest", "strong warp")  # shown by randomized and unseen studies only, besides HARD_CASES
DESCRIPTIONS = {"t2sag": ("T2_TSE_SAG", "t2_tse_sag", "SAG T2 FSE", "T2_TSE_SAG_384"),
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


@dataclass(frozen=True)
class SeriesLayout:
    """A study's sagittal series: how many slices, and how far the spine's mid-plane may sit from the series' middle
    slice (drawn per study, uniformly up to `off_centre` of the slices on either side). The default, 3 slices with
    the mid-plane in the middle, is what every style's training data has."""

    slices: int = 3
    off_centre: float = 0.0

    def __post_init__(self) -> None:
        if self.slices < 3:
            raise ParamError(f"synth sagittal slices: must be >= 3, got {self.slices}")
        if not 0.0 <= self.off_centre <= 0.45:
            raise ParamError(f"synth off-centre: must be a fraction of the series from 0 to 0.45, got "
                             f"{self.off_centre}")

    @property
    def is_default(self) -> bool:
        return self == SeriesLayout()

    @property
    def middle(self) -> int:
        """The series' middle slice (0-based, in instance order; of an even count the later of the two), as
        `lmfusion predict` counts it (lmfusion.data.series.Series.middle)."""
        return self.slices // 2

    def draw_mid_plane(self, rng: np.random.Generator) -> int:
        """The slice (0-based) through the spine's mid-plane; nothing is drawn without an offset."""
        reach = int(np.floor(self.off_centre * self.slices))
        if reach == 0:
            return self.middle
        return int(np.clip(self.middle + rng.integers(-reach, reach + 1), 0, self.slices - 1))


@dataclass
class SeriesTruth:
    """Where a study's spine lies in its sagittal series, for scoring a slice choice (a non-default SeriesLayout)."""

    mid_plane: int  # the slice through the spine's mid-plane (0-based, in instance order)
    middle: int  # the series' middle slice
    gap_mm: float  # slice to slice
    landmarks_lps: np.ndarray  # (K, 3) the landmarks in patient LPS mm, as placed by the generator


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
    series: SeriesTruth | None = None  # with a non-default SeriesLayout only


def check_names(names: tuple[str, ...]) -> None:
    known = phantom.LEVELS + phantom.DISCS
    for n in names:
        if n not in known:
            raise ParamError(f"synth landmarks: unknown name {n!r}; known: {', '.join(known)}")


def on_grid(xy: np.ndarray) -> np.ndarray:
    """Points rounded to the annotation's 2 decimals, -0.0 written as 0.0: a point placed on row 0 by construction
    (the field of view's top) comes out of the affine as +-1e-15, whose sign depends on the CPU's rounding."""
    return np.round(xy, 2) + 0.0


def digest(study: SynthStudy) -> str:
    """SHA-256 of everything a study writes: every image's stored values and header fields, the landmarks, their
    tags, the other points and the hard cases. The generator's promise is that this is the same on every x86-64 CPU
    and thread count (tests/test_synth_reproducible.py)."""
    h = hashlib.sha256()
    for im in study.images:
        h.update(np.ascontiguousarray(im.pixels).tobytes())
        h.update(repr((im.series, im.index, im.pixels.shape, im.spacing, im.description, im.orientation, im.position,
                       im.echo_time, im.repetition_time, im.rescale)).encode())
    h.update(np.ascontiguousarray(study.landmarks, np.float64).tobytes())
    h.update(repr((study.spacing, study.names, study.tags, study.annotated, study.cases)).encode())
    for name in sorted(study.extra):
        xy, tag = study.extra[name]
        h.update(repr((name, tag)).encode() + np.ascontiguousarray(xy, np.float64).tobytes())
    return h.hexdigest()


def field_of_view(rng: np.random.Generator, pts: np.ndarray, top: float
                  ) -> tuple[int, int, tuple[float, float], np.ndarray]:
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


def grading_tags(p: phantom.Patient) -> dict[str, str]:
    """Grading tags as in the challenge: bodies v1 (normal) / v2 (wedge or next to a worn disc); discs v1..v4."""
    tags = {}
    for i, lv in enumerate(phantom.LEVELS):
        near = max(p.degeneration[max(i - 1, 0)], p.degeneration[i])
        tags[lv] = "v2" if p.extras["wedge"] == i or near > 0.8 else "v1"
    for i, dn in enumerate(phantom.DISCS):
        tags[dn] = "v" + str(1 + int(np.searchsorted([0.3, 0.6, 0.85], p.degeneration[i], side="right")))
    return tags


def hard_cases(p: phantom.Patient, px: dict[str, np.ndarray], shape: tuple[int, int], fill: float, stir: bool,
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
