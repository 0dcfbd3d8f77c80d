"""A params value checked against its dataclass annotation, with one message naming the key and what is allowed."""

from __future__ import annotations

import contextlib
import math
import typing
from typing import Any, Literal, Union

from lmfusion.errors import ParamError

_SCALARS = {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string"}


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; return it in the dataclass's form (lists become tuples)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    fail = ParamError(f"param {key}: must be {_describe(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin is Union:
        for arg in args:
            with contextlib.suppress(ParamError):
                return coerce(value, arg, key)
        raise fail
    if origin is Literal:
        if value in args:
            return value
        raise ParamError(f"param {key}: must be one of {', '.join(repr(a) for a in args)}, got {value!r}")
    if origin is tuple:
        types = (args[0],) * len(value) if isinstance(value, (list, tuple)) and args[-1] is Ellipsis else args
        if not isinstance(value, (list, tuple)) or len(value) != len(types):
            raise fail
        return tuple(coerce(v, a, key) for v, a in zip(value, types))
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is float and numeric and math.isfinite(value):
        return float(value)
    if (tp is int and numeric and isinstance(value, int)) or (tp in (bool, str) and isinstance(value, tp)) or (
            tp is type(None) and value is None):
        return value
    raise fail


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin is Union:
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        return f"a list of {_describe(args[0])}" if args[-1] is Ellipsis else f"a list of {len(args)} values"
    return _SCALARS.get(tp, str(tp))
