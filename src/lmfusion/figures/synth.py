"""Pictures of the synthetic studies: a montage read back from a dataset written in the challenge's layout, and the
gallery of hard cases (one generated study per case). Legend: K landmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lmfusion import config
from lmfusion.data.dicom import read_dicom, read_header
from lmfusion.synth.tianchi import SPLITS
from lmfusion.synth.styles import generate_study, style_cases
from lmfusion.errors import DataError
from lmfusion.figures.drawing import draw_points, landmark_colors, montage, to_bgr


def challenge_montage(out: Path, count: int = 16, names: tuple[str, ...] = config.LANDMARKS) -> np.ndarray:
    """A BGR montage of the first `count` annotated slices with their landmarks, read back from a dataset written
    by lmfusion.synth.write_dataset (the challenge's layout)."""
    out = Path(out)
    tiles, captions = [], []
    colors = landmark_colors(names)
    for split, _ in SPLITS:
        ann_file = out / f"{split}_annotation.json"
        if len(tiles) >= count or not ann_file.exists():
            continue
        uids = {}
        for rec in json.loads(ann_file.read_text()):
            if len(tiles) + len(uids) >= count:
                break
            uids[rec["data"][0]["instanceUid"]] = rec["data"][0]["annotation"][0]["data"]["point"]
        for folder in sorted((out / split).iterdir(), key=lambda f: (len(f.name), f.name)):
            for f in sorted(folder.glob("*.dcm")):
                uid = str(read_header(f).SOPInstanceUID)
                if uid not in uids:
                    continue
                pts = {p["tag"]["identification"]: p["coord"] for p in uids.pop(uid)}
                xy = np.array([pts.get(n, (np.nan, np.nan)) for n in names], dtype=np.float64)  # (K, 2)
                img = read_dicom(f)
                tiles.append(draw_points(to_bgr(img.pixels), xy, colors))
                h, w = img.pixels.shape
                captions.append(f"{folder.name} {w}x{h} {img.spacing[0]:.2f}mm")
            if not uids:
                break
    if not tiles:
        raise DataError(f"{out}: no annotated studies found (expected {SPLITS[0][0]}_annotation.json)")
    cols = int(np.ceil(np.sqrt(len(tiles))))
    return montage(tiles, cols=cols, tile=320, captions=captions)


def hard_case_gallery(seed: int, n: int, names: tuple[str, ...] = config.LANDMARKS, tile: int = 320,
                      style: str = "default") -> np.ndarray:
    """A BGR grid with one study per hard case (styles.style_cases(style)) among studies 0..n-1 of `seed` in `style`
    (with the dataset's seed and style: studies of the dataset), each study shown once, its annotated slice with the
    landmarks. The rarest cases choose first; a study whose sacrum is cut off is the last choice for the other cases
    (the junction is hidden)."""
    shows = {i: generate_study(np.random.default_rng([seed, i]), names, style).cases for i in range(n)}
    chosen: dict[str, int] = {}
    cases = style_cases(style)
    for case in sorted(cases, key=lambda c: sum(c in v for v in shows.values())):
        free = [i for i, v in shows.items() if case in v and i not in chosen.values()]
        free.sort(key=lambda i: case != "sacrum cut" and "sacrum cut" in shows[i])
        if free:
            chosen[case] = free[0]
    if not chosen:
        raise DataError(f"synth: no hard case among the first {n} studies of seed {seed}")
    colors = landmark_colors(names)
    tiles, captions = [], []
    for case in [c for c in cases if c in chosen]:
        study = generate_study(np.random.default_rng([seed, chosen[case]]), names, style)
        h, w = study.image.shape
        tiles.append(draw_points(to_bgr(study.image), study.landmarks, colors))
        captions.append(f"{case}: study{chosen[case]} {w}x{h}")
    return montage(tiles, cols=min(5, len(tiles)), tile=tile, captions=captions)
