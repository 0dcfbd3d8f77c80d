"""Split assignment: sizes, determinism, independence of input order, the source's own splits, too few studies."""

from __future__ import annotations

import numpy as np
import pytest

from lmfusion.data.splits import assign_splits
from lmfusion.errors import DataError, ParamError

IDS = [f"lumbar_train150/study{i}" for i in range(40)]


def as_dict(ids: list[str], splits: list[str]) -> dict[str, str]:
    return dict(zip(ids, splits))


def test_sizes_and_determinism() -> None:
    splits = assign_splits(IDS, [None] * len(IDS), val_size=5, test_size=8, seed=0)
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (27, 5, 8)
    assert splits == assign_splits(IDS, [None] * len(IDS), val_size=5, test_size=8, seed=0)
    other = assign_splits(IDS, [None] * len(IDS), val_size=5, test_size=8, seed=1)
    assert other != splits


def test_independent_of_input_order() -> None:
    shuffled = [IDS[i] for i in np.random.default_rng(7).permutation(len(IDS))]
    a = as_dict(IDS, assign_splits(IDS, [None] * len(IDS), val_size=4, test_size=6, seed=3))
    b = as_dict(shuffled, assign_splits(shuffled, [None] * len(IDS), val_size=4, test_size=6, seed=3))
    assert a == b


def test_given_splits_are_respected() -> None:
    given = ["test" if i % 4 == 0 else "train" for i in range(len(IDS))]
    splits = assign_splits(IDS, given, val_size=6, test_size=99, seed=0)  # test_size unused: the source decides
    for g, s in zip(given, splits):
        assert (s == "test") == (g == "test")
    assert splits.count("val") == 6 and splits.count("train") == 30 - 6
    shuffled = np.random.default_rng(1).permutation(len(IDS))
    again = assign_splits([IDS[i] for i in shuffled], [given[i] for i in shuffled], val_size=6, test_size=99, seed=0)
    assert as_dict([IDS[i] for i in shuffled], again) == as_dict(IDS, splits)


def test_too_few_studies() -> None:
    with pytest.raises(ParamError, match=r"prepare.val_size / prepare.test_size.*5 studies are available"):
        assign_splits(IDS[:5], [None] * 5, val_size=2, test_size=3, seed=0)
    assert assign_splits(IDS[:6], [None] * 6, val_size=2, test_size=3, seed=0).count("train") == 1
    with pytest.raises(ParamError, match=r"prepare.val_size.*2 studies are available"):
        assign_splits(IDS[:4], ["train", "train", "test", "test"], val_size=2, test_size=1, seed=0)


def test_given_splits_without_test_or_with_bad_values() -> None:
    with pytest.raises(DataError, match="no study as test"):
        assign_splits(IDS[:4], ["train"] * 4, val_size=1, test_size=1, seed=0)
    with pytest.raises(DataError, match="'validation'"):
        assign_splits(IDS[:4], ["train", "validation", "test", "train"], val_size=1, test_size=1, seed=0)
    with pytest.raises(ValueError, match="unique"):
        assign_splits(["a", "a", "b"], [None] * 3, val_size=1, test_size=1, seed=0)
