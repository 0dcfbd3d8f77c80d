"""lmfusion: fused landmark localization (coordinate regression x heatmap regression) as a DVC pipeline.

`from lmfusion import LandmarkPredictor` is the public API for new images; the rest is the pipeline's package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LandmarkPredictor", "Prediction", "LmfusionError", "__version__"]
__version__ = "0.1.0"

from lmfusion.errors import LmfusionError


def __getattr__(name: str) -> Any:
    # torch loads only when the predictor is asked for, so `import lmfusion.config` stays fast
    if name in ("LandmarkPredictor", "Prediction"):
        from lmfusion import api

        return getattr(api, name)
    raise AttributeError(f"module 'lmfusion' has no attribute {name!r}")
