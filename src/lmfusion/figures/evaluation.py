"""The evaluation's figures: overlays of every method on test studies (the paper's Figure 10), the worst cases,
the fusion of one landmark (prior, heatmap, product: the paper's Figure 9), and the charts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from lmfusion.config.decoding import EvaluateConfig
from lmfusion.coords import rescale
from lmfusion.data.prepared import Prepared
from lmfusion.decoding import fusion
from lmfusion.decoding.methods import COLOURS
from lmfusion.figures import charts
from lmfusion.figures.drawing import COLORS, bgr, draw_points, montage, to_bgr, write_png
from lmfusion.metrics import level_shift, radial_errors, wrong_level_studies

if TYPE_CHECKING:
    from lmfusion.decoding import Decoded
    from lmfusion.decoding.outputs import SplitOutputs

SHOWN = ("direct", "argmax", "fused", "chain")


def _colour(name: str) -> tuple[int, int, int]:
    """BGR of the ground truth or of a decode method (its row in lmfusion.decoding.methods)."""
    return COLORS[name] if name in COLORS else bgr(COLOURS[name])


def _overlay(image_u8: np.ndarray, size: np.ndarray, truth: np.ndarray, decoded_xy: dict[str, np.ndarray],
             caption: str) -> np.ndarray:
    """One prepared image with the ground truth (green dots) and each method (crosses) at the image's scale."""
    s = image_u8.shape[0]
    scale = max(1, 512 // s)
    img = to_bgr(cv2.resize(image_u8, (s * scale, s * scale), interpolation=cv2.INTER_LINEAR))
    to_px = lambda xy: rescale(xy, (size[0], size[1]), (s * scale, s * scale))  # noqa: E731
    draw_points(img, to_px(truth), _colour("truth"))
    for m in SHOWN:
        draw_points(img, to_px(decoded_xy[m]), _colour(m), marker="cross")
    cv2.putText(img, caption, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _legend(width: int) -> np.ndarray:
    bar = np.zeros((22, width, 3), np.uint8)
    x = 6
    for label in ("truth", *SHOWN):
        cv2.circle(bar, (x + 5, 11), 5, _colour(label), -1, cv2.LINE_AA)
        cv2.putText(bar, label, (x + 14, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        x += 24 + 9 * len(label)
    return bar


def _studies_png(path: Path, data: Prepared, split: SplitOutputs, decoded: Decoded, order: np.ndarray,
                 errors: np.ndarray, method: str, shifts: dict[str, np.ndarray] | None = None) -> None:
    """Overlays of the studies `order`; with `shifts` ((N,) per method) the caption names each shifted method."""
    tiles = []
    for i in order:
        row = split.rows[i]
        caption = f"{data.index['study'].iloc[row]}  {method} max {errors[i].max():.1f} mm"
        if shifts:
            caption += "".join(f", {m} {'up' if s[i] < 0 else 'down'}" for m, s in shifts.items() if s[i])
        tiles.append(_overlay(data.unet[row], split.sizes[i], split.truth[i], {m: decoded.xy[m][i] for m in SHOWN},
                              caption))
    if not tiles:
        return
    grid = montage(tiles, cols=min(4, len(tiles)), tile=384)
    write_png(path, np.vstack([_legend(grid.shape[1]), grid]))


def _fusion_example(path: Path, data: Prepared, split: SplitOutputs, decoded: Decoded, sigma_hm: np.ndarray,
                    names: tuple[str, ...]) -> None:
    """The landmark where fusion helped most over plain argmax (else the largest argmax error) on one study."""
    arg_err = radial_errors(decoded.xy["argmax"], split.truth, split.spacing)
    fus_err = radial_errors(decoded.xy["fused"], split.truth, split.spacing)
    i, k = np.unravel_index(np.argmax(arg_err - fus_err), arg_err.shape)
    h, w = split.hm_shape
    heatmap = split.heatmaps[i, k].astype(np.float32)  # (H, W)
    reg_hm = split.regressed_hm()[i, k]
    sig = float(sigma_hm[k]) if np.isfinite(sigma_hm[k]) else 1e6
    prior = fusion.prior(reg_hm[None], h, w, max(sig, 1e-3))[0]  # (H, W)
    product = prior * heatmap
    to_hm = lambda xy: rescale(xy, tuple(split.sizes[i]), (w, h))  # noqa: E731
    points = {"truth": to_hm(split.truth[i, k]), **{m: to_hm(decoded.xy[m][i, k]) for m in SHOWN}}
    image = cv2.resize(data.unet[split.rows[i]], (w, h), interpolation=cv2.INTER_AREA)
    charts.fusion_panel_png(path, image, prior, heatmap, product, points,
                            title=f"{data.index['study'].iloc[split.rows[i]]}, {names[k]}, sigma {sig:.2f} px")


def shifted_studies(decoded: Decoded, split: SplitOutputs, method: str, limit: int = 8) -> np.ndarray:
    """Up to `limit` studies whose whole chain sits a level off: those of `method` first, then those of the other
    shown methods; empty when no method shifts any study."""
    order = [method] + [m for m in SHOWN if m != method]
    found: list[int] = []
    for m in order:
        found += [int(i) for i in np.flatnonzero(level_shift(decoded.xy[m], split.truth, split.spacing))
                  if i not in found]
    return np.array(found[:limit], np.int64)


def chain_fixes(decoded: Decoded, split: SplitOutputs) -> np.ndarray:
    """Indices of the studies where fused put a landmark on a neighbour's level and the chain put none."""
    fused = wrong_level_studies(decoded.xy["fused"], split.truth, split.spacing)
    chain = wrong_level_studies(decoded.xy["chain"], split.truth, split.spacing)
    return np.flatnonzero(fused & ~chain)


def evaluation_figures(out: Path, *, data: Prepared, split: SplitOutputs, decoded: Decoded, sigma_hm: np.ndarray,
                       names: tuple[str, ...], curves: dict[str, list[float]], radii: np.ndarray,
                       per_landmark: pd.DataFrame, cfg: EvaluateConfig, worst_by: str = "fused") -> None:
    """Write every evaluation PNG into the folder `out`; the worst cases are those of the method `worst_by`."""
    errors = radial_errors(decoded.xy[worst_by], split.truth, split.spacing)  # (N, K)
    n = len(split.rows)
    _studies_png(out / "overlays.png", data, split, decoded, np.arange(min(cfg.n_overlays, n)), errors, worst_by)
    worst = np.argsort(-errors.max(axis=1), kind="stable")[: min(cfg.n_worst, n)]
    _studies_png(out / "worst_cases.png", data, split, decoded, worst, errors, worst_by)
    shifted = shifted_studies(decoded, split, worst_by)
    _studies_png(out / "shifted_studies.png", data, split, decoded, shifted if len(shifted) else worst, errors,
                 worst_by, shifts={m: level_shift(decoded.xy[m], split.truth, split.spacing) for m in SHOWN})
    if n:
        _fusion_example(out / "fusion_example.png", data, split, decoded, sigma_hm, names)
    fixed = chain_fixes(decoded, split)
    if len(fixed):
        chain_err = radial_errors(decoded.xy["chain"], split.truth, split.spacing)
        _studies_png(out / "chain_example.png", data, split, decoded, fixed[:1], chain_err, "chain")
    charts.sdr_curve_png(out / "sdr_curve.png", list(radii), curves, cfg.target_radius)
    charts.per_landmark_png(out / "per_landmark_mre.png", list(names),
                            {m: per_landmark[m].tolist() for m in per_landmark.columns if m != "landmark"})
