"""The axial T2 slice through the L4-L5 disc of a synthetic subject (geometry in mm)."""

from __future__ import annotations

import numpy as np

from lmfusion.synth.phantom import LEVELS, Anatomy, Patient, Shape, ellipse

def build_axial(p: Patient) -> Anatomy:
    """A transverse slice through the L4-L5 disc: canal centre at the origin, u to the patient's left, v posterior."""
    i = LEVELS.index("L4")
    d, deg, sp = p.depth[i], p.degeneration[i], 26 * p.spinous
    w, dc = 1.35 * d, np.array([0.0, -1.5 - 0.45 * d])  # disc width and centre
    back, fat = sp + 22 + p.wall[0] + p.wall[1], p.wall[1]
    torso = np.array([0.0, back - 120])
    s = [Shape("fat", [ellipse(torso, 170, 120, n=90)]),
         Shape("gut", [ellipse(torso + [0, (p.wall[2] - fat) / 2], 170 - 12, 120 - (fat + p.wall[2]) / 2, n=90)],
               soft=2.0)]
    centres = [np.array([(f - 0.5) * 200, dc[1] - d / 2 - 20 - (bv % 90)]) for f, bv, *_ in p.blobs[:30]]
    walls = [ellipse(c, rx + 1.8, ry + 1.8, a, 28) for c, (_, _, rx, ry, a, *_) in zip(centres, p.blobs)]
    blobs = [ellipse(c, rx, ry, a, 28) for c, (_, _, rx, ry, a, *_) in zip(centres, p.blobs)]
    s += [Shape("wall", walls, alpha=0.5, soft=1.5), Shape("fluid", blobs[::3], alpha=0.6, soft=2.0),
          Shape("content", blobs[1::3], alpha=0.6, soft=2.0), Shape("fat", blobs[2::3], alpha=0.5, soft=2.0)]
    musc = np.array([0.0, (12 + back - fat) / 2])
    s += [Shape("muscle", [ellipse(musc, 68, (back - fat - 12) / 2 + 4, n=60)]),
          Shape("fat", [np.array([[0.0, 20], [0.0, back - fat]])], width=3.0, alpha=0.6, soft=0.8)]
    for side in (-1, 1):
        facet_a, facet_p = np.array([side * 19.0, 7.0]), np.array([side * 15.0, 16.0])
        s += [Shape("fat", [np.array([[side * 22.0, 20], [side * 40.0, back - fat - 6]])], width=1.2, alpha=0.4,
                    soft=0.6),
              Shape("muscle", [ellipse(dc + [side * (w / 2 + 10), -0.1 * d], 15, 19, side * 0.5)]),  # psoas
              Shape("cortex", [ellipse(facet_a, 6.5, 8.5, side * 0.6), ellipse(facet_p, 6.5, 7.5, side * 0.6)]),
              Shape("spinal", [ellipse(facet_a, 5.0, 7.0, side * 0.6), ellipse(facet_p, 5.0, 6.0, side * 0.6)]),
              Shape("csf", [np.array([facet_a + [-side * 1.5, 6.5], facet_a + [side * 3.5, 3.5]])], width=0.8,
                    alpha=0.6),  # joint fluid
              Shape("cortex", [np.array([[side * 12.0, 19], [side * 2.0, 25]])], width=6.0),
              Shape("spinal", [np.array([[side * 12.0, 19], [side * 2.0, 25]])], width=4.0),
              Shape("ligament", [np.array([[side * 11.0, 13], [side * 3.0, 17]])], width=2.5, alpha=0.8),
              Shape("vessel", [ellipse(dc + [side * 10, -d / 2 - 9], 5.5, 5.5)]),
              Shape("vessel", [ellipse(dc + [side * 20, -d / 2 - 5], 8.0, 6.0)], alpha=0.8)]
    s += [Shape("cortex", [np.array([[0.0, 23], [0.0, 23 + sp]])], width=7.0),
          Shape("spinal", [np.array([[0.0, 24], [0.0, 22 + sp]])], width=4.5),
          Shape("epifat", [ellipse(np.array([0.0, 8.0]), 14, 8.5)], soft=0.8),
          Shape("csf", [ellipse(np.array([0.0, 7.5]), 10.5, 6.5)], gain=0.95),
          Shape("root", [ellipse(np.array([x, 10.0 - abs(x) / 4]), 1.2, 1.2, n=12)
                         for x in (-5.0, -2.5, 0.0, 2.5, 5.0)], alpha=0.35, soft=0.3)]
    disc = ellipse(dc, w / 2, d / 2, n=60)
    disc[:, 1] = np.minimum(disc[:, 1], dc[1] + 0.4 * d - 0.05 * np.abs(disc[:, 0]))  # flat, slightly concave back
    s += [Shape("annulus", [disc]),
          Shape("nucleus", [ellipse(dc + [0, 1], 0.33 * w, 0.3 * d)], alpha=0.6, mix=deg, mix_to="annulus",
                soft=3.0)]
    return Anatomy(shapes=s, points={})
