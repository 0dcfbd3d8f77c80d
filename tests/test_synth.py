"""The synthetic dataset: determinism, geometry ranges, the challenge's layout and annotation schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from lmfusion.anatomy import TURN_POINTS, lumbosacral_turn_deg
from lmfusion.config import LANDMARKS
from lmfusion import synth
from lmfusion.synth import junction, mri, phantom
from lmfusion.synth.common import HARD_CASES
from lmfusion.synth import spine as phantom_spine
from lmfusion.data.dicom import read_dicom, read_header
from lmfusion.data.readers.tianchi import synthetic_summary
from lmfusion.data.series import choose_series, read_folder
from lmfusion.errors import DataError, ParamError
from lmfusion.figures.synth import challenge_montage

SEED, N = 3, 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    summary = synth.write_dataset(out, n=N, seed=SEED)
    assert summary["studies"] == N and summary["images"] == 5 * N and summary["lumbar_train150"] == N
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def _records(root: Path) -> list[dict]:
    return json.loads((root / "lumbar_train150_annotation.json").read_text())


def test_same_seed_same_bytes_other_seed_differs(dataset: Path, tmp_path: Path) -> None:
    synth.write_dataset(tmp_path / "again", n=N, seed=SEED)
    a, b = _files(dataset), _files(tmp_path / "again")
    assert a.keys() == b.keys() and len(a) == 5 * N + 2  # the images, the annotation and synthetic.json
    assert all(a[k] == b[k] for k in a)
    synth.write_dataset(tmp_path / "spawned", n=N, seed=SEED, workers=2)  # drawn in two processes: the same bytes
    assert _files(tmp_path / "spawned") == a
    synth.write_dataset(tmp_path / "other", n=1, seed=SEED + 1)
    c = _files(tmp_path / "other")
    assert c["lumbar_train150_annotation.json"] != a["lumbar_train150_annotation.json"]
    assert not set(c.values()) & set(a.values())


def test_studies_do_not_depend_on_n() -> None:
    one = synth.generate_study(np.random.default_rng([SEED, 2]))
    again = synth.generate_study(np.random.default_rng([SEED, 2]))
    np.testing.assert_array_equal(one.image, again.image)
    np.testing.assert_array_equal(one.landmarks, again.landmarks)


def test_geometry_ranges_and_landmark_order() -> None:
    for i in range(20):
        st = synth.generate_study(np.random.default_rng([11, i]))
        h, w = st.image.shape
        assert st.image.dtype == np.uint16 and st.landmarks.shape == (len(LANDMARKS), 2)
        assert 256 <= h <= 768 and 256 <= w <= 768, (i, h, w)
        assert all(0.5 <= s <= 1.1 for s in st.spacing), (i, st.spacing)
        xy = st.landmarks
        assert np.all(xy >= 0) and np.all(xy[:, 0] <= w - 1) and np.all(xy[:, 1] <= h - 1), i
        assert np.all(np.diff(xy[:, 1]) > 0), f"study {i}: landmarks not top to bottom"
        np.testing.assert_array_equal(xy, np.round(xy, 2))
        # neighbouring landmarks lie a plausible distance apart (half a body + half a disc)
        gaps = np.linalg.norm(np.diff(xy, axis=0) * st.spacing, axis=1)
        assert np.all((gaps > 5) & (gaps < 30)), (i, gaps)


def test_annotated_instance_matches_the_files(dataset: Path) -> None:
    for i, rec in enumerate(_records(dataset)):
        st = synth.generate_study(np.random.default_rng([SEED, i]))
        folder = dataset / "lumbar_train150" / f"study{i}"
        headers = {str(read_header(f).SOPInstanceUID): f for f in folder.glob("*.dcm")}
        assert len(headers) == 5
        item = rec["data"][0]
        path = headers[item["instanceUid"]]
        ds = read_header(path)
        assert str(ds.SeriesInstanceUID) == item["seriesUid"] and str(ds.StudyInstanceUID) == rec["studyUid"]
        assert [float(v) for v in ds.PixelSpacing] == [st.spacing[1], st.spacing[0]]
        img = read_dicom(path)
        np.testing.assert_allclose(img.pixels, st.image * float(ds.RescaleSlope), rtol=1e-6)
        # the reader's own choice of slice is the annotated one
        series, _ = choose_series(read_folder(folder), folder)
        assert series.instances[series.middle].path == path
        coords = {p["tag"]["identification"]: p["coord"] for p in item["annotation"][0]["data"]["point"]}
        np.testing.assert_array_equal(np.array([coords[n] for n in LANDMARKS]), st.landmarks)


def test_annotation_schema(dataset: Path) -> None:
    records = _records(dataset)
    assert len(records) == N
    tag = re.compile(r"^v[1-5](,v[1-5])*$")
    for rec in records:
        assert set(rec) == {"studyUid", "version", "data"} and rec["version"] == "v0.1"
        (item,) = rec["data"]
        assert set(item) == {"seriesUid", "instanceUid", "annotation"}
        (ann,) = item["annotation"]
        assert ann["annotator"] == 54
        names = []
        for p in ann["data"]["point"]:
            assert len(p["coord"]) == 2 and all(isinstance(c, float) for c in p["coord"])
            assert p["zIndex"] == 1
            name = p["tag"]["identification"]
            kind = "disc" if "-" in name else "vertebra"
            assert set(p["tag"]) == {"identification", kind} and tag.match(p["tag"][kind])
            names.append(name)
        assert sorted(set(names) - {"T11-T12"}) == sorted(LANDMARKS) and len(names) == len(set(names))


def test_series_in_a_study(dataset: Path) -> None:
    folder = dataset / "lumbar_train150" / "study0"
    found = sorted((str(h.SeriesDescription), tuple(float(v) for v in h.ImageOrientationPatient), float(h.EchoTime))
                   for h in map(read_header, folder.glob("*.dcm")))
    sag_t2 = [f for f in found if f[1] == (0, 1, 0, 0, 0, -1) and f[2] > 60]
    sag_t1 = [f for f in found if f[1] == (0, 1, 0, 0, 0, -1) and f[2] < 30]
    axial = [f for f in found if f[1] == (1, 0, 0, 0, 1, 0)]
    assert len(sag_t2) == 3 and len(sag_t1) == 1 and len(axial) == 1
    assert "t2" in sag_t2[0][0].lower() and "t1" in sag_t1[0][0].lower()


def test_other_names_and_bad_input(tmp_path: Path) -> None:
    st = synth.generate_study(np.random.default_rng([0, 0]), names=("T11", "T11-T12", "L5-S1"))
    assert st.landmarks.shape == (3, 2) and np.all(np.diff(st.landmarks[:, 1]) > 0)
    with pytest.raises(ParamError, match="unknown name 'S9'"):
        synth.generate_study(np.random.default_rng(0), names=("L1", "S9"))
    with pytest.raises(ParamError, match="n"):
        synth.write_dataset(tmp_path / "none", n=0, seed=0)
    with pytest.raises(ParamError, match="workers"):
        synth.write_dataset(tmp_path / "none", n=1, seed=0, workers=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not an empty folder"):
        synth.write_dataset(tmp_path / "full", n=1, seed=0)
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"


def test_centroid_of_a_polygon() -> None:
    square = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]])
    np.testing.assert_allclose(phantom.centroid(square), [2.0, 1.0])
    np.testing.assert_allclose(phantom.centroid(square[::-1] + 1.5), [3.5, 2.5])


def test_montage_reads_back(dataset: Path) -> None:
    image = challenge_montage(dataset, count=4)
    assert image.dtype == np.uint8 and image.shape == (640, 640, 3)
    assert image[:320, :320].mean() > 5  # a drawn tile, not an empty canvas


def test_landmarks_are_centroids_of_the_drawn_shapes() -> None:
    p = phantom.sample_patient(np.random.default_rng([SEED, 5]))
    anatomy = phantom_spine.build_sagittal(p)
    scale = np.eye(2) / 0.7
    affine = np.column_stack([scale, 250.0 - scale @ anatomy.points["L3"]])  # (2, 3) mm -> px, L3 in the middle
    yy, xx = np.mgrid[:500, :500]
    for name in LANDMARKS:
        (poly,) = [q for s in anatomy.shapes if s.exact for q in s.polys
                   if np.allclose(phantom.centroid(q), anatomy.points[name], atol=1e-9)]
        alone = phantom.Anatomy([phantom.Shape("air", [poly], exact=True)], {})
        cover = mri.render(alone, {"air": 1.0}, affine, (500, 500), (0.7, 0.7), np.random.default_rng(0))
        drawn = np.array([(cover * xx).sum(), (cover * yy).sum()]) / cover.sum()
        truth = anatomy.points[name] @ affine[:, :2].T + affine[:, 2]
        assert np.abs(drawn - truth).max() < 0.1, (name, drawn - truth)


def _turns(n: int, lordosis: float = phantom.LORDOSIS_MEDIAN) -> np.ndarray:
    turns = []
    for i in range(n):
        pts = phantom_spine.build_sagittal(phantom.sample_patient(np.random.default_rng([3, i]), lordosis)).points
        turns.append(lumbosacral_turn_deg(np.array([[pts[k] for k in TURN_POINTS]]), np.ones((1, 2)), TURN_POINTS)[0])
    return np.array(turns)


def test_lumbosacral_junctions_as_varied_as_real_ones() -> None:
    turns = _turns(300)
    # about 0 to 75 degrees; close to half of them steeper than 32 (45 % of real training studies are)
    assert turns.min() < 5 and 60 < turns.max() <= 80, (turns.min(), turns.max())
    assert 0.35 < (turns > 32).mean() < 0.55
    assert np.median(_turns(60, lordosis=2.0)) > np.median(turns) + 10  # the target style is steeper


def test_transitional_vertebrae() -> None:
    patients = [phantom.sample_patient(np.random.default_rng([4, i])) for i in range(300)]
    kinds = [p.extras["transitional"] for p in patients]
    assert 0.03 < kinds.count("sacralised") / 300 < 0.12 and 0.01 < kinds.count("lumbarised") / 300 < 0.08
    sac = [p for p in patients if p.extras["transitional"] == "sacralised"]
    normal = [p for p in patients if not p.extras["transitional"]]
    # a sacralised L5 sits on a small, dark L5-S1 disc
    assert np.mean([p.disc_height[-1] for p in sac]) < 0.6 * np.mean([p.disc_height[-1] for p in normal])
    assert all(p.degeneration[-1] >= 0.8 for p in sac)
    # a lumbarised S1 has a disc below it: one more disc-shaped (annulus) polygon than a normal spine
    lum = next(p for p in patients if p.extras["transitional"] == "lumbarised")
    count = lambda p: sum(len(s.polys) for s in phantom_spine.build_sagittal(p).shapes  # noqa: E731
                          if s.tissue == "annulus" and not s.width)
    assert count(lum) == count(normal[0]) + 1


def test_hard_cases_and_styles(tmp_path: Path) -> None:
    summary = synth.write_dataset(tmp_path / "t", n=3, seed=0, style="target")
    assert summary["cases"]["STIR-like"] == 3 and summary["largest_matrix"] >= 256
    assert set(summary["cases"]) == set(HARD_CASES)
    assert synthetic_summary(tmp_path / "t")["cases"] == summary["cases"]  # written beside the data, for prepare
    assert synthetic_summary(tmp_path) is None
    with pytest.raises(ParamError, match="unknown style 'stir'"):
        synth.generate_study(np.random.default_rng(0), style="stir")
    seen = {c for i in range(40) for c in synth.generate_study(np.random.default_rng([0, i])).cases}
    assert {"view to T8", "sacrum cut", "steep junction", "STIR-like", "wrap-around"} <= seen, seen


def test_wrap_around_folds_the_overhang_onto_the_far_side() -> None:
    wide = np.zeros((2, 10), np.float32)
    wide[:, 0], wide[:, -1], wide[:, 5] = 1.0, 2.0, 3.0
    folded = mri.fold(wide, 2)
    assert folded.shape == (2, 6)
    np.testing.assert_array_equal(folded[0], [0, 2.0, 0, 3.0, 1.0, 0])
    assert mri.fold(wide, 0) is wide


def test_the_clinical_junction_is_drawn_as_often_as_clinical_scans_show_it() -> None:
    patients = [phantom.sample_patient(np.random.default_rng([7, i]), clinical=True) for i in range(400)]
    share = lambda f: np.mean([f(p) for p in patients])  # noqa: E731
    assert 0.45 < share(lambda p: p.degeneration[-1] >= 0.35) < 0.75  # a worn L5-S1
    assert 0.05 < share(lambda p: p.degeneration[-1] >= 1.0) < 0.2  # collapsed to a thin line
    assert 0.45 < share(lambda p: p.extras["remnants"][0, 0] > 0) < 0.65  # an S1-S2 remnant
    assert 0.05 < share(lambda p: p.extras["listhesis"] is not None) < 0.15
    assert share(lambda p: bool(p.extras["modic"])) > 0.1 and share(lambda p: bool(p.extras["schmorl"])) > 0.1


def test_the_clinical_sacrum_is_one_fused_bone_with_thin_remnants_in_their_own_tissue() -> None:
    p = next(q for q in (phantom.sample_patient(np.random.default_rng([7, i]), clinical=True) for i in range(50))
             if q.extras["remnants"][0, 0] > 0 and q.extras["transitional"] == "")
    shapes = phantom_spine.build_sagittal(p).shapes
    segments = [s for s in shapes if s.exact and s.tissue == "cortex"][len(phantom.LEVELS):]
    assert [s.alpha for s in segments] == [0.0] * 5 + [1.0] * 3  # S1..S5 only geometry, the coccyx drawn
    inside = lambda poly, q: cv2.pointPolygonTest(poly.astype(np.float32), tuple(map(float, q)), False) > 0  # noqa
    ends = [phantom.centroid(segments[0].polys[0]), phantom.centroid(segments[4].polys[0])]
    fused = [s for s in shapes if s.tissue == "cortex" and not s.exact and all(inside(s.polys[0], q) for q in ends)]
    assert len(fused) == 1  # one outline around S1..S5
    remnants = [s for s in shapes if s.tissue == "remnant"]
    assert remnants and all(s.width < 2.0 for s in remnants)  # thin lines, never a disc
    assert not [s for s in shapes if s.tissue == "annulus" and s.width]  # no disc-tissue lines in the sacrum
    assert "remnant" not in mri.TISSUES  # its own tissue and values, drawn after the default style's
    default = phantom_spine.build_sagittal(phantom.sample_patient(np.random.default_rng([7, 0]))).shapes
    assert all(s.alpha == 1.0 for s in default if s.exact)  # the other styles keep their segmented sacrum
    study = synth.generate_study(np.random.default_rng([7, 1]), style="clinical")
    assert set(study.cases) <= set(HARD_CASES + junction.CASES)
