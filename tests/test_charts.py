"""Charts: every function writes one whole, non-empty PNG and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmfusion.figures import charts
from lmfusion.heatmaps import encode

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
from lmfusion.decoding import METHODS


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert len(data) < 1_000_000  # small files for the report
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_sdr_curve_png(tmp_path: Path) -> None:
    radii = np.arange(0.0, 20.01, 0.5)
    curves = {m: list(np.clip(radii / (8 + i), 0, 1)) for i, m in enumerate(METHODS)}
    charts.sdr_curve_png(tmp_path / "sdr_curve.png", list(radii), curves, target_radius=8.0)
    _check_png(tmp_path / "sdr_curve.png")


def test_per_landmark_png(tmp_path: Path) -> None:
    names = ["L1", "L1-L2", "L2", "L2-L3", "L3"]
    mre = {m: list(np.linspace(1, 3, len(names)) + i) for i, m in enumerate(METHODS)}
    charts.per_landmark_png(tmp_path / "mre.png", names, mre)
    _check_png(tmp_path / "mre.png")


def test_fusion_panel_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    prior = encode(np.array([[30.0, 28.0]]), 64, 64, 4.0)[0]
    heatmap = encode(np.array([[31.0, 25.0], [31.0, 40.0]]), 64, 64, 1.5).max(0)
    points = {"truth": (31.0, 25.0), "direct": (30.0, 28.0), "argmax": (31.0, 40.0), "fused": (31.0, 25.0)}
    charts.fusion_panel_png(tmp_path / "fusion.png", image, prior, heatmap, prior * heatmap, points, title="L3")
    _check_png(tmp_path / "fusion.png")


def test_sigma_sweep_png_with_text_labels_and_nan(tmp_path: Path) -> None:
    charts.sigma_sweep_png(tmp_path / "sweep.png", ["0.5", "1", "2", "auto"], [0.7, 0.9, 0.95, float("nan")],
                           [3.0, 2.1, 1.8, 1.9])
    _check_png(tmp_path / "sweep.png")
    (tmp_path / "sweep.png").unlink()
    charts.sigma_sweep_png(tmp_path / "sweep.png", [0.5, 1.0, 16.0], [0.7, 0.9, 0.8], [3.0, 2.1, 2.5])
    _check_png(tmp_path / "sweep.png")
