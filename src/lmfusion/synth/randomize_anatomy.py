"""The randomized style's anatomy: a subject drawn wider than the default style's, structures the default never
draws, and one elastic deformation of the whole scene.

`vary_patient` widens a drawn `phantom.Patient` (canal, posterior elements, worn and collapsed discs, transitional
vertebrae, lean and tilt); `draw_extras` draws once per study what `scene` adds to every slice that
`spine.build_sagittal` builds: the iliac crest and the sacral ala, ribs down to T11 or T12, osteophytes, Modic-like
endplate signal, posterior herniations and vacuum discs. `Warp` is one smooth displacement field applied to every
vertex of every shape; the landmarks are then the area centroids of the warped landmark shapes, so the points move
with the image. Frame and legend as in `phantom`: (u, v) mm, P points, F waves of the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from lmfusion.synth import spine
from lmfusion.synth.phantom import (DISCS, LEVELS, Anatomy, Patient, Shape, bezier, centroid, ellipse, rotate,
                                         rounded_quad)

BODIES = LEVELS + tuple(f"S{j + 1}" for j in range(8))  # build_sagittal's exact cortex shapes, in painter's order
_T12 = LEVELS.index("T12")
_MODIC = ("fluid", "fat", "cortex")  # type 1 (oedema, fluid-like), type 2 (fatty), type 3 (sclerotic)


def vary_patient(p: Patient, rng: np.random.Generator) -> Patient:
    """A copy of `p` drawn wider: canal from stenotic to capacious, posterior elements, worn and collapsed lumbar
    discs, more transitional vertebrae, lean and tilt. Disc wedges are clipped again so no endplates cross."""
    k = len(LEVELS)
    deg, dh = p.degeneration.copy(), p.disc_height.copy()
    worn = (rng.random(k) < rng.uniform(0, 0.6)) & (np.arange(k) >= _T12)
    new = np.where(worn, np.maximum(deg, rng.uniform(0.5, 1.0, k)), deg)
    dh *= (1 - 0.45 * new) / (1 - 0.45 * deg)
    deg = new
    for i in rng.choice(np.arange(_T12, k), int(rng.choice(3, p=[0.78, 0.17, 0.05])), replace=False):
        deg[i], dh[i] = 1.0, dh[i] * rng.uniform(0.15, 0.4)  # collapsed: a thin dark line between two bodies
    height, depth, extras = p.height.copy(), p.depth.copy(), dict(p.extras)
    if extras["transitional"] == "" and rng.random() < 0.12:
        extras["transitional"] = str(rng.choice(["sacralised", "lumbarised"]))
        if extras["transitional"] == "sacralised":  # as phantom.sample_patient draws it
            deg[-1], dh[-1] = rng.uniform(0.8, 1.0), dh[-1] * rng.uniform(0.2, 0.45)
            height[-1] *= rng.uniform(0.82, 0.92)
            depth[-1] *= rng.uniform(1.03, 1.1)
    extras["posterior"] = p.extras["posterior"] * rng.uniform(1.0, 3.0)
    extras["slant"] = rng.normal(0, 0.2)
    limit = np.arctan(0.7 * dh / (0.5 * depth))
    wedge = np.clip(p.disc_wedge, -limit, limit)
    u = rng.uniform
    return dataclasses.replace(
        p, height=height, depth=depth, disc_height=dh, degeneration=deg, disc_wedge=wedge,
        lean=np.radians(np.clip(rng.normal(-3, 6), -16, 12)), tilt=np.radians(u(-15, 15)),
        canal=(u(0.5, 3.5), u(7, 15), u(6, 22), u(0.5, 7)), conus=u(-40, 60), spinous=p.spinous * u(0.7, 1.35),
        wall=(u(8, 35), u(3, 50), u(5, 60), u(60, 260)), extras=extras)


@dataclass
class Extras:
    """What the randomized style adds to every slice of one study (drawn once, so that all its slices agree)."""

    osteophytes: list[tuple[int, int, float, float]] = field(default_factory=list)  # body, corner (-1 top, +1
    # bottom), length mm, angle from the front (rad)
    modic: list[tuple[int, int, float, str, float]] = field(default_factory=list)  # body, endplate (-1 top, +1
    # bottom), depth fraction, tissue it turns towards, mix
    herniations: list[tuple[int, float, float, float]] = field(default_factory=list)  # disc, depth, height mm, shift
    vacuum: list[tuple[int, float, float]] = field(default_factory=list)  # disc, length fraction, width mm
    ribs: np.ndarray | None = None  # (R, 8) per rib from the lowest up: head du, dv, r; wall du, dv, rx, ry, angle
    lowest_rib: int = _T12  # index in LEVELS of the lowest rib-bearing vertebra
    pelvis: np.ndarray | None = None  # (8,) ilium du, dv, ru, rv (mm), angle; ala du, dv, size (of S1 depth)
    pelvis_shape: np.ndarray = field(default_factory=lambda: np.ones(4))  # (4,) the ilium's corners, scaled
    alpha: float = 1.0  # partial volume of ribs and pelvis in the mid-sagittal slice (more off the midline)


def draw_extras(rng: np.random.Generator, p: Patient) -> Extras:
    """Draw the added structures for subject `p` (their places are fractions of the bodies and discs they touch)."""
    e = Extras(alpha=float(rng.uniform(0.25, 1.0)))
    worn = p.degeneration[_T12:]
    spurs, modic = rng.random() < 0.1 + 0.6 * worn.mean(), rng.random() < 0.15 + 0.5 * worn.mean()
    for i in range(_T12, len(LEVELS)):
        for corner in (-1, 1):
            if spurs and rng.random() < 0.4:
                e.osteophytes.append((i, corner, float(rng.uniform(3, 9)), float(rng.uniform(0.1, 0.8))))
    for j in range(_T12, len(DISCS)):  # disc j lies between body j and body j + 1 (S1 after L5)
        deg = p.degeneration[j]
        for body, side in ((j, 1), (j + 1, -1)):
            if modic and rng.random() < 0.1 + 0.5 * deg:
                e.modic.append((body, side, float(rng.uniform(0.12, 0.45)), str(rng.choice(_MODIC)),
                                float(rng.uniform(0.4, 1.0))))
        if deg > 0.4 and rng.random() < 0.2:
            e.herniations.append((j, float(rng.uniform(2, 7)), float(rng.uniform(3, 9)), float(rng.normal(0, 0.3))))
        if deg > 0.75 and rng.random() < 0.3:
            e.vacuum.append((j, float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.8, 2.2))))
    if rng.random() < 0.45:
        e.lowest_rib = _T12 - int(rng.random() < 0.2)  # sometimes T11 (a short twelfth rib left unseen)
        n = e.lowest_rib + 1
        e.ribs = np.column_stack([rng.uniform(3, 8, n), rng.uniform(-0.2, 0.3, n), rng.uniform(3.5, 6, n),
                                  rng.uniform(35, 75, n), rng.uniform(-0.3, 0.3, n), rng.uniform(3, 6, n),
                                  rng.uniform(5, 10, n), rng.uniform(-0.6, 0.6, n)])
    if rng.random() < 0.4:
        e.pelvis = np.array([rng.uniform(10, 35), rng.uniform(-15, 15), rng.uniform(14, 26), rng.uniform(28, 55),
                             rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.1), rng.uniform(-0.6, -0.2),
                             rng.uniform(0.5, 0.8)])
        e.pelvis_shape = rng.uniform(0.6, 1.3, 4)
    return e


@dataclass
class Warp:
    """A smooth displacement field d(x) = sum_f amp_f sin(freq_f . x + phase_f) in mm, one-to-one by construction."""

    amp: np.ndarray  # (F, 2) mm
    freq: np.ndarray  # (F, 2) rad per mm
    phase: np.ndarray  # (F,)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        return q + np.sin(q @ self.freq.T + self.phase) @ self.amp  # (P, 2)

    @property
    def strength(self) -> float:
        """The largest displacement it can give (mm)."""
        return float(np.linalg.norm(self.amp, axis=1).sum())


def draw_warp(rng: np.random.Generator, waves: int = 6) -> Warp:
    """Waves 70-300 mm long; their gradients sum to at most 0.05-0.35 (drawn), so the map bends shapes by up to
    about 10 mm but never folds them."""
    lam, theta = rng.uniform(70, 300, waves), rng.uniform(0, np.pi, waves)
    freq = (2 * np.pi / lam)[:, None] * np.column_stack([np.cos(theta), np.sin(theta)])
    amp = rng.normal(0, 1, (waves, 2)) * rng.uniform(0.5, 6.0)
    slope = float((np.linalg.norm(amp, axis=1) * np.linalg.norm(freq, axis=1)).sum())
    return Warp(amp * min(1.0, rng.uniform(0.05, 0.35) / slope), freq, rng.uniform(0, 2 * np.pi, waves))


def landmark_polys(anatomy: Anatomy) -> dict[str, np.ndarray]:
    """The polygons (P, 2) whose area centroids are the landmarks: body outlines (BODIES) and discs (DISCS)."""
    bodies = [s.polys[0] for s in anatomy.shapes if s.exact and s.tissue == "cortex"]
    discs = [s.polys[0] for s in anatomy.shapes if s.exact and s.tissue == "annulus"]
    return dict(zip(BODIES, bodies)) | dict(zip(DISCS, discs))


def _frames(polys: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Per body in BODIES: centre (B, 2), axis down the column (B, 2), normal towards the back (B, 2), and its
    height and depth (B,) in mm."""
    c = np.array([centroid(polys[n]) for n in BODIES])
    a = np.gradient(c, axis=0)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    n = np.column_stack([a[:, 1], -a[:, 0]])
    h = np.array([np.ptp((polys[b] - c[i]) @ a[i]) for i, b in enumerate(BODIES)])
    d = np.array([np.ptp((polys[b] - c[i]) @ n[i]) for i, b in enumerate(BODIES)])
    return c, a, n, h, d


