"""Sagittal series with the spine's mid-plane off their middle (`lmfusion synth --sagittal-slices/--off-centre`): the
recorded truth, the anatomy off the midline, and patient coordinates read back from the written DICOM files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmfusion import config
from lmfusion.cli.main import main as cli_main
from lmfusion.data.dicom import read_header
from lmfusion.data.patient import slice_geometry
from lmfusion.errors import ParamError
from lmfusion.synth import phantom, spine
from lmfusion.synth.common import SeriesLayout
from lmfusion.synth.styles import generate_study
from lmfusion.synth.tianchi import SERIES_TRUTH, write_dataset

LAYOUT = SeriesLayout(slices=9, off_centre=0.34)


def _sagittal(study, series: str = "t2sag"):
    return [im for im in study.images if im.series == series]


def test_the_mid_plane_is_recorded_and_the_slices_step_along_the_normal() -> None:
    offsets = set()
    for i in range(6):
        study = generate_study(np.random.default_rng([3, i]), layout=LAYOUT)
        truth = study.series
        offsets.add(truth.mid_plane - truth.middle)
        for series in ("t2sag", "t1sag"):
            images = _sagittal(study, series)
            assert [im.index for im in images] == list(range(LAYOUT.slices))
            x = np.array([im.position[0] for im in images])
            np.testing.assert_allclose(np.diff(x), -truth.gap_mm)  # instance order runs along the normal (-x)
            assert x[truth.mid_plane] == pytest.approx(truth.landmarks_lps[0, 0])  # the mid-plane's slice
        assert study.annotated == truth.mid_plane and study.image is study.images[truth.mid_plane].pixels
    assert offsets <= set(range(-3, 4)) and len(offsets) > 1  # up to 0.34 of 9 slices either way, drawn per study


def test_the_default_layout_draws_nothing_more() -> None:
    study = generate_study(np.random.default_rng([0, 0]))
    assert study.series is None and len(_sagittal(study)) == 3 and len(_sagittal(study, "t1sag")) == 1
    with pytest.raises(ParamError, match="off-centre"):
        SeriesLayout(15, 0.6)
    with pytest.raises(ParamError, match="randomized"):
        generate_study(np.random.default_rng(0), style="randomized", layout=LAYOUT)


def test_no_disc_beyond_the_column_and_pedicles_only_off_the_midline() -> None:
    p = phantom.sample_patient(np.random.default_rng(5), phantom.LORDOSIS_MEDIAN)
    depth = float(np.mean(p.depth[phantom.LEVELS.index("L1"):]))

    def drawn(lateral: float, tissue: str, exact: bool = False) -> int:  # exact: the landmarks' own shapes
        return sum(len(s.polys) for s in spine.build_sagittal(p, lateral).shapes
                   if s.tissue == tissue and s.alpha > 0 and s.exact >= exact)

    assert drawn(0.0, "nucleus") == len(phantom.DISCS) and drawn(0.0, "csf") == 1
    assert drawn(0.45 * depth, "nucleus") == len(phantom.DISCS) and drawn(0.45 * depth, "csf") == 0
    assert drawn(0.75 * depth, "nucleus") == 0 and drawn(0.75 * depth, "annulus", exact=True) == 0
    # no vertebral body either; the sacrum's alae reach further out
    assert drawn(0.0, "cortex", exact=True) - drawn(0.75 * depth, "cortex", exact=True) == len(phantom.LEVELS)
    # the pedicles: a bony oval per body, off the midline only
    assert drawn(0.45 * depth, "cortex") - drawn(0.0, "cortex") >= len(phantom.LEVELS) - 1


def test_patient_coordinates_of_the_written_slices_agree_with_the_generator(tmp_path) -> None:
    out = tmp_path / "data"
    write_dataset(out, n=3, seed=4, layout=LAYOUT)
    truth = json.loads((out / SERIES_TRUTH).read_text())
    records = json.loads((out / "lumbar_train150_annotation.json").read_text())
    assert sorted(truth) == [f"lumbar_train150/study{i}" for i in range(3)]
    for i, record in enumerate(records):
        where = truth[f"lumbar_train150/study{i}"]
        assert where["mid_plane_instance"] - where["middle_instance"] == where["offset_slices"]
        uid = record["data"][0]["instanceUid"]
        files = {read_header(f).SOPInstanceUID: f for f in (out / f"lumbar_train150/study{i}").glob("*.dcm")}
        header = read_header(files[uid])
        assert int(header.InstanceNumber) == where["mid_plane_instance"]
        points = record["data"][0]["annotation"][0]["data"]["point"]
        xy = np.array([p["coord"] for p in points])
        names = [p["tag"]["identification"] for p in points]
        lps = slice_geometry(header, files[uid]).to_lps(xy)
        expected = np.array([where["landmarks_lps_mm"][n] for n in names if n in config.LANDMARKS])
        got = np.array([q for q, n in zip(lps, names) if n in config.LANDMARKS])
        assert np.abs(got - expected).max() < 0.5  # mm; the annotation's 2-decimal rounding is all that differs


def test_the_rsna_layout_refuses_a_series_layout(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        cli_main(["synth", "--out", str(tmp_path / "r"), "--n", "1", "--format", "rsna2024", "--sagittal-slices", "9"])
    assert e.value.code != 0
    assert "--sagittal-slices" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
