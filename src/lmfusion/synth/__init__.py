"""The synthetic study generator: sagittal lumbar spine MRI with known landmarks, written in a dataset layout.

    phantom     the subject: patient draw, shapes and soft tissue (geometry in mm)
    axial       the axial slice through the L4-L5 disc
    spine       the sagittal spine: vertebral bodies, discs, sacrum, canal and posterior elements
    mri         rendering and acquisition: tissue values, texture, k-space, bias field, noise
    common      what every style's study shares: the series written (SynthImage, SynthStudy), field of view and
                matrix, grading tags, hard cases
    study       the default and target styles' study: its series and the annotated landmarks
    styles      the registry of styles (default, target, randomized, unseen) and generate_study
    randomize   the randomized style's study (SynthSeg-like): slab and scoliotic roll, mixed landmarks; with
                randomize_anatomy (wider subject, extra structures, elastic deformation) and randomize_mri
                (every tissue value and the acquisition drawn per study); the unseen style (a yardstick for
                benchmarks/bench_styles.py, never trained on) is the same generator with a thick slice, a T1-like
                contrast, low resolution and a strong bias field fixed
    tianchi     the spinal disease challenge's DICOM + annotation JSON layout (data.format tianchi)
    rsna2024    the RSNA 2024 layout (CSVs and DICOM folders)

Their pictures (montages read back, the hard-case gallery) are in lmfusion.figures.synth and figures.rsna2024.
"""

from __future__ import annotations

from lmfusion.synth.common import SynthImage, SynthStudy
from lmfusion.synth.styles import STYLES, generate_study
from lmfusion.synth.tianchi import SPLITS, write_dataset

__all__ = ["SPLITS", "STYLES", "SynthImage", "SynthStudy", "generate_study", "write_dataset"]
