"""Errors that end a command with one clear line instead of a traceback."""

from __future__ import annotations


class LmfusionError(Exception):
    """An error caused by the user's input (a file, a study, a param). Exit code 1."""

    exit_code = 1


class ParamError(LmfusionError):
    """A params.yaml value that is unknown, of the wrong type or out of range. Exit code 2."""

    exit_code = 2


class DataError(LmfusionError):
    """An unreadable or inconsistent input file or study. Exit code 1."""
