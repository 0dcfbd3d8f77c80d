"""The default and target styles' study: a subject from `phantom` / `spine` (geometry in mm), imaged by `mri`.

A study has a sagittal T2 series (3 slices, the middle one annotated), a sagittal T1 slice and an axial T2 slice;
each gets its matrix, pixel spacing and field of view (`common.field_of_view`), and is written with its UIDs and
annotation by a writer (`tianchi`, `rsna2024`). Landmarks are the drawn shapes' centroids mapped by the image's
affine and rounded to 2 decimals (the rounded values are the ground truth). The styles' registry (`styles`) says
which draws each style uses. Legend: K landmarks, H x W image; points are (x, y) = (column, row), pixel centres at
integers.
"""
from __future__ import annotations

import numpy as np

from lmfusion.synth import axial, junction, mri, phantom
from lmfusion.synth import spine as phantom_spine
from lmfusion.synth.common import (DESCRIPTIONS, TOP_LEVEL, SeriesLayout, SeriesTruth, SynthImage, SynthStudy,
                                   field_of_view, grading_tags, hard_cases, on_grid)

_P_WRAP = 0.08


def generate_phantom_study(rng: np.random.Generator, names: tuple[str, ...], p_stir: float, lordosis: float,
                           clinical: bool = False, layout: SeriesLayout = SeriesLayout()) -> SynthStudy:
    """One study (all its images in memory) drawn from `rng`: a fat-suppressed (STIR-like) series with probability
    `p_stir`, the lumbosacral junction drawn around `lordosis` (phantom.sample_patient), as a clinical population
    shows it with `clinical` (`junction`). A non-default `layout` gives sagittal T2 and T1 series of its slices,
    the spine's mid-plane off their middle and the patient off the table's axis, recorded in `SynthStudy.series`."""
    p = phantom.sample_patient(rng, lordosis, clinical)
    mid = phantom_spine.build_sagittal(p, 0.0)
    pts = np.array([mid.points[n] for n in names])
    h, w, spacing, affine = field_of_view(rng, pts, mid.points[TOP_LEVEL][1])
    to_px = lambda q: q @ affine[:, :2].T + affine[:, 2]  # noqa: E731
    landmarks = on_grid(to_px(pts))
    dark = rng.random() < 0.18
    stir = bool(rng.random() < p_stir)
    look_t2, look_t1 = mri.sample_look(rng, dark), mri.sample_look(rng, dark and rng.random() < 0.5)
    t2, t1 = mri.tissue_values(rng, 0, stir), mri.tissue_values(rng, 1)
    if clinical:  # the sacral remnants' own values, drawn after the others so those stay as the default style's
        t2["remnant"], t1["remnant"] = (float(v * rng.uniform(0.7, 1.5)) for v in junction.TISSUES["remnant"][:2])
    wrap = int(rng.uniform(0.08, 0.2) * w) if rng.random() < _P_WRAP else 0
    wide = affine + np.array([[0, 0, wrap], [0, 0, 0]])  # the T2 slices of a wrapped study, before folding
    gap = round(float(rng.uniform(3.8, 5.5)), 2)
    table = np.round(rng.uniform(-40, 40, 2), 2)
    te2, tr2 = round(float(rng.uniform(90, 125)), 1), round(float(rng.uniform(2500, 4200)), 0)
    descr = {k: str(rng.choice(v)) for k, v in DESCRIPTIONS.items()}
    images = []

    def position(x: float, sp: tuple[float, float]) -> tuple[float, float, float]:
        # the top-left pixel centre; rows run along +y (posterior), columns along -z (inferior)
        return (x, round(table[0] - w * spacing[0] / 2 + sp[0] / 2, 4),
                round(table[1] + h * spacing[1] / 2 - sp[1] / 2, 4))

    plane = layout.draw_mid_plane(rng)  # the slice through the mid-plane; the default draws nothing
    shift = 0.0 if layout.is_default else round(float(rng.uniform(-20, 20)), 2)  # the mid-plane's x (LPS mm)
    laterals = [(plane - k) * gap for k in range(layout.slices)]  # instance order: along the slice normal (-x)
    scenes = {0.0: mid}

    def scene(lateral: float) -> phantom.Anatomy:  # each slice's scene drawn once, for T2 and T1
        if lateral not in scenes:
            scenes[lateral] = phantom_spine.build_sagittal(p, lateral)
        return scenes[lateral]

    for k, lateral in enumerate(laterals):
        clean = mri.fold(mri.render(scene(lateral), t2, wide, (h, w + 2 * wrap), spacing, rng), wrap)
        pix = mri.acquire(clean, look_t2, rng)
        images.append(SynthImage("t2sag", k, pix, spacing, descr["t2sag"], (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                                 position(shift + lateral, spacing), te2, tr2, look_t2.rescale))
    # T1: same field of view on a coarser matrix; the mid-plane slice only, or the T2 series' slices
    h1 = max(256, int(round(h * rng.uniform(0.55, 0.8) / 16)) * 16) if h > 256 else h
    w1 = int(round(w * h1 / h))
    sp1 = (round(w * spacing[0] / w1, 6), round(h * spacing[1] / h1, 6))
    aff1 = affine * np.array([[w1 / w], [h1 / h]])
    aff1[:, 2] += 0.5 * np.array([w1 / w, h1 / h]) - 0.5
    t1_laterals = [0.0] if layout.is_default else laterals
    t1_pixels = [mri.acquire(mri.render(scene(lat), t1, aff1, (h1, w1), sp1, rng), look_t1, rng)
                 for lat in t1_laterals]
    te1, tr1 = round(float(rng.uniform(8, 14)), 1), round(float(rng.uniform(400, 700)), 0)
    for k, (lateral, pix) in enumerate(zip(t1_laterals, t1_pixels)):
        images.append(SynthImage("t1sag", k, pix, sp1, descr["t1sag"], (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                                 position(shift + lateral, sp1), te1, tr1, look_t1.rescale))
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
    tags = grading_tags(p)
    extra = {n: (on_grid(to_px(v[None])[0]), tags[n]) for n, v in mid.points.items()
             if n not in names and n in tags}
    px = {n: to_px(v[None])[0] for n, v in mid.points.items()}
    fill = float(np.ptp(pts[:, 1]) / (h * spacing[1]))
    truth = None
    if not layout.is_default:  # the landmarks where the generator put them in the patient: x on the mid-plane,
        # y and z from their unrounded pixels (rows run along +y, columns along -z from the first pixel's centre)
        _, y0, z0 = position(shift, spacing)
        q = to_px(pts)
        lps = np.column_stack([np.full(len(q), shift), y0 + q[:, 0] * spacing[0], z0 - q[:, 1] * spacing[1]])
        truth = SeriesTruth(plane, layout.middle, gap, lps)
    return SynthStudy(image=images[plane].pixels, landmarks=landmarks, spacing=spacing, names=names,
                      tags=tuple(tags[n] for n in names), extra=extra, images=images, annotated=plane,
                      cases=hard_cases(p, px, (h, w), fill, stir, wrap, look_t2, dark)
                      + (junction.cases(p) if clinical else ()), series=truth)
