"""The randomized synthetic style: accepted where styles are, deterministic, varied, and its landmarks are those of
the drawn (warped, mixed) anatomy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from lmfusion.cli import main as cli
from lmfusion.config import LANDMARKS, load_params
from lmfusion import synth
from lmfusion.synth import common, mri, phantom, randomize, randomize_anatomy, randomize_mri, styles
from lmfusion.synth import spine as phantom_spine
from lmfusion.errors import ParamError
from lmfusion.figures.synth import hard_case_gallery


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def test_the_style_is_accepted_by_the_cli_params_and_generator(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["synth", "--out", "x", "--style", "randomized"])
    assert args.style == "randomized"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"pretrain": {"style": "randomized"}}))
    styles.check_style(load_params(tmp_path / "params.yaml", ("pretrain",))["pretrain"].style)
    with pytest.raises(ParamError, match="^synth style: unknown style 'stir'; known: default, target, randomized, "
                                         "unseen, clinical$"):
        synth.generate_study(np.random.default_rng(0), style="stir")


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = synth.write_dataset(tmp_path / "a", n=2, seed=4, style="randomized")
    synth.write_dataset(tmp_path / "b", n=2, seed=4, style="randomized")
    assert _files(tmp_path / "a") == _files(tmp_path / "b") and a["images"] == 10
    assert set(a["cases"]) == set(styles.style_cases("randomized"))


def test_contrasts_vary_in_ordering_and_some_are_inverted() -> None:
    rng = np.random.default_rng(0)
    draws = [randomize_mri.tissue_values(rng) for _ in range(60)]
    kinds = {k for _, k in draws}
    assert kinds == set(randomize_mri.ORDERINGS)
    keys = ("marrow", "annulus", "nucleus", "csf", "fat", "muscle", "cortex", "ligament", "cord", "air")
    orders = {tuple(np.argsort([v[k] for k in keys])) for v, _ in draws}
    assert len(orders) > 40  # nearly every study ranks the tissues differently
    assert any(v["csf"] < v["marrow"] for v, _ in draws) and any(v["csf"] > v["marrow"] for v, _ in draws)
    assert all(max(abs(v["marrow"] - v["annulus"]), abs(v["marrow"] - v["nucleus"])) >= 0.12 for v, _ in draws)
    scanners = [randomize_mri.sample_scanner(rng) for _ in range(40)]
    assert len({s.gamma for s in scanners}) == 40 and {s.phase_axis for s in scanners} == {0, 1}
    assert any(s.coarse < 1 for s in scanners) and any(s.wrap > 0 for s in scanners)


def test_studies_keep_landmarks_in_the_image_and_apart() -> None:
    for i in range(3):
        st = synth.generate_study(np.random.default_rng([7, i]), style="randomized")
        h, w = st.image.shape
        xy = st.landmarks
        assert st.image.dtype == np.uint16 and xy.shape == (len(LANDMARKS), 2) and len(st.images) == 5
        assert np.all(xy >= 0) and np.all(xy[:, 0] <= w - 1) and np.all(xy[:, 1] <= h - 1), i
        np.testing.assert_array_equal(xy, np.round(xy, 2))
        gaps = np.linalg.norm(np.diff(xy, axis=0) * st.spacing, axis=1)
        assert np.all((gaps > 4) & (gaps < 35)), (i, gaps)
        assert set(st.cases) <= set(styles.style_cases("randomized"))


def _seed_with(thick: bool) -> list[int]:
    """The first study of seed 5 whose slice rolls off the midline, in a thick slab or a thin slice."""
    for i in range(40):
        slab = randomize.draw_subject(np.random.default_rng([5, i])).slab
        if slab.roll and (len(slab.sub) > 1) == thick:
            return [5, i]
    raise AssertionError("no such study among the first 40")


@pytest.mark.parametrize("thick", [True, False])
def test_landmarks_are_the_centroids_of_the_drawn_mixed_shapes(thick: bool) -> None:
    """Replay the study's first draws, paint each landmark's shape as the slice mixes it, and find its centroid."""
    seed = _seed_with(thick)
    st = synth.generate_study(np.random.default_rng(seed), style="randomized")
    rng = np.random.default_rng(seed)
    sub = randomize.draw_subject(rng)
    pts = np.array([sub.points[n] for n in LANDMARKS])
    h, w, spacing, affine = common.field_of_view(rng, pts, sub.points["T6"][1])
    assert (h, w) == st.image.shape and spacing == st.spacing
    share = sub.slab.weights((np.arange(h) - affine[1, 2]) / affine[1, 1])  # (J, H)
    polys = [randomize_anatomy.landmark_polys(s) for s in sub.scenes]
    ys, xs = np.mgrid[:h, :w]
    for k, name in enumerate(LANDMARKS):
        img = sum(wt[:, None] * mri.render(phantom.Anatomy([phantom.Shape("root", [p[name]], exact=True)], {}),
                                           {"root": 1.0}, affine, (h, w), spacing, rng)
                  for p, wt in zip(polys, share))
        found = np.array([(img * xs).sum(), (img * ys).sum()]) / img.sum()
        assert np.abs(found - st.landmarks[k]).max() < 0.1, (name, found, st.landmarks[k])


def test_the_deformation_moves_points_and_shapes_together() -> None:
    """One field moves every drawn shape; each landmark is the centroid of its moved shape."""
    rng = np.random.default_rng(3)
    p = randomize_anatomy.vary_patient(phantom.sample_patient(rng), rng)
    extras, warp = randomize_anatomy.draw_extras(rng, p), randomize_anatomy.draw_warp(rng)
    plain = phantom_spine.build_sagittal(p, 0.0)
    warped = randomize_anatomy.scene(p, 0.0, extras, warp)
    assert warped.points.keys() == plain.points.keys()
    before, after = randomize_anatomy.landmark_polys(plain), randomize_anatomy.landmark_polys(warped)
    for name, xy in warped.points.items():
        np.testing.assert_allclose(phantom.centroid(before[name]), plain.points[name], atol=1e-9)
        np.testing.assert_allclose(after[name], warp(before[name]), atol=1e-9)
        np.testing.assert_allclose(xy, phantom.centroid(after[name]), atol=1e-9)
    moved = np.array([warp(v[None])[0] for v in plain.points.values()])
    assert np.abs(moved - np.array(list(plain.points.values()))).max() > 1.0  # it did move them (mm)
    assert np.abs(moved - np.array(list(warped.points.values()))).max() < 1.5  # up to the field's curvature


def test_cases_are_named_and_the_gallery_takes_the_style() -> None:
    sub = randomize.draw_subject(np.random.default_rng(0))
    shown = randomize._shown(sub.patient, "T2", sub.slab, randomize_mri.sample_scanner(np.random.default_rng(0)),
                             sub.extras, sub.warp)
    assert tuple(shown) == common.RANDOMIZED_CASES
    grid = hard_case_gallery(seed=5, n=2, tile=64, style="randomized")
    assert grid.ndim == 3 and grid.shape[2] == 3
