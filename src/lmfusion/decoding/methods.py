"""The decode methods in one table: each method's name, the report's label for it and its colour in every figure.

The table's order is the methods' order everywhere: the keys of Decoded.xy and metrics/evaluate.json, the rows of
the report's method table, and the tie-break of the best method on the validation split (the earlier wins). A new
method is a row here (and its decode in LandmarkDecoder); the report, the figures, the held-out styles table and the
README's headline table read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBPIXEL = "_subpixel"  # a method refined to sub-pixel is its base method's name with this suffix


@dataclass(frozen=True)
class Method:
    """One decode method."""

    name: str  # the key in Decoded.xy, metrics/evaluate.json, decoder.json and `lmfusion predict --method`
    label: str  # the report's method table
    colour: str  # "#rrggbb" (RGB) in every figure; a sub-pixel variant has its base's colour, drawn dashed
    headline: str | None = None  # the README's headline table (None: not a row there)


_DIRECT, _ARGMAX, _FUSED, _GATED, _CHAIN = "#28a0ff", "#ffc83c", "#ff3c3c", "#ff9600", "#ff50ff"
DECODE_METHODS: tuple[Method, ...] = (
    Method("direct", "direct regression (Xception + FC)", _DIRECT, "direct regression (Xception + FC)"),
    Method("argmax", "heatmap argmax (U-Net)", _ARGMAX, "heatmap argmax (U-Net)"),
    Method("argmax_subpixel", "heatmap argmax + sub-pixel", _ARGMAX),
    Method("fused", "fused (the paper)", _FUSED, "fused (the paper's method)"),
    Method("fused_subpixel", "fused + sub-pixel", _FUSED, "fused + sub-pixel refinement"),
    Method("gated", "gated fusion (the prior where the heatmap is ambiguous)", _GATED,
           "gated fusion (the prior only where the heatmap is ambiguous)"),
    Method("gated_subpixel", "gated fusion + sub-pixel", _GATED),
    Method("chain", "chain (joint decode of the 11)", _CHAIN, "chain decode (beyond the paper)"),
    Method("chain_subpixel", "chain + sub-pixel", _CHAIN, "chain decode + sub-pixel refinement"),
)
METHODS: tuple[str, ...] = tuple(m.name for m in DECODE_METHODS)
LABELS: dict[str, str] = {m.name: m.label for m in DECODE_METHODS}
COLOURS: dict[str, str] = {m.name: m.colour for m in DECODE_METHODS}

__all__ = ["COLOURS", "DECODE_METHODS", "LABELS", "METHODS", "Method", "SUBPIXEL"]
