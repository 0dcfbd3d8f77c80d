"""Train / val / test assignment: deterministic for a seed and independent of the order studies were read in."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lmfusion.errors import DataError, ParamError


def assign_splits(study_ids: Sequence[str], given: Sequence[str | None], val_size: int, test_size: int,
                  seed: int) -> list[str]:
    """'train', 'val' or 'test' for each study.

    Args:
        study_ids: unique study ids.
        given: the source's split per study ('train' / 'test') or None. When any is given, the given test studies
            are the test set (test_size is not used), val is drawn from the rest; otherwise test_size studies are
            drawn for test and val_size for val.
        val_size, test_size: prepare.val_size, prepare.test_size.
        seed: base.seed.
    Returns:
        one split name per study, in the order of `study_ids`.
    """
    ids = list(study_ids)
    if len(given) != len(ids):
        raise ValueError(f"{len(ids)} study ids but {len(given)} given splits")
    if len(set(ids)) != len(ids):
        raise ValueError("study ids must be unique")
    bad = sorted({g for g in given if g not in (None, "train", "test")})
    if bad:
        raise DataError(f"given split {bad[0]!r}: expected train or test")
    rng = np.random.default_rng(seed)
    out = dict.fromkeys(ids, "train")
    if any(g is not None for g in given):
        test = sorted(i for i, g in zip(ids, given) if g == "test")
        pool = sorted(i for i, g in zip(ids, given) if g != "test")
        if not test:
            raise DataError("the given splits mark no study as test (add test rows to the split column)")
        if len(pool) < val_size + 1:
            raise ParamError(f"param prepare.val_size: {val_size} validation studies leave none for training: "
                             f"{len(pool)} studies are available outside the given test split")
        n_test = 0
    else:
        pool, test = sorted(ids), []
        if len(pool) < val_size + test_size + 1:
            raise ParamError(f"param prepare.val_size / prepare.test_size: {val_size} + {test_size} studies leave "
                             f"none for training: {len(pool)} studies are available")
        n_test = test_size
    order = [pool[j] for j in rng.permutation(len(pool))]
    for i in test + order[:n_test]:
        out[i] = "test"
    for i in order[n_test:n_test + val_size]:
        out[i] = "val"
    return [out[i] for i in ids]


__all__ = ["assign_splits"]
