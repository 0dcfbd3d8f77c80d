"""LandmarkPredictor (lmfusion.api): inputs it refuses before any network runs, and the CLI's line for them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import run
from lmfusion.api import MIN_SIDE_PX, LandmarkPredictor
from lmfusion.config import PrepareConfig
from lmfusion.errors import DataError


class _NoNetworks:
    """Stands in for the trained networks: refused inputs must never reach them."""

    names = ("L1-L2", "L2-L3")

    def outputs(self, *args, **kwargs):
        raise AssertionError("the networks ran on an image that should have been refused")


@pytest.fixture
def predictor() -> LandmarkPredictor:
    return LandmarkPredictor(_NoNetworks(), PrepareConfig(), decoder=None, method="fused")  # nothing may decode


@pytest.mark.parametrize("shape", [(1, 1), (MIN_SIDE_PX - 1, 400), (400, 8)])
def test_images_too_small_to_hold_a_spine_are_refused(predictor, shape) -> None:
    with pytest.raises(DataError, match=rf"image of {shape[1]}x{shape[0]} px is too small to hold a spine"):
        predictor.predict(np.zeros(shape, np.uint8))


def test_not_a_2d_image_is_refused(predictor) -> None:
    with pytest.raises(DataError, match="expected a 2-D grayscale image"):
        predictor.predict(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.slow
def test_cli_names_the_tiny_image_in_one_line(tiny_pipeline, tmp_path: Path) -> None:
    root = tiny_pipeline["root"]
    cv2.imwrite(str(tmp_path / "dot.png"), np.full((1, 1), 128, np.uint8))
    proc = run(["lmfusion", "predict", str(tmp_path / "dot.png"), "--out", str(tmp_path / "out"), "--pipeline",
                str(root), "--spacing", "0.7"], root, check=False)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'dot.png'}: image of 1x1 px is too small to hold a spine (each side must "
                      f"be at least {MIN_SIDE_PX} px)"]
