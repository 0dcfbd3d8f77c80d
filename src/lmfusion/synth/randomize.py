"""The randomized style (`lmfusion synth --style randomized`): domain randomization in the spirit of SynthSeg
(Billot et al. 2023), where only the shapes and their order stay.

Per study it draws a subject wider than the default style's with structures the default never draws and one
elastic deformation (randomize_anatomy), the slice through it (a thick slab mixing sub-slices, a scoliotic roll
that takes the plane off the midline at some levels), every tissue's value and the acquisition (randomize_mri).
The field of view, the series and their headers are drawn as in `common` (fields of view to T8, the sacrum cut off,
any matrix). The style registry (`styles`) sends the randomized and unseen styles here; the other styles' draws are
untouched. The unseen style (`--style unseen`, benchmarks/bench_styles.py's yardstick, never trained on)
is this generator with three draws fixed (UNSEEN): always a thick slab (three sub-slices 6-10 mm across), a T1-like
contrast (randomize_mri.t1_values) and a low-resolution, strongly biased acquisition
(randomize_mri.low_resolution_scanner); its anatomy is drawn as the randomized style's.

Landmarks are the area centroids of the warped landmark shapes; where the annotated slice mixes scenes at several
lateral offsets, the centroid of the mixed shapes (each scene's area weighted by its share at the landmark's row).
Legend: K landmarks, J mixed scenes, H x W image; points (x, y) = (column, row), pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from lmfusion.synth import axial, mri, phantom
from lmfusion.synth import randomize_anatomy as anat
from lmfusion.synth import randomize_mri as rmri
from lmfusion.synth.common import (DESCRIPTIONS, TOP_LEVEL, SynthImage, SynthStudy, field_of_view, grading_tags,
                                   hard_cases, on_grid)

_SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
Weights = Callable[[np.ndarray], np.ndarray]  # v (rows,) mm -> (J, rows) each scene's share, summing to 1


@dataclass
class Slab:
    """The annotated slice through the scene: the sub-slices of a thick slab (lateral mm; one for a thin slice)
    and a scoliotic roll that takes the plane `roll` mm off the midline around v = `centre` (a Gaussian `width` mm
    wide). Its scenes are the sub-slices, then (with a roll) the sub-slices moved by the roll."""

    sub: tuple[float, ...]
    roll: float = 0.0
    centre: float = 0.0
    width: float = 1.0

    @property
    def offsets(self) -> list[float]:
        return list(self.sub) + ([s + self.roll for s in self.sub] if self.roll else [])

    def weights(self, v: np.ndarray) -> np.ndarray:
        """(J, len(v)) each scene's share at rows v (mm); the shares sum to 1."""
        m = len(self.sub)
        if not self.roll:
            return np.full((m, len(v)), 1.0 / m)
        r = np.exp(-0.5 * ((v - self.centre) / self.width) ** 2)
        return np.concatenate([np.tile((1 - r) / m, (m, 1)), np.tile(r / m, (m, 1))])


def _one(v: np.ndarray) -> np.ndarray:
    return np.ones((1, len(v)))


def _draw_slab(rng: np.random.Generator) -> tuple[Slab, str]:
    """A thick slab (35 %) and a roll (30 %) centred near a body between T12 and L5 (its name is returned)."""
    t = rng.uniform(4, 9)
    sub = (-t / 4, t / 4) if rng.random() < 0.35 else (0.0,)
    roll = float(rng.uniform(5, 16) * rng.choice([-1, 1])) if rng.random() < 0.3 else 0.0
    at = str(rng.choice(phantom.LEVELS[anat.BODIES.index("T12"):]))
    return Slab(sub, roll, float(rng.normal(0, 10)), float(rng.uniform(25, 80))), at


def _thick_slab(rng: np.random.Generator) -> tuple[Slab, str]:
    """The unseen style's slab: the randomized draw (its roll kept), then always three sub-slices 6-10 mm across."""
    slab, at = _draw_slab(rng)
    t = rng.uniform(6, 10)
    return replace(slab, sub=(-t / 2, 0.0, t / 2)), at


@dataclass(frozen=True)
class Draws:
    """The draws a style built on this generator makes its own: the slab, the contrasts and the scanners."""

    slab: Callable[[np.random.Generator], tuple[Slab, str]]
    contrast: Callable[[np.random.Generator], tuple[dict[str, float], str]]
    scanner: Callable[[np.random.Generator], rmri.Scanner]


RANDOMIZED = Draws(_draw_slab, rmri.tissue_values, rmri.sample_scanner)
UNSEEN = Draws(_thick_slab, rmri.t1_values, rmri.low_resolution_scanner)


_GAUSS = (np.array([0.5 - 0.5 * np.sqrt(3 / 5), 0.5, 0.5 + 0.5 * np.sqrt(3 / 5)]), np.array([5, 8, 5]) / 18)