def _angle(n: np.ndarray) -> float:
    return float(np.arctan2(n[1], n[0]))  # phantom.ellipse's angle that lays its first radius along n


def _clip(poly: np.ndarray, e: np.ndarray, limit: float) -> np.ndarray:
    """The part of a convex-ish polygon (P, 2) where x . e <= limit (Sutherland-Hodgman, one half-plane)."""
    out = []
    s = poly @ e - limit
    for i in range(len(poly)):
        j = (i + 1) % len(poly)
        if s[i] <= 0:
            out.append(poly[i])
        if s[i] * s[j] < 0:
            out.append(poly[i] + (poly[j] - poly[i]) * s[i] / (s[i] - s[j]))
    return np.array(out)


def _bone(polys: list[np.ndarray], alpha: float, rim: float = 1.5) -> list[Shape]:
    """Cortex outlines with a marrow-like core (posterior-element bone), painted with `alpha`."""
    cores = [c + (q - c) * np.clip(1 - rim / np.linalg.norm(q - c, axis=1, keepdims=True), 0.2, 1)
             for q in polys for c in [q.mean(0)]]
    return [Shape("cortex", polys, alpha=alpha, soft=0.5), Shape("spinal", cores, alpha=alpha, soft=0.8)]


def _background(e: Extras, frames: tuple[np.ndarray, ...], lateral: float) -> list[Shape]:
    """Ribs and pelvis, seen in part (partial volume) in the mid-sagittal slice and more off the midline."""
    c, a, n, h, d = frames
    alpha = min(1.0, e.alpha * (1 + abs(lateral) / 12))
    polys = []
    if e.ribs is not None:
        for k, (hu, hv, r, wu, wv, rx, ry, ang) in enumerate(e.ribs[::-1]):  # the rib of level lowest_rib - k
            i = e.lowest_rib - k
            head = c[i] + n[i] * (0.5 * d[i] + hu + r) + a[i] * (hv - 0.3) * h[i]  # by the upper back corner
            polys += [ellipse(head, r, r * 1.1, _angle(n[i]), 24),
                      ellipse(c[i] + n[i] * wu + a[i] * wv * h[i], rx, ry, _angle(n[i]) + ang, 24)]  # chest wall
    if e.pelvis is not None:
        iu, iv, ru, rv, ang, au, av, scale = e.pelvis
        s1 = BODIES.index("S1")
        s2 = s1 + 1  # the ilium meets the sacrum at S1-S3, behind and beside it
        centre, turn = c[s2] + n[s2] * (0.5 * d[s2] + iu) + a[s2] * iv, rotate(np.eye(2), -ang, np.zeros(2))
        box = np.array([[-ru, -rv], [ru, -rv], [-ru, rv], [ru, rv]]) * e.pelvis_shape[:, None]  # (4, 2) in n, a
        polys.append(centre + rounded_quad(box @ turn @ np.stack([n[s2], a[s2]]), 3.0)[0])  # the ilium's wing
        polys.append(ellipse(c[s1] + d[s1] * (n[s1] * au + a[s1] * av), scale * d[s1], 0.8 * scale * d[s1],
                             _angle(n[s1]), 40))  # the sacral ala, in front of and above S1
    return _bone(polys, alpha) if polys else []


