"""The unseen synthetic style (benchmarks/bench_styles.py's yardstick): accepted where styles are, deterministic, and
every study T1-like, thick-sliced, low-resolution and strongly biased."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmfusion.cli import main as cli
from lmfusion.config import LANDMARKS
from lmfusion import synth
from lmfusion.synth import randomize, randomize_mri, styles

FIXED = ("T1-like", "thick slice", "low resolution", "strong bias")  # the cases every unseen study shows


def test_the_style_is_accepted_by_the_cli_and_the_generator() -> None:
    assert "unseen" in styles.STYLES
    assert cli.build_parser().parse_args(["synth", "--out", "x", "--style", "unseen"]).style == "unseen"
    styles.check_style("unseen")  # pretrain.style is checked by this too: the style is kept off training by convention
    assert styles.style_cases("unseen") == styles.style_cases("randomized")


def test_same_seed_same_bytes_and_every_study_shows_the_fixed_choices(tmp_path: Path) -> None:
    files = []
    for name in ("a", "b"):
        summary = synth.write_dataset(tmp_path / name, n=2, seed=104, style="unseen")
        files.append({str(f.relative_to(tmp_path / name)): f.read_bytes()
                      for f in sorted((tmp_path / name).rglob("*")) if f.is_file()})
    assert files[0] == files[1] and summary["images"] == 10
    assert all(summary["cases"][c] == 2 for c in FIXED)
    st = synth.generate_study(np.random.default_rng([104, 0]), style="unseen")
    h, w = st.image.shape
    assert st.landmarks.shape == (len(LANDMARKS), 2)
    assert np.all(st.landmarks >= 0) and np.all(st.landmarks <= [w - 1, h - 1])


def test_the_contrast_is_t1_like() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        v, kind = randomize_mri.t1_values(rng)
        assert kind == "T1" and v.keys() == randomize_mri.mri.TISSUES.keys()
        assert v["marrow"] >= max(v["annulus"], v["nucleus"]) + 0.15
        assert min(v["fat"], v["epifat"], v["marrow"]) > 2 * v["csf"] and v["air"] < 0.05


def test_the_acquisition_is_coarse_and_strongly_biased() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        sc = randomize_mri.low_resolution_scanner(rng)
        assert 0.35 <= sc.coarse <= 0.5 and max(sc.kspace) <= 0.85 * sc.coarse
        assert 1.4 <= np.ptp(sc.bias) <= 2.0 and sc.bias.shape[0] in (2, 3)
        assert sc.wrap == sc.motion == sc.ghost == sc.blur == 0.0


def test_the_slab_is_always_thick_and_the_randomized_draws_are_its_own() -> None:
    for i in range(5):
        slab = randomize.draw_subject(np.random.default_rng([104, i]), randomize.UNSEEN).slab
        assert len(slab.sub) == 3 and 6 <= slab.sub[2] - slab.sub[0] <= 10
    assert randomize.RANDOMIZED.contrast is randomize_mri.tissue_values
    assert randomize.RANDOMIZED.scanner is randomize_mri.sample_scanner
