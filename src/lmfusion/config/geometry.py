"""Heatmap geometry: the params that are lengths in pixels, in pixels of the heatmap at hand.

heatmap.sigma, fusion.sigma (a number), fusion.gate_sep, chain.rival_sep and chain.end_radius are given in pixels of
a heatmap.reference_size heatmap, so one value means the same anatomy at every prepare.unet_size (as augment's
ranges are given at augment.reference_size). This module, and only it, turns them into pixels of a heatmap of side
`size` (the U-Net input's, which is prepare.unet_size): length x size / reference_size, so 2.0 at 256 is 1.5 at the
default 192 and 4.0 at 512. Everything below it (the heatmaps and training stages, the decoder fit, the decoder,
`lmfusion predict`) takes heatmap pixels and never reads these params itself.

The size is the heatmap's own (the prepared images', the infer stage's outputs', the trained U-Net's), not read from
params.yaml: the lengths always match the maps they measure. The decoding sections are only type hints here, so a
training stage that imports this module does not depend on lmfusion.config.decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lmfusion.errors import DataError

if TYPE_CHECKING:
    from lmfusion.config.decoding import ChainConfig, FusionConfig
    from lmfusion.config.sections import HeatmapConfig


def to_heatmap_px(length: float, size: int, reference_size: int) -> float:
    """`length` pixels of a reference_size heatmap in pixels of a `size` one (one rounding: exact for 192 / 256)."""
    if not (size >= 1 and reference_size >= 1):
        raise DataError(f"heatmap geometry: sizes must be >= 1 px, got heatmap {size} and reference {reference_size}")
    return length * size / reference_size


def target_sigma(heatmap: HeatmapConfig, size: int) -> float:
    """heatmap.sigma in pixels of a `size` px heatmap: the Gaussian training targets' sigma."""
    return to_heatmap_px(heatmap.sigma, size, heatmap.reference_size)


@dataclass(frozen=True)
class DecodeGeometry:
    """The decoder's lengths in pixels of the heatmaps it decodes."""

    fusion_sigma: float | None  # fusion.sigma when a number; None when auto (fitted on val, in heatmap px)
    gate_sep: float  # fusion.gate_sep: a rival peak nearer the top one is the same peak
    rival_sep: float  # chain.rival_sep: the level margin's rival chain moves every landmark at least this far
    end_radius: float  # chain.end_radius: the end check reads the map's maximum within it


def decode_geometry(heatmap: HeatmapConfig, fusion: FusionConfig, chain: ChainConfig, size: int) -> DecodeGeometry:
    """The fusion and chain params' lengths in pixels of `size` px heatmaps (the infer stage's outputs)."""
    def px(length: float) -> float:
        return to_heatmap_px(length, size, heatmap.reference_size)

    return DecodeGeometry(fusion_sigma=None if fusion.sigma == "auto" else px(float(fusion.sigma)),
                          gate_sep=px(fusion.gate_sep), rival_sep=px(chain.rival_sep), end_radius=px(chain.end_radius))


__all__ = ["DecodeGeometry", "decode_geometry", "target_sigma", "to_heatmap_px"]
