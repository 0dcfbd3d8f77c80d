"""The figures package (lmfusion.figures): pictures of the right shape, and a primitives module that stays light."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from lmfusion.config import AugmentConfig
from lmfusion.api import Prediction
from lmfusion.figures.augment import augmentation_preview
from lmfusion.figures.drawing import COLORS
from lmfusion.figures.predict import prediction_overlay


def test_augmentation_preview_is_a_bgr_montage():
    images = np.zeros((3, 32, 32), np.uint8)
    xy = np.full((3, 2, 2), 16.0)
    out = augmentation_preview(images, xy, AugmentConfig(), np.random.default_rng(0), n=8, names=["a", "b-c"],
                               tile=64)
    assert out.shape == (2 * 64, 4 * 64, 3) and out.dtype == np.uint8


def test_the_drawing_primitives_load_neither_matplotlib_nor_torch():
    code = "import sys, lmfusion.figures.drawing; print('matplotlib' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_prediction_overlay_labels_each_landmark():
    prediction = Prediction(names=("L1", "L1-L2"), xy=np.array([[20.0, 20.0], [40.0, 40.0]]), spacing=(1.0, 1.0),
                            confidence=np.ones(2), method="fused")
    out = prediction_overlay(np.zeros((64, 64), np.uint16), prediction)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert tuple(out[20, 20]) == COLORS["body"] and tuple(out[40, 40]) == COLORS["disc"]
