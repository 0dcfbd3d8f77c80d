"""The lower spine as clinical scans show it, for the clinical style: how often the lumbosacral junction is worn,
slipped or carries disc remnants in the fused sacrum (`phantom.sample_patient(clinical=True)` draws it, `spine`
draws what this decides; the other styles keep their sacrum of separate segments).

Frequencies meant as a clinical lumbar MRI population's: L4-L5 and L5-S1 worn in about 55-60 %, a collapsed disc in
about a fifth of studies (mostly L5-S1), a visible S1-S2 remnant in about half, a slipped vertebra in one study in
ten, Modic bands, Schmorl nodes and gas at the worn lower discs (`synthetic.json` beside a dataset counts them).
"""

from __future__ import annotations

import numpy as np

P_COLLAPSED = 0.22  # a lumbar disc collapsed to a thin dark line
COLLAPSED_AT = (0.1, 0.15, 0.3, 0.45)  # ... at L2-L3, L3-L4, L4-L5, L5-S1
P_REMNANTS = (0.55, 0.2, 0.08, 0.03)  # a visible disc remnant between S1-S2 .. S4-S5 of the fused sacrum
P_LISTHESIS = 0.1  # a vertebra slipped forward over the one below: L4 on L5 (degenerative) or L5 on S1 (isthmic)
CASES = ("worn L5-S1", "collapsed L5-S1", "slipped vertebra", "sacral disc remnant", "Modic band", "Schmorl node",
         "gas in a disc")  # shown by clinical studies only, besides common.HARD_CASES
TISSUES = {"remnant": (0.30, 0.30, 0.05, 0.05, 0.0)}  # as mri.TISSUES: a remnant is dehydrated, thin


def extra_wear(k: int) -> np.ndarray:
    """(k,) what a clinical population adds to the probability that each disc is worn: L4-L5 and L5-S1."""
    return np.where(np.arange(k) >= k - 2, 0.25, 0.0)


def cases(p) -> tuple[str, ...]:  # noqa: ANN001 (a phantom.Patient drawn with clinical=True)
    """The CASES a clinical subject shows."""
    shown = {"worn L5-S1": p.degeneration[-1] >= 0.35, "collapsed L5-S1": p.degeneration[-1] >= 1.0,
             "slipped vertebra": p.extras["listhesis"] is not None,
             "sacral disc remnant": bool(p.extras["remnants"][:, 0].any()), "Modic band": bool(p.extras["modic"]),
             "Schmorl node": bool(p.extras["schmorl"]), "gas in a disc": bool(p.extras["vacuum"])}
    return tuple(c for c in CASES if shown[c])


def draw_junction(rng: np.random.Generator, degeneration: np.ndarray) -> dict:
    """The lower spine as clinical scans show it: the fused sacrum's disc remnants, a slipped vertebra, and at the
    worn discs' endplates Modic bands, Schmorl nodes and gas (vacuum) in the disc."""
    k = len(degeneration)
    shown = rng.random(4) < np.array(P_REMNANTS)
    remnants = np.column_stack([np.where(shown, rng.uniform(0.35, 0.9, 4), 0.0), rng.uniform(0.5, 1.6, 4),
                                rng.uniform(0.3, 0.8, 4)])  # depth fraction from the front (0: none), width mm, alpha
    slip = rng.random() < P_LISTHESIS
    level, amount = int(rng.choice([k - 2, k - 1], p=[0.55, 0.45])), float(rng.uniform(0.08, 0.3))
    modic, schmorl, vacuum = [], [], []
    for j in range(k - 4, k):  # the lowest four discs; disc j lies between body j and body j + 1 (S1 after L5)
        deg = degeneration[j]
        for side in (1, -1):  # the upper body's lower endplate, the lower body's upper one
            if rng.random() < 0.2 * deg:
                modic.append((j, side, float(rng.uniform(0.1, 0.3)), str(rng.choice(["csf", "fat"]))))
            if rng.random() < 0.02 + 0.05 * deg:
                schmorl.append((j, side, float(rng.uniform(-0.3, 0.3)), float(rng.uniform(2.0, 5.0))))
        if deg > 0.75 and rng.random() < 0.35:
            vacuum.append((j, float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.6, 1.8))))
    return {"remnants": remnants, "listhesis": (level, amount) if slip else None, "modic": modic,
            "schmorl": schmorl, "vacuum": vacuum}
