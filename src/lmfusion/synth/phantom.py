"""A synthetic subject for the lumbar spine MRI generator: its random parameters and the anatomy around the spine.

Frame: u runs anterior -> posterior (image columns), v superior -> inferior (image rows), in mm. A scene is an ordered
list of `Shape`s in painter's order (later shapes cover earlier ones), each naming a tissue; the renderer maps tissues
to intensities per contrast, so T1 and T2 images share one geometry. `sample_patient` draws every random number;
the builders (`spine.build_sagittal`, `axial.build_axial`) are pure functions of the patient. Legend: P points;
point arrays are (P, 2) in (u, v) mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmfusion.synth.junction import COLLAPSED_AT, P_COLLAPSED, draw_junction, extra_wear

LEVELS = ("T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")
DISCS = tuple(f"{a}-{b}" for a, b in zip(LEVELS, LEVELS[1:] + ("S1",)))
# an average adult: body height, AP depth, height of the disc below (mm); wedge angles of body and disc below (deg,
# positive = taller in front, i.e. lordotic)
_BODY_H = (19.0, 19.5, 20.0, 21.0, 22.0, 23.0, 24.0, 25.5, 26.5, 27.5, 28.0, 27.5, 26.5)
_BODY_D = (27.0, 28.0, 29.0, 30.0, 31.0, 32.5, 34.0, 36.0, 38.0, 40.0, 41.5, 42.5, 43.0)
_DISC_H = (4.5, 4.5, 5.0, 5.0, 5.5, 5.5, 6.0, 7.0, 8.0, 9.0, 10.0, 10.5, 10.0)
_BODY_W = (-3.0,) * 7 + (-1.0, 0.0, 0.5, 1.0, 2.0, 5.0)
_DISC_W = (-2.5,) * 7 + (1.0, 3.0, 5.0, 7.0, 10.0, 14.0)
LORDOSIS_MEDIAN = 1.4  # of the factor on the lumbar wedges (1: the average adult of the tables above)
P_SACRALISED, P_LUMBARISED = 0.07, 0.04  # partial transitional vertebrae, about as often as in lumbar MRI


@dataclass
class Shape:
    """Polygons (or polylines) of one tissue, painted with one alpha over what is already drawn."""

    tissue: str
    polys: list[np.ndarray]  # each (P, 2) mm
    width: float = 0.0  # > 0: open polylines of this width (mm) instead of filled polygons
    alpha: float = 1.0
    gain: float = 1.0  # intensity multiplier
    mix: float = 0.0  # blend the intensity towards `mix_to` (a disc losing water)
    mix_to: str = ""
    soft: float = 0.0  # edge blur in mm (bowel, fat pockets); landmark shapes stay sharp
    exact: bool = False  # a landmark's shape: drawn so that its area centroid is exact to a few hundredths of a pixel


@dataclass
class Anatomy:
    """A slice's scene: shapes in painter's order and the landmarks of the drawn anatomy."""

    shapes: list[Shape]
    points: dict[str, np.ndarray]  # landmark name -> (2,) area centroid in mm


@dataclass
class Patient:
    """Everything random about one subject; `build_sagittal` is a pure function of it and a slice offset."""

    height: np.ndarray  # (13,) per level in LEVELS
    depth: np.ndarray
    body_wedge: np.ndarray  # radians
    disc_height: np.ndarray  # disc below each level (the last is L5-S1)
    disc_wedge: np.ndarray
    degeneration: np.ndarray  # (13,) 0 (healthy) .. 1 (dark, collapsed)
    marrow: np.ndarray  # (13,) intensity gain per body
    lean: float  # angle of the L1 -> L5 axis from vertical (rad, negative = lower end anterior)
    tilt: float  # in-plane rotation of the whole subject (rad)
    sacrum_scale: float
    canal: tuple[float, float, float, float]  # PLL gap, thoracic sac, lumbar sac, lumbar epidural fat (mm)
    conus: float  # conus tip below the L1 body's lower posterior corner (mm)
    spinous: float  # spinous process length factor
    wall: tuple[float, float, float, float]  # muscle behind the spinous tips, back fat, front fat, abdomen depth
    wobble: np.ndarray  # (3, 3) amplitude, wavelength, phase of the body-outline undulation
    blobs: np.ndarray  # (B, 8) bowel loops: depth fraction, v, rx, ry, angle, kind, du, dv per mm of slice offset
    aorta: float  # radius in mm, 0 when the mid-sagittal plane misses it
    bladder: tuple[float, float, float] | None  # v offset below the sacrum tip, rx, ry
    extras: dict = field(default_factory=dict)  # cleft, wedge, hemangioma, transitional, s1_disc, liver, posterior,
    # slant, streaks; with a clinical junction (junction.draw_junction) remnants, listhesis, modic, schmorl, vacuum


@dataclass
class SpineFrame:
    """Where the drawn spine lies, for the tissues around it (mm, before the in-plane tilt)."""

    centre: np.ndarray  # (2,) L3 body centre
    front: np.ndarray  # (P, 2) anterior body corners, T5..L5
    sacrum_front: np.ndarray  # (P, 2) anterior corners of the sacral and coccygeal segments
    back: np.ndarray  # (P, 2) posterior border of the canal, top to bottom
    l4: float  # v of the L4 body centre (the aorta divides there)
    s3: float  # v of the lower border of S3 (the buttocks begin)
    tip: float  # v of the coccyx tip


def axis(phi: float) -> np.ndarray:
    return np.array([np.sin(phi), np.cos(phi)])


def normal(phi: float) -> np.ndarray:  # points posteriorly
    return np.array([np.cos(phi), -np.sin(phi)])


def rotate(points: np.ndarray, theta: float, centre: np.ndarray) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return (points - centre) @ np.array([[c, s], [-s, c]]) + centre


def centroid(poly: np.ndarray) -> np.ndarray:
    """Area centroid of a simple polygon (P, 2)."""
    x, y = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (3.0 * cross.sum())


def ellipse(c: np.ndarray, ru: float, rv: float, angle: float = 0.0, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return rotate(np.stack([c[0] + ru * np.cos(t), c[1] + rv * np.sin(t)], 1), angle, c)


def rounded_quad(corners: np.ndarray, power: float, concave: float = 0.0, shrink: tuple[float, float] = (1.0, 1.0),
                 n: int = 72) -> tuple[np.ndarray, np.ndarray]:
    """A superellipse mapped bilinearly onto corners (AS, PS, AI, PI); returns the outline and its raw b values.

    Local a runs anterior (-1) -> posterior (+1), b superior (-1) -> inferior (+1); points go posterior-mid,
    inferior, anterior, superior. `concave` pulls the endplates in at the middle (biconcave bodies).
    """
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    a = np.sign(c) * np.abs(c) ** (2 / power)
    b_raw = np.sign(s) * np.abs(s) ** (2 / power)
    b = b_raw * (1 - concave * (1 - a ** 2))
    wa, wb = ((a * shrink[0] + 1) / 2)[:, None], ((b * shrink[1] + 1) / 2)[:, None]
    as_, ps, ai, pi = corners
    return (1 - wa) * (1 - wb) * as_ + wa * (1 - wb) * ps + (1 - wa) * wb * ai + wa * wb * pi, b_raw


def inset(q: np.ndarray, d: float) -> np.ndarray:
    """Move a polygon's (P, 2) edges inwards by d (pixels or mm) (mitred, limited at sharp corners)."""
    e = np.diff(q, axis=0, append=q[:1])  # edge i runs from point i to point i + 1
    n = np.stack([-e[:, 1], e[:, 0]], 1) / np.maximum(np.hypot(e[:, 0], e[:, 1]), 1e-9)[:, None]
    n_in, n_out = np.concatenate([n[-1:], n[:-1]]), n  # normals of the edges into and out of each point
    bis = n_in + n_out
    bis /= np.maximum(np.hypot(bis[:, 0], bis[:, 1]), 1e-9)[:, None]
    cos = np.clip((bis * n_in).sum(1, keepdims=True), 0.5, 1.0)
    area2 = (q[:, 0] * np.roll(q[:, 1], -1) - np.roll(q[:, 0], -1) * q[:, 1]).sum()
    return q + np.sign(area2) * d * bis / cos


