"""The spinal disease challenge's DICOM studies with annotation JSON (`data.format: tianchi`).

Layout:
    <root>/<split>/study<N>/image<M>.dcm      any number of series per study
    <root>/<split>_annotation.json            one record per study: studyUid, the annotated instanceUid and its
                                              points, each {coord: [x, y], tag: {identification: "L1", ...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any

from lmfusion.config import LANDMARKS
from lmfusion.data.dicom import read_dicom, read_header
from lmfusion.data.readers._common import Skipped, Study, Collector, Invalid, check_landmarks, progress_bar, reason
from lmfusion.errors import DataError

SYNTHETIC = "synthetic.json"  # `lmfusion synth` writes its summary here (counts per hard case), prepare reports it
# points the challenge annotates besides the configured landmarks; ignored unless base.landmarks names them
_CHALLENGE_POINTS = frozenset(LANDMARKS) | {"T11-T12"}


def _load_annotation(ann: Path) -> list[tuple[str, str | None, list[tuple[str, Any]]]]:
    """(studyUid, annotated instanceUid or None, [(identification, coord)]) per record; DataError if malformed."""
    try:
        records = json.loads(ann.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{ann}: not a readable annotation JSON ({type(e).__name__}: {e})") from None
    if not isinstance(records, list):
        raise DataError(f"{ann}: malformed annotation: expected a list of study records, got {type(records).__name__}")
    out = []
    for i, rec in enumerate(records):
        try:
            uid = rec["studyUid"]
            if not isinstance(uid, str) or not isinstance(rec["data"], list):
                raise TypeError("studyUid must be a string and data a list")
            if not rec["data"] or not rec["data"][0]["annotation"]:
                out.append((uid, None, []))  # annotated nothing: invalid study, not a malformed file
                continue
            entry = rec["data"][0]  # the challenge annotates one slice per study
            points = entry["annotation"][0]["data"]["point"]
            out.append((uid, str(entry["instanceUid"]),
                        [(str(p["tag"]["identification"]).strip(), p["coord"]) for p in points]))
        except (KeyError, TypeError, IndexError, AttributeError) as e:
            raise DataError(f"{ann}: malformed annotation in record {i} ({type(e).__name__}: {e})") from None
    return out


@dataclass
class _SplitIndex:
    """The DICOM headers of one split folder, read once."""

    instances: dict[str, Path]  # SOPInstanceUID -> file
    studies: dict[str, Path]  # StudyInstanceUID -> study folder
    unreadable: dict[Path, list[str]]  # study folder -> unreadable file names


def _index_split(split_dir: Path, progress: bool) -> _SplitIndex:
    index = _SplitIndex({}, {}, {})
    folders = sorted(p for p in split_dir.iterdir() if p.is_dir())
    for folder in progress_bar(folders, f"index {split_dir.name}", progress):
        for f in sorted(folder.rglob("*.dcm")):
            try:
                ds = read_header(f)
            except DataError:
                index.unreadable.setdefault(folder, []).append(f.relative_to(folder).as_posix())
                continue
            if "SOPInstanceUID" in ds:
                index.instances.setdefault(str(ds.SOPInstanceUID), f)
            if "StudyInstanceUID" in ds:
                index.studies.setdefault(str(ds.StudyInstanceUID), folder)
    return index


def _tianchi_study(root: Path, study: str, path: Path | None, instance: str | None, where: str,
                   unreadable: list[str], points: list[tuple[str, Any]], names: tuple[str, ...]) -> Study:
    """One record of the annotation JSON; `path` is the annotated instance's file when it was found."""
    if instance is None:
        raise Invalid("no annotated image in the record")
    if path is None:
        raise Invalid(f"annotated image (SOPInstanceUID {instance}) not found among {where}"
                       + (f"; unreadable: {', '.join(unreadable)}" if unreadable else ""))
    coords: dict[str, Any] = {}
    for ident, coord in points:
        if ident not in names:
            if ident in _CHALLENGE_POINTS:
                continue  # annotated by the challenge but not asked for (e.g. T11-T12)
            raise Invalid(f"unknown landmark {ident!r}")
        if ident in coords:
            raise Invalid(f"landmark {ident} annotated twice")
        coords[ident] = coord
    name = path.relative_to(root / study).as_posix()  # the file within its study folder, for messages
    try:
        img = read_dicom(path)
    except DataError as e:
        raise Invalid(reason(e, path, name)) from None
    if img.spacing is None:
        raise Invalid(f"{name}: no PixelSpacing (0028,0030), so distances in mm are unknown")
    h, w = img.pixels.shape
    xy = check_landmarks(coords, names, w, h)
    return Study(study=study, source=path.relative_to(root).as_posix(), pixels=img.pixels, spacing=img.spacing,
                 landmarks=xy, split=None)


def read_tianchi(root: str | os.PathLike, names: tuple[str, ...], on_invalid: str,
                 progress: bool = False) -> tuple[list[Study], list[Skipped]]:
    """Read every `<split>_annotation.json` in `root` with the DICOM studies of its `<split>/` folder."""
    root = Path(root)
    names = tuple(names)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; the challenge format is <split>/study<N>/*.dcm with "
                        "<split>_annotation.json beside each split folder")
    annotations = sorted(root.glob("*_annotation.json"))
    if not annotations:
        raise DataError(f"{root}: no *_annotation.json file (data.format is tianchi)")
    out = Collector(on_invalid)
    for ann in annotations:
        records = _load_annotation(ann)
        split_dir = root / ann.name[: -len("_annotation.json")]
        if not split_dir.is_dir():
            raise DataError(f"{ann}: its image folder {split_dir.name}/ is missing")
        index = _index_split(split_dir, progress)
        for uid, instance, points in progress_bar(records, f"read {split_dir.name}", progress):
            path = index.instances.get(instance) if instance else None
            folder = split_dir / path.relative_to(split_dir).parts[0] if path else index.studies.get(uid)
            if folder is not None:
                study, where = f"{split_dir.name}/{folder.name}", "its DICOM files"
                unreadable = index.unreadable.get(folder, [])
            else:  # no readable file of this study: name it by its studyUid, list the folders nobody claims
                study, where = f"{split_dir.name}/{uid}", f"the DICOM files in {split_dir.name}/"
                claimed = set(index.studies.values())
                unreadable = [f"{d.name}/{f}" for d, fs in index.unreadable.items() if d not in claimed for f in fs]
            try:
                out.claim(study, ann.name)
                out.studies.append(_tianchi_study(root, study, path, instance, where, unreadable, points, names))
            except Invalid as e:
                out.invalid(study, ann.name, str(e))
    return out.result()


def synthetic_summary(root: str | os.PathLike) -> dict | None:
    """The summary `lmfusion synth` wrote beside a synthetic dataset (how many studies show each hard case), or None
    for a dataset from elsewhere."""
    path = Path(root) / SYNTHETIC
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable summary JSON ({type(e).__name__}: {e})") from None
