"""Synthetic studies drawn in several processes: study i comes from `np.random.default_rng([seed, i])` whichever
process draws it, so the results do not depend on the number of processes. The functions a pool runs live here, in
an importable module, because spawned processes import them by name.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from lmfusion.synth.styles import generate_study


def map_ordered(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int) -> Iterator[Any]:
    """fn over jobs, in order, in `workers` spawned processes (1: in this one). `fn` must be a module-level function
    of an importable module."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(fn, jobs, chunksize=2)


def annotated_slice(job: tuple[str, int, int, tuple[str, ...]]) -> tuple[np.ndarray, tuple, np.ndarray, np.ndarray]:
    """(style, seed, i, names) -> study i's annotated slice (stored values), its rescale (slope, intercept), its
    landmarks (K, 2) and its spacing (2,)."""
    style, seed, i, names = job
    st = generate_study(np.random.default_rng([seed, i]), names, style)
    return st.image, st.images[st.annotated].rescale, st.landmarks, st.spacing
