"""Slice pixels to patient coordinates (lmfusion.data.patient) on hand-made sagittal geometries."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from lmfusion.data.patient import SliceGeometry, pixel_to_lps, slice_geometry
from lmfusion.errors import DataError

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # columns run posterior (+y), rows run inferior (-z)
IPP = (12.5, -100.0, 80.0)


def _header(**drop: bool) -> Dataset:
    ds = Dataset()
    ds.ImagePositionPatient = list(IPP)
    ds.ImageOrientationPatient = list(SAGITTAL)
    ds.PixelSpacing = [0.8, 0.5]  # (row spacing = y, column spacing = x)
    ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID = "1.2.3.4", "1.2.3", "1.2"
    ds.InstanceNumber = 7
    for tag in drop:
        delattr(ds, tag)
    return ds


def test_first_pixel_is_the_image_position() -> None:
    np.testing.assert_allclose(pixel_to_lps(np.zeros((1, 2)), IPP, SAGITTAL, (0.5, 0.8)), [IPP])


def test_known_pixels_on_a_sagittal_slice_with_anisotropic_spacing() -> None:
    xy = np.array([[10.0, 0.0], [0.0, 10.0], [4.0, 25.5]])
    lps = pixel_to_lps(xy, IPP, SAGITTAL, (0.5, 0.8))  # x: 0.5 mm per column, y: 0.8 mm per row
    np.testing.assert_allclose(lps, [[12.5, -95.0, 80.0],  # 10 columns: 5 mm posterior
                                     [12.5, -100.0, 72.0],  # 10 rows: 8 mm inferior
                                     [12.5, -98.0, 59.6]])


def test_oblique_orientation_keeps_distances_in_mm() -> None:
    a = np.deg2rad(10)
    iop = (0.0, np.cos(a), np.sin(a), 0.0, np.sin(a), -np.cos(a))
    lps = pixel_to_lps(np.array([[0.0, 0.0], [3.0, 4.0]]), IPP, iop, (2.0, 1.0))
    assert np.linalg.norm(lps[1] - lps[0]) == pytest.approx(np.hypot(3 * 2.0, 4 * 1.0))
    assert np.all(lps[:, 0] == IPP[0])  # a sagittal plane stays at its x


def test_slice_geometry_reads_the_header() -> None:
    g = slice_geometry(_header(), "s.dcm")
    assert g.spacing == (0.5, 0.8) and g.position == IPP and g.orientation == SAGITTAL
    assert (g.sop_instance_uid, g.series_instance_uid, g.study_instance_uid, g.instance_number) == (
        "1.2.3.4", "1.2.3", "1.2", 7)
    np.testing.assert_allclose(g.to_lps(np.array([[10.0, 10.0]])), [[12.5, -95.0, 72.0]])
    assert g.to_dict()["coordinate_system"] == "LPS" and g.to_dict()["instance_number"] == 7
    assert isinstance(g, SliceGeometry)


@pytest.mark.parametrize("tag, code", [("ImagePositionPatient", "(0020,0032)"),
                                       ("ImageOrientationPatient", "(0020,0037)"), ("PixelSpacing", "(0028,0030)")])
def test_a_missing_tag_is_a_one_line_error_naming_file_and_tag(tag: str, code: str) -> None:
    with pytest.raises(DataError) as e:
        slice_geometry(_header(**{tag: True}), "study/3.dcm")
    assert str(e.value).startswith("study/3.dcm: no ") and tag in str(e.value) and code in str(e.value)
    assert "\n" not in str(e.value)


def test_malformed_values_are_refused() -> None:
    ds = _header()
    ds.PixelSpacing = [0.8]
    with pytest.raises(DataError, match="PixelSpacing .* 2 finite numbers"):
        slice_geometry(ds, "a.dcm")
    ds = _header()
    ds.ImageOrientationPatient = [0, 2, 0, 0, 0, -1]
    with pytest.raises(DataError, match="not two unit vectors"):
        slice_geometry(ds, "a.dcm")
