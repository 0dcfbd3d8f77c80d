"""Synthetic sagittal lumbar spine MRI in the spinal disease challenge's format (DICOM studies + annotation JSON).

A study has a sagittal T2 series (3 slices, the middle one annotated), a sagittal T1 slice and an axial T2 slice.
The subject comes from `phantom` / `phantom_spine` (geometry in mm), the images from `mri` (rendering and
acquisition); here each study gets its matrix, pixel spacing and field of view, and is written with its UIDs and
annotation. Landmarks are the drawn shapes' centroids mapped by the image's affine and rounded to 2 decimals (the
rounded values are the ground truth). Legend: K landmarks, H x W image; points are (x, y) = (column, row), pixel
centres at integers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from lmfusion import config
from lmfusion.data import mri, phantom, phantom_spine
from lmfusion.data.dicom import read_dicom, read_header, write_dicom
from lmfusion.errors import DataError, ParamError
from lmfusion.io import atomic_path, write_json
from lmfusion.plots import draw_points, landmark_colors, montage, to_bgr

SPLITS = (("lumbar_train150", 150), ("lumbar_train51", None))
_MATRICES = ((256, 0.06), (320, 0.14), (384, 0.32), (448, 0.16), (512, 0.22), (576, 0.05), (640, 0.05))
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


def _check_names(names: tuple[str, ...]) -> None:
    known = phantom.LEVELS + phantom.DISCS
    for n in names:
        if n not in known:
            raise ParamError(f"synth landmarks: unknown name {n!r}; known: {', '.join(known)}")


def _grid(rng: np.random.Generator, pts: np.ndarray) -> tuple[int, int, tuple[float, float], np.ndarray]:
    """Matrix, spacing and the mm -> pixel affine (2, 3), so that `pts` (mm) fall inside with a margin."""
    span = np.ptp(pts, 0)
    fov = max(rng.uniform(300, 400), span[1] / 0.72, span[0] / 0.6)
    sizes, probs = zip(*_MATRICES)
    h = int(rng.choice(sizes, p=probs))
    while h * 0.9 < fov and h < sizes[-1]:
        h = sizes[sizes.index(h) + 1]
    sx = round(float(np.clip(fov / h, 0.5, 0.9)), 6)
    sy = sx if rng.random() < 0.75 else round(float(np.clip(sx * rng.uniform(0.96, 1.04), 0.5, 0.9)), 6)
    w = h
    if rng.random() < 0.15:
        w = max(256, int(round(h * rng.uniform(0.78, 0.95) / 16)) * 16)
        w = max(w, min(h, int(np.ceil(span[0] / 0.6 / sx / 16)) * 16))
    scale = np.array([1 / sx, 1 / sy])
    lo, hi = (pts.min(0) - pts.mean(0)) * scale, (pts.max(0) - pts.mean(0)) * scale
    want = np.array([rng.uniform(0.35, 0.58) * (w - 1), rng.uniform(0.42, 0.58) * (h - 1)])
    margin = np.array([0.1 * w, 0.07 * h])
    anchor = np.clip(want, margin - lo, np.array([w - 1, h - 1]) - margin - hi)
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


def generate_study(rng: np.random.Generator, names: tuple[str, ...] = config.LANDMARKS) -> SynthStudy:
    """One synthetic study (all its images in memory) drawn from `rng`."""
    names = tuple(names)
    _check_names(names)
    p = phantom.sample_patient(rng)
    mid = phantom_spine.build_sagittal(p, 0.0)
    h, w, spacing, affine = _grid(rng, np.array([mid.points[n] for n in names]))
    to_px = lambda q: q @ affine[:, :2].T + affine[:, 2]  # noqa: E731
    landmarks = np.round(to_px(np.array([mid.points[n] for n in names])), 2)
    dark = rng.random() < 0.18
    look_t2, look_t1 = mri.sample_look(rng, dark), mri.sample_look(rng, dark and rng.random() < 0.5)
    t2, t1 = mri.tissue_values(rng, 0), mri.tissue_values(rng, 1)
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
        pix = mri.acquire(mri.render(anatomy, t2, affine, (h, w), spacing, rng), look_t2, rng)
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
    pix = mri.acquire(mri.render(phantom.build_axial(p), t2, aff_a, (ha, ha), (spa, spa), rng), look_t2, rng)
    z = table[1] + h * spacing[1] / 2 - to_px(mid.points["L4-L5"][None])[0, 1] * spacing[1]
    images.append(SynthImage("t2ax", 0, pix, (spa, spa), descr["t2ax"], (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                             (round(-centre[0] * spa, 4), round(table[0] - centre[1] * spa, 4), round(float(z), 4)),
                             te2, tr2, look_t2.rescale))
    tags = _tags(p)
    extra = {n: (np.round(to_px(v[None])[0], 2), tags[n]) for n, v in mid.points.items() if n not in names}
    return SynthStudy(image=images[1].pixels, landmarks=landmarks, spacing=spacing, names=names,
                      tags=tuple(tags[n] for n in names), extra=extra, images=images, annotated=1)


def _uid(seed: int, study: int, *parts: object) -> str:
    return generate_uid(entropy_srcs=["lmfusion-synth", str(seed), str(study), *map(str, parts)])


def _annotation(study: SynthStudy, rng: np.random.Generator, study_uid: str, series_uid: str,
                instance_uid: str) -> dict:
    """The challenge's annotation record, with its quirks: shuffled points, an extra T11-T12, multi-value tags."""
    points = [(n, xy, t) for n, xy, t in zip(study.names, study.landmarks, study.tags)]
    if "T11-T12" in study.extra and rng.random() < 0.06:
        points.append(("T11-T12", *study.extra["T11-T12"]))
    if rng.random() < 0.06:
        discs = [i for i, (n, _, _) in enumerate(points) if "-" in n]
        if discs:
            i = discs[int(rng.integers(len(discs)))]
            points[i] = (points[i][0], points[i][1], points[i][2] + ",v5")
    order = rng.permutation(len(points))
    items = []
    for i in order:
        name, xy, tag = points[i]
        kind = "disc" if "-" in name else "vertebra"
        items.append({"coord": [float(xy[0]), float(xy[1])], "tag": {"identification": name, kind: tag},
                      "zIndex": study.images[study.annotated].index})
    return {"studyUid": study_uid, "version": "v0.1",
            "data": [{"seriesUid": series_uid, "instanceUid": instance_uid,
                      "annotation": [{"annotator": 54, "data": {"point": items}}]}]}