def bezier(p0: np.ndarray, apex: np.ndarray, p2: np.ndarray, n: int = 8) -> np.ndarray:
    """Quadratic curve from p0 to p2 through `apex` at its middle, endpoints excluded."""
    ctrl = 2 * apex - 0.5 * (p0 + p2)
    t = np.linspace(0, 1, n + 2)[1:-1, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * ctrl + t ** 2 * p2


def band(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    return np.concatenate([inner, outer[::-1]])


def interp_line(points: np.ndarray, v: np.ndarray) -> np.ndarray:
    """u at each v along a top-to-bottom line (constant beyond its ends)."""
    order = np.argsort(points[:, 1], kind="stable")
    pts = points[order]
    keep = np.r_[True, np.diff(pts[:, 1]) > 1e-6]
    return np.interp(v, pts[keep, 1], pts[keep, 0])


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    r = int(3 * sigma)
    kern = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return np.convolve(np.pad(x, r, mode="edge"), kern / kern.sum(), mode="valid")


def sample_patient(rng: np.random.Generator, lordosis_median: float = LORDOSIS_MEDIAN,
                   clinical: bool = False) -> Patient:
    """Draw one subject: sizes, lordosis, degeneration, pathology, canal and body wall; `clinical`: the lumbosacral
    junction as a clinical population shows it (`junction`: the fused sacrum, worn and slipped lower discs)."""
    k = len(LEVELS)
    size = rng.uniform(0.88, 1.12)
    height = np.array(_BODY_H) * size * rng.uniform(0.94, 1.06, k)
    depth = np.array(_BODY_D) * size * rng.uniform(1.0, 1.1) * rng.uniform(0.97, 1.03, k)
    # lordosis from flat to strong, and a lumbosacral junction that can turn further still (a sacrum sloping
    # sharply backwards, a wedge-shaped L5): together a lumbosacral turn of about 0 to 75 degrees
    lordosis = float(np.clip(rng.lognormal(np.log(lordosis_median), 0.42), 0.3, 2.6))
    junction = float(np.clip(rng.lognormal(0.0, 0.35), 0.6, 2.4))
    gain = np.where(np.arange(k) >= 7, lordosis, 1.0) * np.where(np.arange(k) >= 11, junction, 1.0)
    body_wedge = np.radians(np.array(_BODY_W) * gain + rng.normal(0, 0.7, k))
    disc_wedge = np.radians(np.array(_DISC_W) * gain + rng.normal(0, 1.0, k))
    age = rng.uniform(0, 1)
    # degeneration grows with age and towards the lower lumbar discs (clinical: L4-L5 and L5-S1 worn more often)
    p_deg = age * np.clip(0.1 + 0.12 * (np.arange(k) - 7), 0.05, 0.8)
    p_deg = p_deg + extra_wear(k) if clinical else p_deg
    degeneration = np.where(rng.random(k) < p_deg, rng.uniform(0.35, 0.95, k), rng.uniform(0, 0.2, k))
    disc_height = np.array(_DISC_H) * size * rng.uniform(0.85, 1.15, k) * (1 - 0.45 * degeneration)
    p_collapsed, where = (P_COLLAPSED, COLLAPSED_AT) if clinical else (0.12, (0.1, 0.2, 0.35, 0.35))
    if rng.random() < p_collapsed:  # a collapsed disc
        i = int(rng.choice([9, 10, 11, 12], p=where))
        degeneration[i], disc_height[i] = 1.0, disc_height[i] * rng.uniform(0.2, 0.35)
    # lumbosacral transitional anatomy, partial forms (the 11 landmarks keep their names, counted upward from the
    # fused sacrum): a sacralised L5 (squat, flared, over a small dark L5-S1 disc) or a lumbarised S1 (squared off,
    # with a thin disc between S1 and S2 that looks like one more lumbar level)
    transitional = str(rng.choice(["", "sacralised", "lumbarised"], p=[1 - P_SACRALISED - P_LUMBARISED,
                                                                       P_SACRALISED, P_LUMBARISED]))
    if transitional == "sacralised":
        degeneration[-1], disc_height[-1] = rng.uniform(0.8, 1.0), disc_height[-1] * rng.uniform(0.2, 0.45)
        height[-1] *= rng.uniform(0.82, 0.92)
        depth[-1] *= rng.uniform(1.03, 1.1)
    # no endplates crossing: each disc keeps at least 30 % of its height at its thin end
    limit = np.arctan(0.7 * disc_height / (0.5 * depth))
    disc_wedge = np.clip(disc_wedge, -limit, limit)
    body_wedge = np.clip(body_wedge, -np.radians(24), np.radians(24))
    extras: dict = {"cleft": age > 0.35, "wedge": None, "hemangioma": None, "transitional": transitional,
                    "s1_disc": rng.uniform(2.5, 5.0),
                    "liver": rng.uniform(-80, 20) if rng.random() < 0.6 else None,
                    "posterior": rng.normal(0, 1, (k, 3)), "slant": rng.normal(0, 0.1),
                    "streaks": np.column_stack([rng.uniform(0.05, 0.95, 10), rng.uniform(-250, 200, 10),
                                                rng.uniform(40, 250, 10), rng.uniform(0.3, 1.0, 10)])}
    if rng.random() < 0.1:  # a wedge-shaped (compression) vertebra, front lower than back
        i = int(rng.choice([6, 7, 8, 9, 10, 11]))
        loss = rng.uniform(0.2, 0.45)
        body_wedge[i] = -np.arctan(loss * height[i] / depth[i])
        height[i] *= 1 - loss / 2
        extras["wedge"] = i
    if rng.random() < 0.12:
        extras["hemangioma"] = (int(rng.integers(7, k)), rng.uniform(-0.4, 0.4, 2), rng.uniform(2.5, 6.0))
    marrow = rng.uniform(0.95, 1.05) * np.exp(np.cumsum(rng.normal(0, 0.015, k)))  # neighbours look alike
    wobble = np.stack([rng.uniform(1, 4, 3), rng.uniform(200, 500, 3), rng.uniform(0, 2 * np.pi, 3)], 1)
    nb = 140
    blobs = np.stack([rng.uniform(0, 1, nb), rng.uniform(-330, 330, nb), rng.uniform(5, 18, nb),
                      rng.uniform(4, 12, nb), rng.uniform(0, np.pi, nb),
                      rng.choice(4, nb, p=[0.3, 0.45, 0.08, 0.17]), rng.normal(0, 0.4, nb), rng.normal(0, 0.4, nb)], 1)
    bladder = (rng.uniform(-30, 40), rng.uniform(30, 60), rng.uniform(25, 45)) if rng.random() < 0.25 else None
    if clinical:
        extras |= draw_junction(rng, degeneration)
    return Patient(
        height=height, depth=depth, body_wedge=body_wedge, disc_height=disc_height, disc_wedge=disc_wedge,
        degeneration=degeneration, marrow=marrow, lean=np.radians(np.clip(rng.normal(-3, 4), -12, 8)),
        tilt=np.radians(np.clip(rng.normal(0, 4), -10, 10)), sacrum_scale=size * rng.uniform(0.9, 1.1),
        canal=(rng.uniform(1.0, 2.5), rng.uniform(10, 13), rng.uniform(12, 17), rng.uniform(1.5, 4)),
        conus=rng.uniform(-25, 25), spinous=size * rng.uniform(0.85, 1.15),
        wall=(rng.uniform(12, 25), rng.uniform(6, 38), rng.uniform(8, 40), rng.uniform(70, 230)),
        wobble=wobble, blobs=blobs, aorta=rng.uniform(8, 11) if rng.random() < 0.6 else 0.0, bladder=bladder,
        extras=extras)


def soft_tissue(p: Patient, frame: SpineFrame, lateral: float) -> list[Shape]:
    """Body wall, back muscles and fat, abdominal and pelvic content, aorta; drawn before the spine."""
    ref = frame.centre
    v = np.arange(ref[1] - 480, ref[1] + 480, 4.0)
    wob = sum(a * np.sin(2 * np.pi * v / lam + ph) for a, lam, ph in p.wobble)
    u_ant = interp_line(np.concatenate([frame.front, frame.sacrum_front]), v)
    glute = 25 * np.clip((v - frame.s3) / 80, 0, 1) ** 2
    wob2 = sum(a * np.sin(2 * np.pi * v / lam + ph + 2.0) for a, lam, ph in p.wobble)
    fat_b, fat_f = p.wall[1] * (1 + 0.08 * wob2) + 0.4 * glute, p.wall[2] * (1 + 0.06 * wob2) + 0.5 * wob
    # the back follows the lordosis loosely but never cuts into the spinous processes; the belly hangs vertically
    u_canal = smooth(interp_line(frame.back, v), 5.0)
    u_musc = u_canal + 30 * p.spinous
    m = np.interp(ref[1], v, u_canal)
    u_back = m + 0.7 * (u_canal - m) + glute + 30 * p.spinous + p.wall[0] + p.wall[1] + wob
    u_back = smooth(np.maximum(u_back, u_musc + 0.5 * p.wall[0] + fat_b), 3.0)
    u_front = np.interp(ref[1], v, u_ant) + p.extras["slant"] * (v - ref[1]) - p.wall[3] - wob
    line = lambda u: np.stack([u, v], 1)  # noqa: E731
    inner = u_front + fat_f + 9
    # fat streaks in the back muscles (fractions of the muscle depth) and fibrous septa in the subcutaneous fat
    streaks: tuple[list, list] = ([], [])
    for j, (f, v0, ln, _) in enumerate(p.extras["streaks"]):
        sel = (v > ref[1] + v0) & (v < ref[1] + v0 + ln)
        u = u_musc + f * (u_back - fat_b - u_musc) if j < 6 else u_back - fat_b + f * (fat_b - 2)
        if sel.sum() > 2:
            streaks[j >= 6].append(np.stack([u[sel], v[sel]], 1))
    shapes = [Shape("muscle", [band(line(u_front), line(u_back))]),
              Shape("gut", [band(line(inner), line(np.maximum(u_ant - 1.5, inner)))])]
    walls, fills = [], {0: [], 1: [], 2: [], 3: []}
    for frac, bv, rx, ry, ang, kind, du, dv in p.blobs:
        bv = ref[1] + bv + lateral * dv
        lo, hi = np.interp(bv, v, inner), np.interp(bv, v, u_ant) - 4
        if hi - lo < 10:
            continue
        c = np.array([lo + frac * (hi - lo) + lateral * du, bv])
        walls.append(ellipse(c, rx + 1.8, ry + 1.8, ang, 28))
        fills[int(kind)].append(ellipse(c, rx, ry, ang, 28))
    shapes.append(Shape("wall", walls, alpha=0.5, soft=1.5))
    shapes += [Shape(t, fills[k], alpha=0.6, soft=2.5) for k, t in enumerate(("fluid", "content", "gas", "fat"))
               if fills[k]]
    if p.extras["liver"] is not None:  # liver and spleen in the upper abdomen
        lo = ref[1] + p.extras["liver"]
        front, back_ = line(inner)[v < lo + 30], v < lo - 30  # the lower edge rises towards the back
        edge = np.stack([np.maximum(u_ant[back_] - 30 - 20 * np.clip((v[back_] - lo + 90) / 90, 0, 1),
                                    inner[back_]), v[back_]], 1)
        tip = bezier(front[-1], (front[-1] + edge[-1]) / 2 + [0, 12], edge[-1])
        shapes.append(Shape("liver", [np.concatenate([front, tip, edge[::-1]])], soft=2.5))
    if p.bladder is not None:  # in front of the sacrum, never overlapping it
        dv, rx, ry = p.bladder
        bv = frame.tip + dv
        room = np.interp(bv, v, u_ant) - 10 - np.interp(bv, v, inner)
        rx = min(rx, room / 2 - 3)
        if rx > 15:
            c = np.array([np.interp(bv, v, inner) + rx + 4, bv])
            shapes += [Shape("wall", [ellipse(c, rx + 2.5, ry + 2.5, 0.2)], soft=1.0),
                       Shape("bladder", [ellipse(c, rx, ry, 0.2)], soft=1.0)]
    if p.aorta > 0:
        sel = v < frame.l4
        uc = u_ant[sel] - 3 - p.aorta
        shapes.append(Shape("vessel", [band(np.stack([uc - p.aorta, v[sel]], 1), np.stack([uc + p.aorta, v[sel]], 1))],
                            alpha=0.7, soft=1.5))
    shapes += [Shape("air", [band(line(u_front - 800), line(u_front))]),
               Shape("fat", [band(line(u_front + 1.5), line(u_front + fat_f))]),
               Shape("muscle", [band(line(u_front + fat_f), line(inner))]),
               Shape("skin", [band(line(u_front), line(u_front + 1.5))]),
               Shape("fat", [band(line(u_back - fat_b), line(u_back - 1.5))]),
               Shape("fat", streaks[0], width=1.2, alpha=0.3, soft=0.6),
               Shape("wall", streaks[1], width=0.8, alpha=0.35, soft=0.4),
               Shape("skin", [band(line(u_back - 1.5), line(u_back))])]
    return shapes