def _spurs(e: Extras, polys: dict[str, np.ndarray], frames: tuple[np.ndarray, ...]) -> list[Shape]:
    """Osteophytes at the bodies' front corners and disc herniations, painted before the bodies and discs."""
    c, a, n = frames[:3]
    spurs, hern = [], []
    for i, corner, length, ang in e.osteophytes:
        q = polys[BODIES[i]] - c[i]
        k = int(np.argmax(-(q @ n[i]) + corner * (q @ a[i])))  # the front corner on that side
        tip = q[k] + length * (-n[i] * np.cos(ang) + corner * a[i] * np.sin(ang))
        base0, base1 = q[k] - corner * 5.0 * a[i], q[k] + 5.0 * n[i]
        spurs.append(c[i] + np.concatenate([[base0], bezier(base0, 0.5 * (base0 + tip) - 0.8 * n[i], tip, 3),
                                            [tip], [base1]]))
    for j, depth, height, shift in e.herniations:
        q = polys[DISCS[j]]
        cd = centroid(q)
        nj = 0.5 * (n[j] + n[j + 1])
        back = q[int(np.argmax((q - cd) @ nj))]
        hern.append(ellipse(back + nj * 0.4 * depth + 0.5 * (a[j] + a[j + 1]) * shift * height, depth, height,
                            _angle(nj), 28))
    shapes = _bone(spurs, 1.0, rim=1.2) if spurs else []
    return shapes + ([Shape("annulus", hern, soft=0.6)] if hern else [])