def _moments(poly: np.ndarray, weight: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(3,) the integrals of w, w u and w v over a polygon (P, 2) whose points are weighted by w(v), signed by its
    orientation: Green's theorem turns them into line integrals of w u, w u^2 / 2 and w u v along dv, taken by
    3-point Gauss-Legendre on each edge (w changes little along an edge)."""
    a, d = poly, np.roll(poly, -1, axis=0) - poly
    t, gw = _GAUSS
    u, v = a[:, :1] + t * d[:, :1], a[:, 1:] + t * d[:, 1:]  # (P, 3) quadrature points on each edge
    w = weight(v.ravel()).reshape(v.shape) * gw * d[:, 1:]
    return np.array([(w * u).sum(), (w * u * u).sum() / 2, (w * u * v).sum()])


def _points(scenes: list[phantom.Anatomy], slab: Slab) -> dict[str, np.ndarray]:
    """Each landmark: the centroid of its shapes as the slice mixes them (each scene's shape weighted by the
    scene's share at each row), in mm."""
    polys = [anat.landmark_polys(s) for s in scenes]
    out = {}
    for name in scenes[0].points:
        m = sum(_moments(p[name], lambda v, j=j: slab.weights(v)[j]) * np.sign(_moments(p[name], np.ones_like)[0])
                for j, p in enumerate(polys))
        out[name] = m[1:] / m[0]
    return out


def _render(scenes: list[phantom.Anatomy], weights: Weights, values: dict[str, float], affine: np.ndarray,
            shape: tuple[int, int], spacing: tuple[float, float], sc: rmri.Scanner,
            rng: np.random.Generator) -> np.ndarray:
    """One slice: the scenes mixed row by row, painted on the scanner's (coarser) matrix with its wrap-around
    margin, folded, brought to `shape` and acquired; returns the stored (H, W) uint16."""
    h, w = shape
    hc, wc = (h, w) if sc.coarse >= 1 else (max(32, round(h * sc.coarse)), max(32, round(w * sc.coarse)))
    ratio = np.array([wc / w, hc / h])
    aff = affine * ratio[:, None]
    aff[:, 2] += 0.5 * ratio - 0.5  # pixel centres of both grids at integers (as cv2.resize maps them)
    ax = sc.phase_axis
    pad = int(sc.wrap * (hc, wc)[ax])
    full = (hc + 2 * pad * (ax == 0), wc + 2 * pad * (ax == 1))
    aff[1 - ax, 2] += pad
    share = weights((np.arange(full[0]) - aff[1, 2]) / aff[1, 1])  # (J, rows)
    img = np.zeros(full)
    for scene, wt in zip(scenes, share):
        if wt.max() > 1e-3:
            img += wt[:, None] * mri.render(scene, values, aff, full, (spacing[0] / ratio[0], spacing[1] / ratio[1]),
                                            rng)
    img = rmri.fold(img, pad, ax)
    if (hc, wc) != (h, w):
        img = rmri.upsample(img, (w, h), sc.interp)
    return rmri.acquire(img, sc, rng)


def _shown(p: phantom.Patient, kind: str, slab: Slab, sc: rmri.Scanner, extras: anat.Extras,
           warp: anat.Warp) -> dict[str, bool]:
    """Which of common.RANDOMIZED_CASES a randomized study shows."""
    return {"inverted": kind == "inverted", "T1-like": kind == "T1", "random contrast": kind == "random",
            "thick slice": len(slab.sub) > 1, "scoliotic roll": slab.roll != 0,
            "low resolution": sc.coarse < 1 or min(sc.kspace) < 0.5,
            "ringing": sc.taper < 0.05 and min(sc.kspace) < 0.8, "strong bias": float(np.ptp(sc.bias)) > 1.2,
            "collapsed disc": bool((p.degeneration[anat.BODIES.index("T12"):] >= 1.0).any()),
            "Modic": bool(extras.modic), "osteophytes": bool(extras.osteophytes),
            "herniation": bool(extras.herniations), "ribs": extras.ribs is not None,
            "iliac crest": extras.pelvis is not None, "strong warp": warp.strength > 8.0}


@dataclass
class Subject:
    """The drawn anatomy of one randomized study: the scenes mixed into its annotated slice and their landmarks."""

    patient: phantom.Patient
    extras: anat.Extras
    warp: anat.Warp
    slab: Slab
    scenes: list[phantom.Anatomy]  # (J,) one per slab.offsets
    points: dict[str, np.ndarray]  # name -> (2,) mm, the centroids of the mixed landmark shapes


def draw_subject(rng: np.random.Generator, draws: Draws = RANDOMIZED) -> Subject:
    """The subject, its extras and deformation, and the slice through it: the randomized study's first draws."""
    p = anat.vary_patient(phantom.sample_patient(rng, float(rng.uniform(1.0, 2.2))), rng)
    extras, warp = anat.draw_extras(rng, p), anat.draw_warp(rng)
    slab, at = draws.slab(rng)
    scenes = [anat.scene(p, o, extras, warp) for o in slab.offsets]
    slab.centre += scenes[0].points[at][1]
    return Subject(p, extras, warp, slab, scenes, _points(scenes, slab))


def generate_randomized(rng: np.random.Generator, names: tuple[str, ...], draws: Draws = RANDOMIZED) -> SynthStudy:
    """One study of the randomized style (or with UNSEEN, the unseen one) drawn from `rng` (names already checked by
    styles.generate_study)."""
    sub = draw_subject(rng, draws)
    p, extras, warp, slab, scenes, points = sub.patient, sub.extras, sub.warp, sub.slab, sub.scenes, sub.points
    pts = np.array([points[n] for n in names])
    h, w, spacing, affine = field_of_view(rng, pts, points[TOP_LEVEL][1])
    to_px = lambda q: q @ affine[:, :2].T + affine[:, 2]  # noqa: E731
    landmarks = on_grid(to_px(pts))
    (values, kind), (values1, _) = draws.contrast(rng), draws.contrast(rng)
    sc2, sc1 = draws.scanner(rng), draws.scanner(rng)
    gap = round(float(rng.uniform(3.8, 5.5)), 2)
    table = np.round(rng.uniform(-40, 40, 2), 2)
    te2, tr2 = round(float(rng.uniform(90, 125)), 1), round(float(rng.uniform(2500, 4200)), 0)
    descr = {k: str(rng.choice(v)) for k, v in DESCRIPTIONS.items()}

    def position(x: float, sp: tuple[float, float]) -> tuple[float, float, float]:
        return (x, round(table[0] - w * spacing[0] / 2 + sp[0] / 2, 4),
                round(table[1] + h * spacing[1] / 2 - sp[1] / 2, 4))

    images = []
    for k, lateral in enumerate((gap, 0.0, -gap)):
        sl, wt = (scenes, slab.weights) if lateral == 0 else ([anat.scene(p, lateral, extras, warp)], _one)
        pix = _render(sl, wt, values, affine, (h, w), spacing, sc2, rng)
        images.append(SynthImage("t2sag", k, pix, spacing, descr["t2sag"], _SAGITTAL, position(lateral, spacing),
                                 te2, tr2, sc2.rescale))
    h1 = max(256, int(round(h * rng.uniform(0.55, 0.8) / 16)) * 16) if h > 256 else h
    w1 = int(round(w * h1 / h))
    sp1 = (round(w * spacing[0] / w1, 6), round(h * spacing[1] / h1, 6))
    aff1 = affine * np.array([[w1 / w], [h1 / h]])
    aff1[:, 2] += 0.5 * np.array([w1 / w, h1 / h]) - 0.5
    pix = _render(scenes[:1], _one, values1, aff1, (h1, w1), sp1, sc1, rng)
    images.append(SynthImage("t1sag", 0, pix, sp1, descr["t1sag"], _SAGITTAL, position(0.0, sp1),
                             round(float(rng.uniform(8, 14)), 1), round(float(rng.uniform(400, 700)), 0), sc1.rescale))
    ha = 256 if rng.random() < 0.8 else 320
    spa = round(float(rng.uniform(0.62, 0.8)), 6)
    centre = np.array([(ha - 1) / 2 + rng.normal(0, 8), rng.uniform(0.40, 0.48) * ha])
    aff_a = np.column_stack([np.eye(2) / spa, centre])
    pix = _render([axial.build_axial(p)], _one, values, aff_a, (ha, ha), (spa, spa), sc2, rng)
    z = table[1] + h * spacing[1] / 2 - to_px(points["L4-L5"][None])[0, 1] * spacing[1]
    images.append(SynthImage("t2ax", 0, pix, (spa, spa), descr["t2ax"], (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                             (round(-centre[0] * spa, 4), round(table[0] - centre[1] * spa, 4), round(float(z), 4)),
                             te2, tr2, sc2.rescale))
    tags = grading_tags(p)
    extra = {n: (on_grid(to_px(v[None])[0]), tags[n]) for n, v in points.items() if n not in names and n in tags}
    px = {n: to_px(v[None])[0] for n, v in points.items()}
    fill = float(np.ptp(pts[:, 1]) / (h * spacing[1]))
    stir = values["fat"] < 0.3 * values["csf"] and values["epifat"] < 0.3 * values["csf"]
    cases = hard_cases(p, px, (h, w), fill, stir, int(sc2.wrap > 0), sc2, sc2.gamma > 1.6)  # type: ignore[arg-type]
    shown = _shown(p, kind, slab, sc2, extras, warp)
    return SynthStudy(image=images[1].pixels, landmarks=landmarks, spacing=spacing, names=names,
                      tags=tuple(tags[n] for n in names), extra=extra, images=images, annotated=1,
                      cases=cases + tuple(c for c in shown if shown[c]))
