"""The RSNA 2024 lumbar spine layout for synthetic studies: two CSVs and one DICOM folder per series.

    train_series_descriptions.csv, train_label_coordinates.csv, train_images/<study_id>/<series_id>/<n>.dcm

Each study of `styles.generate_study` gives a Sagittal T2/STIR series (its 3 slices), a Sagittal T1 and an Axial T2
series. The labels are the five discs as `Spinal Canal Stenosis` rows on the annotated (middle) T2 slice, with the
RSNA data's quirks: instance numbers that do not follow the slice order, and in some studies one level labelled on
a neighbouring slice (at its in-plane position). Neural foraminal rows on the T1 and subarticular rows on the axial
slice make the reader pick the right rows. Study i is drawn from `np.random.default_rng([seed, i])`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.uid import generate_uid

from lmfusion import config
from lmfusion.data.dicom import write_dicom
from lmfusion.data.readers.rsna2024 import CONDITION, DESCRIPTIONS, DISCS, IMAGES, LABELS, LEVELS, SERIES
from lmfusion.synth.common import SynthStudy
from lmfusion.synth.styles import generate_study
from lmfusion.errors import DataError, ParamError
from lmfusion.io import atomic_path

_DESCRIPTION = {"t2sag": SERIES, "t1sag": "Sagittal T1", "t2ax": "Axial T2"}
_NUMBER = {"t2sag": 2, "t1sag": 1, "t2ax": 3}
OFF_INSTANCE_RATE = 0.25  # studies with one level labelled on a neighbouring slice


def _ids(seed: int, index: int) -> tuple[int, dict[str, int]]:
    """A study id unique per index and series ids unique within the study, numeric like the RSNA data's."""
    h = int(hashlib.sha256(f"lmfusion-rsna-{seed}-{index}".encode()).hexdigest(), 16)
    study_id = (index + 1) * 100_000 + h % 100_000
    base = 100_000_000 + (h // 100_000) % 800_000_000
    return study_id, {s: base - base % 3 + k for k, s in enumerate(_DESCRIPTION)}


def _instances(study: SynthStudy, rng: np.random.Generator) -> list[int]:
    """Instance number per image: the T2 slices in a shuffled or reversed order (numbering need not follow the
    slice position), the one-slice series numbered 1."""
    t2 = [i for i, im in enumerate(study.images) if im.series == "t2sag"]
    order = rng.permutation(len(t2)) if rng.random() < 0.5 else np.arange(len(t2))[::-1]
    numbers = [1] * len(study.images)
    for i, n in zip(t2, order):
        numbers[i] = int(n) + 1
    return numbers


def _label_rows(study: SynthStudy, rng: np.random.Generator, numbers: list[int], study_id: int,
                series_ids: dict[str, int]) -> list[dict]:
    """The study's rows of train_label_coordinates.csv."""
    xy = {n: p for n, p in zip(study.names, study.landmarks)}
    t2 = [i for i, im in enumerate(study.images) if im.series == "t2sag"]
    on = {level: numbers[study.annotated] for level in LEVELS}
    if rng.random() < OFF_INSTANCE_RATE:  # one level on a neighbouring slice, at its in-plane position
        level = list(LEVELS)[int(rng.integers(len(LEVELS)))]
        pos = t2.index(study.annotated) + (1 if rng.random() < 0.5 else -1)
        on[level] = numbers[t2[int(np.clip(pos, 0, len(t2) - 1))]]
    rows = [{"series_id": series_ids["t2sag"], "instance_number": on[lv], "condition": CONDITION, "level": lv,
             "x": xy[name][0], "y": xy[name][1]} for lv, name in LEVELS.items()]
    t1 = next(im for im in study.images if im.series == "t1sag")
    scale = np.array(study.spacing) / np.array(t1.spacing)  # the T1 covers the same field of view
    for side in ("Left", "Right"):
        for lv, name in LEVELS.items():
            p = np.round((xy[name] + 0.5) * scale - 0.5 + [rng.normal(8, 2), rng.normal(0, 2)], 2)
            rows.append({"series_id": series_ids["t1sag"], "instance_number": 1,
                         "condition": f"{side} Neural Foraminal Narrowing", "level": lv, "x": p[0], "y": p[1]})
    ax = next(im for im in study.images if im.series == "t2ax")
    for side, dx in (("Left", 1), ("Right", -1)):
        p = np.round([ax.pixels.shape[1] / 2 + dx * rng.uniform(10, 20), ax.pixels.shape[0] * rng.uniform(0.4, 0.5)],
                     2)
        rows.append({"series_id": series_ids["t2ax"], "instance_number": 1,
                     "condition": f"{side} Subarticular Stenosis", "level": "L4/L5", "x": p[0], "y": p[1]})
    return [{"study_id": study_id, **r} for r in rows]


def _write_study(images: Path, study: SynthStudy, rng: np.random.Generator, seed: int, index: int,
                 ) -> tuple[list[dict], list[dict]]:
    """Write the study's DICOM files; return its description rows and label rows."""
    study_id, series_ids = _ids(seed, index)
    numbers = _instances(study, rng)
    def uid(*parts: object) -> str:
        return generate_uid(entropy_srcs=["lmfusion-rsna", str(seed), str(index), *map(str, parts)])

    for im, number in zip(study.images, numbers):
        write_dicom(images / str(study_id) / str(series_ids[im.series]) / f"{number}.dcm", im.pixels,
                    spacing=im.spacing, study_uid=uid("study"), series_uid=uid(im.series),
                    instance_uid=uid(im.series, im.index), series_description=_DESCRIPTION[im.series],
                    series_number=_NUMBER[im.series], instance_number=number, orientation=im.orientation,
                    position=im.position, echo_time=im.echo_time, repetition_time=im.repetition_time,
                    rescale=im.rescale, patient_id=str(study_id))
    described = [{"study_id": study_id, "series_id": series_ids[s], "series_description": d}
                 for s, d in _DESCRIPTION.items()]
    return described, _label_rows(study, rng, numbers, study_id, series_ids)


def write_rsna_dataset(out: Path, n: int, seed: int) -> dict:
    """Write `n` synthetic studies in the RSNA 2024 layout under `out` (which must not exist or be empty).

    Study i is drawn from `np.random.default_rng([seed, i])`, so it does not depend on `n`. Returns a summary.
    """
    out = Path(out)
    if n < 1:
        raise ParamError(f"synth n: must be >= 1, got {n}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not an empty folder (nothing is overwritten)")
    described, labelled = [], []
    images = 0
    with atomic_path(out, is_dir=True) as tmp:
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            study = generate_study(rng, config.LANDMARKS)
            keep = [study.names.index(d) for d in DISCS]
            study.names, study.landmarks = DISCS, study.landmarks[keep]
            study.tags = tuple(study.tags[k] for k in keep)
            d, lab = _write_study(tmp / IMAGES, study, rng, seed, i)
            described += d
            labelled += lab
            images += len(study.images)
        pd.DataFrame(described).to_csv(tmp / DESCRIPTIONS, index=False, lineterminator="\n")
        pd.DataFrame(labelled).to_csv(tmp / LABELS, index=False, lineterminator="\n")
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    return {"studies": n, "images": images, "bytes": size, "series": len(described), "labels": len(labelled)}
