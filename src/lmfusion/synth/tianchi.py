"""The challenge's layout for synthetic studies: DICOM files per study, one annotation JSON per split (the montage
read back from a written dataset is lmfusion.figures.synth). Study i is drawn from `np.random.default_rng([seed, i])`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from lmfusion import config
from lmfusion.data.dicom import write_dicom
from lmfusion.data.readers.tianchi import SYNTHETIC
from lmfusion.synth.parallel import map_ordered
from lmfusion.synth.common import SeriesLayout, SynthStudy, check_names
from lmfusion.synth.styles import check_layout, generate_study, style_cases
from lmfusion.errors import DataError, ParamError
from lmfusion.io import atomic_path, write_json

SPLITS = (("lumbar_train150", 150), ("lumbar_train51", None))
SERIES_TRUTH = "series_truth.json"  # beside the annotations when the series layout is not the default


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


def _draw_and_write(job: tuple[Path, int, int, tuple[str, ...], str, SeriesLayout]
                    ) -> tuple[str, dict, int, int, list[str], dict | None]:
    """Study i drawn and written (in a worker process where write_dataset has several): its split, annotation,
    image count, largest side, hard cases and (a non-default layout) where its spine lies in the series."""
    tmp, seed, i, names, style, layout = job
    rng = np.random.default_rng([seed, i])
    study = generate_study(rng, names, style, layout)
    split = SPLITS[0][0] if i < SPLITS[0][1] else SPLITS[1][0]
    record = _write_study(tmp / split / f"study{i}", study, rng, seed, i)
    return split, record, len(study.images), max(study.image.shape), list(study.cases), _series_truth(study)


def _series_truth(study: SynthStudy) -> dict | None:
    """SERIES_TRUTH's record of one study: instance numbers are 1-based, offsets in slices (+: later instances)."""
    t = study.series
    if t is None:
        return None
    return {"mid_plane_instance": t.mid_plane + 1, "middle_instance": t.middle + 1,
            "offset_slices": t.mid_plane - t.middle, "gap_mm": t.gap_mm,
            "slices": sum(im.series == "t2sag" for im in study.images),
            "landmarks_lps_mm": {n: [round(float(v), 4) for v in xyz] for n, xyz in zip(study.names,
                                                                                       t.landmarks_lps)}}


def write_dataset(out: Path, n: int, seed: int, names: tuple[str, ...] = config.LANDMARKS,
                  style: str = "default", workers: int = 1, layout: SeriesLayout = SeriesLayout()) -> dict:
    """Write `n` synthetic studies in the challenge's layout under `out` (which must not exist or be empty), their
    sagittal series laid out as `layout` says (a non-default one also writes SERIES_TRUTH: per study folder, the
    slice through the spine's mid-plane and the landmarks in patient coordinates).

    Study i is drawn from `np.random.default_rng([seed, i])`, so it depends neither on `n` nor on `workers` (processes
    drawing studies at once: the files are the same bytes). Returns a summary: counts, the largest matrix and how many
    studies show each hard case (styles.style_cases).
    """
    out = Path(out)
    names = tuple(names)
    if n < 1:
        raise ParamError(f"synth n: must be >= 1, got {n}")
    if workers < 1:
        raise ParamError(f"synth workers: must be >= 1, got {workers}")
    check_names(names)
    check_layout(style, layout)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not an empty folder (nothing is overwritten)")
    records: dict[str, list[dict]] = {name: [] for name, _ in SPLITS}
    images, largest, cases = 0, 0, dict.fromkeys(style_cases(style), 0)
    with atomic_path(out, is_dir=True) as tmp:
        jobs = [(tmp, seed, i, names, style, layout) for i in range(n)]
        truth: dict[str, dict] = {}
        # in order: the annotation files keep the study order
        for i, (split, record, count, side, study_cases, where) in enumerate(map_ordered(_draw_and_write, jobs,
                                                                                          workers)):
            records[split].append(record)
            if where is not None:
                truth[f"{split}/study{i}"] = where
            images += count
            largest = max(largest, side)
            for c in study_cases:
                cases[c] += 1
        for split, recs in records.items():
            if recs:
                write_json(tmp / f"{split}_annotation.json", recs)
        write_json(tmp / SYNTHETIC, {"style": style, "seed": seed, "studies": n, "cases": cases})
        if truth:
            write_json(tmp / SERIES_TRUTH, truth)
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
    return {"studies": n, "images": images, "bytes": size, **{k: len(v) for k, v in records.items()},
            "largest_matrix": largest, "cases": cases}
