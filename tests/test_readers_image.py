"""Plain image files (lmfusion.data.readers.image): gray in, colour refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import write_image
from lmfusion.data.readers import read_image
from lmfusion.errors import DataError


def test_read_image_rejects_colour_and_accepts_gray(tmp_path: Path) -> None:
    write_image(tmp_path / "g.png", np.full((4, 5), 7, np.uint8))
    assert read_image(tmp_path / "g.png").shape == (4, 5)
    write_image(tmp_path / "c.png", np.dstack([np.zeros((4, 5), np.uint8)] * 2 + [np.full((4, 5), 9, np.uint8)]))
    with pytest.raises(DataError, match="colour"):
        read_image(tmp_path / "c.png")
    ramp = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    assert cv2.imwrite(str(tmp_path / "g.jpg"), np.dstack([ramp] * 3), [cv2.IMWRITE_JPEG_QUALITY, 80])
    gray = read_image(tmp_path / "g.jpg")  # a gray picture saved as colour JPEG
    assert gray.shape == (16, 32) and np.abs(gray - ramp).max() < 12