def _inside(e: Extras, anatomy: Anatomy, polys: dict[str, np.ndarray], frames: tuple[np.ndarray, ...]) -> list[Shape]:
    """Modic-like bands in the marrow next to an endplate and vacuum clefts in discs, inside their outlines."""
    c, a, n = frames[:3]
    shapes = []
    inner = {}
    for k, s in enumerate(anatomy.shapes[:-1]):
        if s.exact and s.tissue == "cortex":
            inner[len(inner)] = anatomy.shapes[k + 1].polys[0]  # the marrow painted right after each body outline
    for i, side, frac, tissue, mix in e.modic:
        q = inner[i]
        proj = (q - c[i]) @ (side * a[i])  # towards that endplate
        band = _clip(q, -side * a[i], -(proj.max() - frac * np.ptp(proj)) - c[i] @ (side * a[i]))
        if len(band) >= 3:
            shapes.append(Shape("marrow", [band], mix=mix, mix_to=tissue, soft=0.8))
    for j, frac, width in e.vacuum:
        cd, nj = centroid(polys[DISCS[j]]), 0.5 * (n[j] + n[j + 1])
        half = 0.5 * frac * np.ptp((polys[DISCS[j]] - cd) @ nj)
        shapes.append(Shape("gas", [np.array([cd - half * nj, cd + half * nj])], width=width, alpha=0.85, soft=0.4))
    return shapes


def scene(p: Patient, lateral: float, extras: Extras, warp: Warp) -> Anatomy:
    """The sagittal slice `lateral` mm off the midline with the extras, warped; its points are the centroids of
    the warped landmark shapes (BODIES' first 15 and DISCS, as build_sagittal names them)."""
    anatomy = spine.build_sagittal(p, lateral)
    polys = landmark_polys(anatomy)
    frames = _frames(polys)
    shapes = anatomy.shapes
    canal = next(k for k, s in enumerate(shapes) if s.tissue == "epifat")  # the canal: the spine's first shape
    column = next(k for k, s in enumerate(shapes) if s.exact)
    inside = _inside(extras, anatomy, polys, frames)
    shapes = (shapes[:canal] + _background(extras, frames, lateral) + shapes[canal:column]
              + _spurs(extras, polys, frames) + shapes[column:] + inside)
    for s in shapes:
        s.polys = [warp(q) for q in s.polys]
    out = Anatomy(shapes=shapes, points={})
    warped = landmark_polys(out)
    out.points = {name: centroid(warped[name]) for name in anatomy.points}
    return out
