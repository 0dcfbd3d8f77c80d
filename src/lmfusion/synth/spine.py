"""The drawn spine of the synthetic subject: vertebral bodies, discs, sacrum, canal and posterior elements.

Bodies are superellipses mapped onto wedge-shaped quadrilaterals stacked along the column; each disc polygon shares
its endplates with the two bodies, so the landmarks (area centroids of body and disc polygons) are those of exactly
the drawn shapes. The sacrum is a column of segments bridged by marrow with a residual disc line at each; a
clinical subject's (`junction`) is one fused, curved bone (S1 to S5, S2 to S5 under a lumbarised S1) with at most
thin disc remnants, its segments kept as geometry (zero-alpha shapes that name S1..S5 and frame what is drawn around
them), and its worn lower endplates show Modic bands, Schmorl nodes and gas, a vertebra perhaps slipped forward over
the one below. The coccyx is small separate segments. Frame and legend as in `phantom`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmfusion.synth.phantom import (DISCS, LEVELS, Anatomy, Patient, Shape, SpineFrame, axis, band, bezier, centroid,
                                   ellipse, inset, normal, rotate, rounded_quad, soft_tissue)

_NEAR_MIDLINE = 6.0  # mm: slices this close to the midline are drawn as it is (the default series' +-5.5 mm)
_SACRUM = ((24.0, 44.0, -6.0), (20.0, 37.0, -9.0), (16.0, 29.0, -11.0), (13.0, 22.0, -13.0), (10.0, 16.0, -14.0),
           (8.0, 12.0, -12.0), (7.0, 10.0, -10.0), (6.0, 8.0, -8.0))  # S1..S5 and three coccygeal segments


@dataclass
class _Body:
    name: str
    corners: np.ndarray  # (4, 2) AS, PS, AI, PI
    outline: np.ndarray
    inner: np.ndarray  # marrow inside the cortex
    inner_ends: tuple[np.ndarray, np.ndarray]  # the marrow's superior and inferior borders (Modic bands)
    top: np.ndarray  # superior endplate, anterior -> posterior
    bottom: np.ndarray  # inferior endplate, posterior -> anterior
    phi: float  # axis angle at mid height
    h: float
    d: float


def _body(name: str, top_c: np.ndarray, phi: float, h: float, d: float, wedge: float, power: float = 7.0,
          concave: float = 0.05) -> _Body:
    n0, n1 = normal(phi), normal(phi + wedge)
    bottom_c = top_c + h * axis(phi + wedge / 2)
    corners = np.array([top_c - d / 2 * n0, top_c + d / 2 * n0, bottom_c - d / 2 * n1, bottom_c + d / 2 * n1])
    outline, b = rounded_quad(corners, power, concave)
    inner, _ = rounded_quad(corners, power, concave, shrink=(1 - 1.5 / d, 1 - 1.3 / h))
    return _Body(name, corners, outline, inner, (inner[b <= -0.9], inner[b >= 0.9]), outline[b <= -0.9],
                 outline[b >= 0.9], phi + wedge / 2, h, d)


def _stack(p: Patient, lateral: float, phi0: float) -> tuple[list[_Body], list[_Body]]:
    """Vertebral bodies top to bottom (LEVELS), then the sacral and coccygeal segments."""
    section = np.sqrt(max(0.2, 1 - (lateral / 26.0) ** 2))  # an elliptic body is shallower off the midline
    pos, phi, bodies = np.zeros(2), phi0, []
    trans = p.extras.get("transitional", "")
    for i, name in enumerate(LEVELS):
        flared = trans == "sacralised" and i == len(LEVELS) - 1  # a sacralised L5 takes the sacrum's shape
        b = _body(name, pos, phi, p.height[i], p.depth[i] * section, p.body_wedge[i], power=5.0 if flared else 7.0,
                  concave=0.0 if flared else 0.05)
        bodies.append(b)
        phi += p.body_wedge[i]
        pos = (b.corners[2] + b.corners[3]) / 2 + p.disc_height[i] * axis(phi + p.disc_wedge[i] / 2)
        phi += p.disc_wedge[i]
        slip = p.extras.get("listhesis")
        if slip is not None and slip[0] == i:  # this body slipped forward: the column below it sits further back
            pos = pos + slip[1] * p.depth[i] * normal(phi)
    sacrum = []
    for j, (h, d, w) in enumerate(_SACRUM):
        s = p.sacrum_scale
        mobile = trans == "lumbarised" and j == 0  # a lumbarised S1: squared off, a thin disc below it
        b = _body(f"S{j + 1}", pos, phi, h * s, d * s * section, np.radians(w), power=5.0 if j else 7.0,
                  concave=0.05 if mobile else 0.0)
        sacrum.append(b)
        phi += np.radians(w)
        gap = p.extras["s1_disc"] if mobile else 1.6 if j < 4 else 2.5
        pos = (b.corners[2] + b.corners[3]) / 2 + gap * axis(phi)
    return bodies, sacrum


def _disc(upper: _Body, lower: _Body, bulge_a: float, bulge_p: float) -> np.ndarray:
    """The disc polygon shares its endplates with the two bodies and bulges front and back."""
    phi = (upper.phi + lower.phi) / 2
    apex_a = (upper.corners[2] + lower.corners[0]) / 2 - bulge_a * normal(phi)
    apex_p = (upper.corners[3] + lower.corners[1]) / 2 + bulge_p * normal(phi)
    return np.concatenate([upper.bottom, bezier(upper.bottom[-1], apex_a, lower.top[0]), lower.top,
                           bezier(lower.top[-1], apex_p, upper.bottom[0])])


def _rim(upper: _Body, lower: _Body) -> tuple[np.ndarray, np.ndarray]:
    """The front and back of the space between two bodies: the midpoints of their facing corners."""
    return (upper.corners[2] + lower.corners[0]) / 2, (upper.corners[3] + lower.corners[1]) / 2


def _smooth_line(points: np.ndarray, extra: np.ndarray, step: float = 1.5, sigma: float = 3.0) -> tuple:
    """Resample a polyline (and per-point values) by arc length and smooth it; returns points, values, normals."""
    seg = np.r_[0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    s = np.arange(0, seg[-1], step)
    data = np.column_stack([points, extra])
    res = np.stack([np.interp(s, seg, data[:, j]) for j in range(data.shape[1])], 1)
    r = int(3 * sigma)
    kern = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    kern /= kern.sum()
    padded = np.pad(res, ((r, r), (0, 0)), mode="edge")
    res = np.stack([np.convolve(padded[:, j], kern, mode="valid") for j in range(res.shape[1])], 1)
    tan = np.gradient(res[:, :2], axis=0)
    tan /= np.linalg.norm(tan, axis=1, keepdims=True)
    return res[:, :2], res[:, 2:], np.stack([tan[:, 1], -tan[:, 0]], 1)


def build_sagittal(p: Patient, lateral: float = 0.0) -> Anatomy:
    """The scene of one sagittal slice `lateral` mm off the midline; landmarks are those of the drawn shapes."""
    bodies, sacrum = _stack(p, lateral, 0.0)
    l1, l5 = bodies[LEVELS.index("L1")], bodies[LEVELS.index("L5")]
    l1_l5 = centroid(l5.outline) - centroid(l1.outline)
    bodies, sacrum = _stack(p, lateral, p.lean - np.arctan2(l1_l5[0], l1_l5[1]))
    column = bodies + sacrum
    shapes: list[Shape] = []
    off = lateral / 9.0
    gap, sac_t, sac_l, epi_l = p.canal
    sac_l, sac_t = sac_l * np.sqrt(max(0.1, 1 - off ** 2)), sac_t * np.sqrt(max(0.1, 1 - off ** 2))
    # canal: the posterior longitudinal ligament line behind the bodies, with sac and epidural widths per point
    refs, widths = [], []
    for i, b in enumerate(column[:len(LEVELS) + 4]):
        lum = np.clip((i - 7) / 3, 0, 1)
        sac = {len(LEVELS): 0.65 * sac_l, len(LEVELS) + 1: 0.25 * sac_l}.get(i, (1 - lum) * sac_t + lum * sac_l)
        sac = 0.0 if i >= len(LEVELS) + 2 else sac
        epi = 1.5 + lum * (epi_l - 1.5) if i < len(LEVELS) else max(0.0, 7.5 - sac)
        n = normal(b.phi)
        for c in (b.corners[1], b.corners[3]):
            refs.append(c + gap * n)
            widths.append((sac, epi))
    wall, wd, nrm = _smooth_line(np.array(refs), np.array(widths))
    sac_w, epi_w = wd[:, 0], wd[:, 1]
    back = wall + (sac_w + epi_w)[:, None] * nrm
    shapes.append(Shape("epifat", [band(wall - 0.8 * nrm, back)]))
    has_sac = sac_w > 0.4
    ws = wall[has_sac] + (sac_w[has_sac, None] * nrm[has_sac])
    shapes.append(Shape("csf", [band(wall[has_sac], ws)], gain=1 - 0.15 * abs(off)))
    # cord to the conus, then the cauda equina lying dorsally in the sac
    centre = wall + 0.5 * sac_w[:, None] * nrm
    tip = int(np.argmin(np.linalg.norm(wall - bodies[LEVELS.index("L1")].corners[3], axis=1)) + p.conus / 1.5)
    tip = int(np.clip(tip, 10, has_sac.sum() - 10))
    cw = np.clip(np.minimum(8.0 * (1 - 0.3 * abs(off)), (tip - np.arange(tip)) * 1.5 / 4), 1.0, None)[:, None] / 2
    shapes.append(Shape("cord", [band(centre[:tip] - cw * nrm[:tip], centre[:tip] + cw * nrm[:tip])]))
    end = int(has_sac.sum()) - 3
    roots = []
    for f in (0.45, 0.62, 0.75):
        frac = 0.5 + (f - 0.5) * np.clip((np.arange(tip, end) - tip) / 15, 0, 1)
        roots.append(wall[tip:end] + (frac * sac_w[tip:end])[:, None] * nrm[tip:end])
    shapes.append(Shape("root", roots, width=0.6, alpha=0.25))
    shapes.append(Shape("ligament", [wall[: end + 8]], width=1.2, alpha=0.8))
    shapes += _posterior(p, bodies, sacrum, back, nrm, lateral)
    seen_column, seen_canal, seen_pedicle = _off_midline(p, lateral)
    for s in shapes:
        if s.tissue in ("csf", "cord", "root"):
            s.alpha *= seen_canal
    shapes += _pedicles(bodies, seen_pedicle)
    # bodies, discs, sacrum
    clinical = "remnants" in p.extras  # junction.draw_junction's: the sacrum one fused bone
    first, fused, fused_inner = _fused_sacrum(sacrum, p) if clinical else (len(column), None, None)
    for i, b in enumerate(column):
        gain = p.marrow[min(i, len(LEVELS) - 1)] * (1.08 if i >= len(LEVELS) else 1.0)
        if i == first:
            shapes += [Shape("cortex", [fused]), Shape("marrow", [fused_inner], gain=gain)]
        seen = 0.0 if first <= i < len(LEVELS) + 5 else 1.0  # a fused segment: geometry only
        seen *= seen_column if i < len(LEVELS) else 1.0  # the sacrum's alae reach further out than the bodies
        shapes += [Shape("cortex", [b.outline], exact=True, alpha=seen), Shape("marrow", [b.inner], gain=gain,
                                                                                alpha=seen)]
        if i < len(LEVELS) and abs(lateral) < 3:  # basivertebral vein notch
            n, ax = normal(b.phi), axis(b.phi)
            mid = (b.corners[1] + b.corners[3]) / 2 - 1.0 * n
            notch = np.array([mid - 2.5 * ax, mid - 0.5 * ax - 6 * n, mid + 0.5 * ax - 6 * n, mid + 2.5 * ax])
            shapes.append(Shape("epifat", [notch], alpha=0.45))
    if p.extras["hemangioma"] is not None:
        i, rel, r = p.extras["hemangioma"]
        b = bodies[i]
        c = centroid(b.outline) + rel[0] * b.d / 2 * normal(b.phi) + rel[1] * b.h / 2 * axis(b.phi)
        shapes.append(Shape("fat", [ellipse(c, r, r * 0.9)], alpha=0.7))
    points: dict[str, np.ndarray] = {b.name: centroid(b.outline) for b in bodies + sacrum[:2]}
    pairs = list(zip(column[:len(LEVELS)], column[1:len(LEVELS) + 1]))
    for i, (up, lo) in enumerate(pairs):
        deg = p.degeneration[i]
        poly = _disc(up, lo, 0.6 + 2.0 * deg, 0.6 + 3.5 * deg * (1 - 0.3 * abs(off)))
        points[DISCS[i]] = centroid(poly)
        phi = (up.phi + lo.phi) / 2
        dh = np.linalg.norm((up.corners[2] + up.corners[3] - lo.corners[0] - lo.corners[1]) / 2)
        d = (up.d + lo.d) / 2
        c = points[DISCS[i]] + 0.05 * d * normal(phi)
        shapes += [Shape("annulus", [poly], exact=True, alpha=seen_column),
                   Shape("nucleus", [ellipse(c, 0.32 * d, 0.36 * dh, -phi)], alpha=0.9 * seen_column, mix=deg,
                         mix_to="annulus", gain=1 - 0.15 * abs(off), soft=0.12 * dh)]
        if p.extras["cleft"] and deg < 0.7:
            n = 0.22 * d * normal(phi)
            shapes.append(Shape("annulus", [np.array([c - n, c + n])], width=0.7, alpha=0.5 * seen_column))
    for j, (up, lo) in enumerate(zip(sacrum[:4], sacrum[1:5])):  # between the sacral segments
        if j == 0 and p.extras.get("transitional") == "lumbarised":
            shapes += [Shape("annulus", [_disc(up, lo, 0.8, 0.6)]),
                       Shape("nucleus", [ellipse(centroid(_disc(up, lo, 0.8, 0.6)), 0.25 * up.d,
                                                 0.3 * p.extras["s1_disc"], -up.phi)], alpha=0.7, mix=0.5,
                             mix_to="annulus", soft=0.8)]
            continue
        if not clinical:  # segments bridged by marrow, a residual disc line at each
            bridge = np.concatenate([up.inner_ends[1], lo.inner_ends[0]])
            rim = _rim(up, lo)
            shapes += [Shape("marrow", [bridge], gain=p.marrow[-1] * 1.08, soft=0.5),
                       Shape("annulus", [np.array([0.85 * rim[0] + 0.15 * rim[1], 0.15 * rim[0] + 0.85 * rim[1]])],
                             width=1.2, alpha=0.6 - 0.1 * j, soft=0.4)]
            continue
        frac, width, alpha = p.extras["remnants"][j]
        if frac > 0:  # a thin line from the front, part of the way back (most adults show S1-S2 at most)
            ant, post = _rim(up, lo)
            start = ant + 0.08 * (post - ant)
            shapes.append(Shape("remnant", [np.array([start, start + 0.84 * frac * (post - ant)])], width=width,
                                alpha=alpha, soft=0.4))
    marks = _endplates(p, column)
    for s in marks:
        s.alpha *= seen_column
    shapes += marks
    # the whole subject turns in the plane about the L3 body centre
    pivot = points["L3"].copy()
    frame = SpineFrame(centre=points["L3"], front=np.concatenate([b.corners[[0, 2]] for b in bodies]),
                       sacrum_front=np.concatenate([b.corners[[0, 2]] for b in sacrum]), back=back,
                       l4=points["L4"][1], s3=sacrum[2].corners[3][1], tip=sacrum[-1].corners[2][1])
    soft = soft_tissue(p, frame, lateral)
    for s in soft + shapes:
        s.polys = [rotate(q, p.tilt, pivot) for q in s.polys]
    return Anatomy(shapes=soft + shapes, points={k: rotate(v[None], p.tilt, pivot)[0] for k, v in points.items()})


def _off_midline(p: Patient, lateral: float) -> tuple[float, float, float]:
    """How much of the column, the canal's contents and the pedicles a slice `lateral` mm off the midline shows.

    Within _NEAR_MIDLINE mm everything is drawn as on the midline. Further out, in fractions of the lumbar bodies'
    depth d (their width is about 1.4 d): the dural sac ends at 0.3 d, the pedicles show from 0.3 to 0.6 d
    (strongest at 0.45 d), and the bodies and discs end at the column's half width, 0.7 d: a slice beyond it shows
    no disc to count.
    """
    out = abs(lateral)
    if out <= _NEAR_MIDLINE:
        return 1.0, 1.0, 0.0
    d = _lumbar_depth(p)
    column = float(np.clip((0.7 * d - out) / (0.06 * d), 0.0, 1.0))
    canal = float(np.clip((0.3 * d - out) / (0.1 * d), 0.0, 1.0))
    pedicle = float(np.clip(1.0 - abs(out - 0.45 * d) / (0.15 * d), 0.0, 1.0))
    return column, canal, pedicle


def _lumbar_depth(p: Patient) -> float:
    return float(np.mean(p.depth[LEVELS.index("L1"):]))


def _pedicles(bodies: list[_Body], seen: float) -> list[Shape]:
    """The pedicles of a parasagittal slice: a bony oval behind the upper half of each body, the foramen's fat below
    it (the epidural band) holding the exiting root."""
    if seen <= 0:
        return []
    bone, marrow, roots = [], [], []
    for b in bodies:
        n, ax = normal(b.phi), axis(b.phi)
        c = 0.75 * b.corners[1] + 0.25 * b.corners[3] + 4.5 * n + 0.1 * b.h * ax
        bone.append(ellipse(c, 0.26 * b.h, 5.5, -b.phi))
        marrow.append(ellipse(c, 0.26 * b.h - 1.2, 4.3, -b.phi))
        roots.append(ellipse(b.corners[3] + 5.0 * n + 0.25 * b.h * ax, 2.2, 2.6, -b.phi))
    return [Shape("cortex", bone, alpha=seen, soft=0.4), Shape("marrow", marrow, alpha=seen, soft=0.4),
            Shape("root", roots, alpha=0.8 * seen, soft=0.6)]


def _fused_sacrum(sacrum: list[_Body], p: Patient) -> tuple[int, np.ndarray, np.ndarray]:
    """The fused sacrum: its first segment's index in the column, its outline (the segments' front and back
    corners, rounded) and the marrow inside its cortex."""
    first = 1 if p.extras.get("transitional") == "lumbarised" else 0  # a lumbarised S1 stays a separate body
    segments = sacrum[first:5]
    front = np.concatenate([s.corners[[0, 2]] for s in segments])
    back = np.concatenate([s.corners[[1, 3]] for s in segments])[::-1]
    outline = _chaikin(np.concatenate([front, back]), 2)
    return len(LEVELS) + first, outline, inset(outline, 1.4)


def _chaikin(poly: np.ndarray, rounds: int) -> np.ndarray:
    """A closed polygon with its corners cut (Chaikin): each edge keeps its middle half."""
    for _ in range(rounds):
        nxt = np.roll(poly, -1, axis=0)
        poly = np.stack([0.75 * poly + 0.25 * nxt, 0.25 * poly + 0.75 * nxt], 1).reshape(-1, 2)
    return poly


def _endplates(p: Patient, column: list[_Body]) -> list[Shape]:
    """Modic bands (oedema or fat in the marrow along an endplate), Schmorl nodes (disc pushed into the body) and
    gas in a worn disc, at the lower discs (phantom._junction draws them)."""
    shapes = []
    for j, side, frac, tissue in p.extras.get("modic", ()):
        b = column[j if side == 1 else j + 1]
        edge = b.inner_ends[1] if side == 1 else b.inner_ends[0]
        band_ = np.concatenate([edge, (edge - side * frac * b.h * axis(b.phi))[::-1]])
        shapes.append(Shape("marrow", [band_], mix=0.7, mix_to=tissue, soft=0.8))
    for j, side, u, r in p.extras.get("schmorl", ()):
        b = column[j if side == 1 else j + 1]
        edge = b.bottom if side == 1 else b.top
        at = edge[int(round((0.5 + u) * (len(edge) - 1)))] - side * 0.35 * r * axis(b.phi)
        shapes.append(Shape("annulus", [ellipse(at, 0.5 * r, 0.45 * r, -b.phi)], soft=0.3))
    for j, frac, width in p.extras.get("vacuum", ()):
        up, lo = column[j], column[j + 1]
        front, back = _rim(up, lo)
        mid, half = (front + back) / 2, 0.5 * frac * (back - front)
        shapes.append(Shape("gas", [np.array([mid - half, mid + half])], width=width, alpha=0.85, soft=0.4))
    return shapes


def _posterior(p: Patient, bodies: list[_Body], sacrum: list[_Body], back: np.ndarray, nrm: np.ndarray,
               lateral: float) -> list[Shape]:
    """Laminae and spinous processes (shorter off the midline), ligamenta flava, interspinous fat, sacral crest."""
    shapes, fat, flava, bones = [], [], [], []
    prev = None
    off = min(abs(lateral) / 6.0, 1.0)
    d = _lumbar_depth(p)  # off the midline the spinous processes give way to the facets' pillar
    pillar = 1.0 if abs(lateral) <= _NEAR_MIDLINE else float(np.clip(2 - abs(lateral) / (0.2 * d), 0.35, 1.0))
    for i, b in enumerate(bodies):
        jl, jh, ja = p.extras["posterior"][i]
        n, ax = normal(b.phi), axis(b.phi)
        j = int(np.argmin(np.linalg.norm(back - (b.corners[1] + b.corners[3]) / 2, axis=1)))
        base = back[j] + 0.8 * nrm[j]
        lumbar = i >= 8
        length = (30.0 if lumbar else 34.0) * p.spinous * (1 - 0.55 * off) * (1 + 0.08 * jl) * pillar
        drop = np.radians((10 if lumbar else 40 - 3 * (i - 1)) + 4 * ja)
        tip_dir = n * np.cos(drop) + ax * np.sin(drop)
        top, bot = base - 0.15 * b.h * ax, base + (0.65 if lumbar else 0.5) * b.h * ax
        tip_h = (0.8 if lumbar else 0.35) * (1 + 0.12 * jh) * (bot - top)
        tip_c = (top + bot) / 2 + length * tip_dir
        corners = np.array([top, tip_c - tip_h / 2, bot, tip_c + tip_h / 2])
        outline, _ = rounded_quad(corners, 3.0)
        inner, _ = rounded_quad(corners, 3.0, shrink=(0.88, 0.8))
        bones.append((outline, inner))
        if prev is not None:
            fat.append(np.array([prev[2], prev[2] + 0.45 * (prev[3] - prev[2]), top + 0.45 * (corners[1] - top), top]))
            flava.append(np.array([prev[2] - 0.5 * n, top - 0.5 * n]))
        prev = corners
    shapes.append(Shape("fat", fat, alpha=0.6, soft=1.5))
    shapes.append(Shape("ligament", flava, width=2.5, alpha=0.55, soft=0.5))
    shapes.append(Shape("cortex", [o for o, _ in bones], alpha=0.6, soft=0.6))
    shapes.append(Shape("spinal", [q for _, q in bones], soft=0.8))
    # median sacral crest: a bony plate behind the sacral canal
    ks = [int(np.argmin(np.linalg.norm(back - s.corners[1], axis=1))) for s in sacrum[:4]]
    line = back[ks[0]:ks[-1] + 1] + 1.0 * nrm[ks[0]:ks[-1] + 1]
    thick = np.linspace(9, 4, len(line))[:, None] * (1 - 0.5 * off)
    shapes.append(Shape("cortex", [band(line, line + (thick + 1.5) * nrm[ks[0]:ks[-1] + 1])]))
    shapes.append(Shape("spinal", [band(line + nrm[ks[0]:ks[-1] + 1], line + thick * nrm[ks[0]:ks[-1] + 1])]))
    return shapes
