"""The table of dataset formats (lmfusion.data.readers.READERS): dispatch, aliases and the unknown-format error all
come from it, and the params check (DataConfig.format) accepts exactly its names and aliases."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from lmfusion.config import DataConfig, parse_section
from lmfusion.data import readers
from lmfusion.data.readers import READERS, Reader, format_name, read_dataset
from lmfusion.errors import ParamError


def spellings() -> set[str]:
    """Every data.format the table answers to: names and aliases."""
    return {*READERS, *(a for r in READERS.values() for a in r.aliases)}


def test_data_format_param_accepts_exactly_the_tables_names_and_aliases() -> None:
    allowed = set(typing.get_args(typing.get_type_hints(DataConfig)["format"]))
    assert sorted(allowed - spellings()) == [], "DataConfig.format allows formats READERS has no reader for"
    assert sorted(spellings() - allowed) == [], "READERS has formats DataConfig.format refuses"
    assert DataConfig().format in READERS
    for fmt in sorted(spellings()):
        assert parse_section("data", {"format": fmt}).format == fmt


def test_names_and_aliases_do_not_collide() -> None:
    aliases = [a for r in READERS.values() for a in r.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(READERS)


def test_aliases_resolve_to_their_reader() -> None:
    assert format_name("challenge") == "tianchi"
    for name, reader in READERS.items():
        assert format_name(name) == name
        assert all(format_name(a) == name for a in reader.aliases)


def test_read_dataset_dispatches_through_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake(path: Path, names: tuple[str, ...], on_invalid: str, progress: bool = False) -> tuple[list, list]:
        calls.append((path, names, on_invalid, progress))
        return [], []

    monkeypatch.setitem(readers.READERS, "fake", Reader(fake, aliases=("other",)))
    assert read_dataset("fake", tmp_path, ("L1",), "skip") == ([], [])
    assert read_dataset("other", tmp_path, ("L1",), "error", progress=True) == ([], [])
    assert calls == [(tmp_path, ("L1",), "skip", False), (tmp_path, ("L1",), "error", True)]


def test_an_unknown_format_gets_one_line_listing_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ParamError) as e:
        read_dataset("kaggle", tmp_path, ("L1",), "skip")
    assert str(e.value) == "param data.format: must be 'tianchi' (or 'challenge'), 'csv' or 'rsna2024', got 'kaggle'"
    monkeypatch.setitem(readers.READERS, "fake", Reader(READERS["csv"].read, aliases=("a", "b")))
    with pytest.raises(ParamError, match=r"^param data.format: must be .*, 'rsna2024' or 'fake' \(or 'a', 'b'\), "
                                         r"got 'kaggle'$"):
        format_name("kaggle")