def _write_study(folder: Path, study: SynthStudy, rng: np.random.Generator, seed: int, index: int) -> dict:
    """Write the study's DICOM files (shuffled image numbers, like the challenge) and return its annotation."""
    study_uid = _uid(seed, index, "study")
    numbers = rng.permutation(len(study.images)) + 1
    series_numbers = {"t2sag": 2, "t1sag": 1, "t2ax": 3}
    for im, number in zip(study.images, numbers):
        write_dicom(folder / f"image{number}.dcm", im.pixels, spacing=im.spacing, study_uid=study_uid,
                    series_uid=_uid(seed, index, im.series), instance_uid=_uid(seed, index, im.series, im.index),
                    series_description=im.description, series_number=series_numbers[im.series],
                    instance_number=im.index + 1, orientation=im.orientation, position=im.position,
                    echo_time=im.echo_time, repetition_time=im.repetition_time, rescale=im.rescale,
                    patient_id=f"synth{index:04d}")
    ann = study.images[study.annotated]
    return _annotation(study, rng, study_uid, _uid(seed, index, ann.series), _uid(seed, index, ann.series, ann.index))


def write_dataset(out: Path, n: int, seed: int, names: tuple[str, ...] = config.LANDMARKS) -> dict:
    """Write `n` synthetic studies in the challenge's layout under `out` (which must not exist or be empty).

    Study i is drawn from `np.random.default_rng([seed, i])`, so it does not depend on `n`. Returns a summary.
    """
    out = Path(out)
    names = tuple(names)
    if n < 1:
        raise ParamError(f"synth n: must be >= 1, got {n}")
    _check_names(names)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not an empty folder (nothing is overwritten)")
    records: dict[str, list[dict]] = {name: [] for name, _ in SPLITS}
    images = 0
    with atomic_path(out, is_dir=True) as tmp:
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            study = generate_study(rng, names)
            split = SPLITS[0][0] if i < SPLITS[0][1] else SPLITS[1][0]
            records[split].append(_write_study(tmp / split / f"study{i}", study, rng, seed, i))
            images += len(study.images)
        for split, recs in records.items():
            if recs:
                write_json(tmp / f"{split}_annotation.json", recs)
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    return {"studies": n, "images": images, "bytes": size, **{k: len(v) for k, v in records.items()}}


def montage_image(out: Path, count: int = 16, names: tuple[str, ...] = config.LANDMARKS) -> np.ndarray:
    """A BGR montage of the first `count` annotated slices with their landmarks, read back from the dataset."""
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
                xy = np.array([pts.get(n, (np.nan, np.nan)) for n in names], dtype=np.float64)
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
