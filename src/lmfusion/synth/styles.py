"""The synthetic styles, in one registry: what `lmfusion synth --style`, `pretrain.style` and the benchmarks name.

    default     as varied as real lumbar series (12 % of series fat-suppressed)
    target      a small set in another style: every series fat-suppressed (STIR-like), steeper lumbosacral junctions
                (the pretraining measurement's target domain)
    randomized  every tissue value, the acquisition and more anatomy drawn per study (randomize: its own draws)
    unseen      the randomized generator with a thick slice, a T1-like contrast, low resolution and a strong bias
                field fixed, for judging only (benchmarks/bench_styles.py): no training set should use it
    clinical    the default style with the lumbosacral junction as clinical scans show it (`junction`): the sacrum
                one fused bone with thin remnants, L4-L5 and L5-S1 worn more often, collapsed, slipped, Modic
                bands, Schmorl nodes and gas

A style is a function (rng, names) -> SynthStudy, the hard cases its studies can show (SynthStudy.cases) and
whether it can write a series layout other than the default (`common.SeriesLayout`: many slices, the spine's
mid-plane off the series' middle). A new style is one more entry here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from lmfusion import config
from lmfusion.errors import ParamError
from lmfusion.synth import junction, phantom, randomize, study
from lmfusion.synth.common import HARD_CASES, RANDOMIZED_CASES, SeriesLayout, SynthStudy, check_names


@dataclass(frozen=True)
class Style:
    generate: Callable[..., SynthStudy]  # (rng, names[, layout]); names already checked
    cases: tuple[str, ...]  # the hard cases its studies can show
    layouts: bool = False  # takes a `layout` (SeriesLayout) argument


STYLES = {
    "default": Style(partial(study.generate_phantom_study, p_stir=0.12, lordosis=phantom.LORDOSIS_MEDIAN),
                     HARD_CASES, layouts=True),
    "target": Style(partial(study.generate_phantom_study, p_stir=1.0, lordosis=2.0), HARD_CASES, layouts=True),
    "randomized": Style(partial(randomize.generate_randomized, draws=randomize.RANDOMIZED),
                        HARD_CASES + RANDOMIZED_CASES),
    "unseen": Style(partial(randomize.generate_randomized, draws=randomize.UNSEEN), HARD_CASES + RANDOMIZED_CASES),
    "clinical": Style(partial(study.generate_phantom_study, p_stir=0.12, lordosis=phantom.LORDOSIS_MEDIAN,
                              clinical=True), HARD_CASES + junction.CASES, layouts=True),
}


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ParamError(f"synth style: unknown style {style!r}; known: {', '.join(STYLES)}")


def style_cases(style: str) -> tuple[str, ...]:
    """The cases a style's studies can show (SynthStudy.cases)."""
    check_style(style)
    return STYLES[style].cases


def check_layout(style: str, layout: SeriesLayout) -> None:
    check_style(style)
    if not layout.is_default and not STYLES[style].layouts:
        with_layouts = ", ".join(k for k, v in STYLES.items() if v.layouts)
        raise ParamError(f"synth style {style!r}: writes the default 3-slice series only; --sagittal-slices and "
                         f"--off-centre work with {with_layouts}")


def generate_study(rng: np.random.Generator, names: tuple[str, ...] = config.LANDMARKS,
                   style: str = "default", layout: SeriesLayout = SeriesLayout()) -> SynthStudy:
    """One synthetic study (all its images in memory) drawn from `rng` in `style`, its sagittal series laid out
    as `layout` says."""
    names = tuple(names)
    check_names(names)
    check_layout(style, layout)
    if layout.is_default:
        return STYLES[style].generate(rng, names)
    return STYLES[style].generate(rng, names, layout=layout)
