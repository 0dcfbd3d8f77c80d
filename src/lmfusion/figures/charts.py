"""Result charts drawn with matplotlib (Agg, no display): success rate against radius, per-landmark error, the fusion
of one landmark (the paper's Figure 9), the prior-sigma sweep and learning curves side by side. Every PNG is
written atomically.

matplotlib is imported inside the functions, so importing this module stays cheap. A method's colour is its row's in
lmfusion.decoding.methods (the ground truth's is lmfusion.figures.drawing.COLORS', BGR there), so a method has one
colour in every figure.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Collection, Mapping, Sequence

import numpy as np

from lmfusion.decoding.methods import COLOURS, SUBPIXEL
from lmfusion.figures.drawing import COLORS
from lmfusion.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 150
_FALLBACK_COLORS = ("#7f7f7f", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e")


def _rgb(bgr: tuple[int, int, int]) -> tuple[float, float, float]:
    return bgr[2] / 255, bgr[1] / 255, bgr[0] / 255


def _style(name: str, i: int) -> dict[str, Any]:
    """Line colour and style of a decode method (a `_subpixel` variant has its base method's colour, dashed), of the
    ground truth, or of the i-th other name."""
    if name in COLOURS:
        color: Any = COLOURS[name]
    else:
        color = _rgb(COLORS[name]) if name in COLORS else _FALLBACK_COLORS[i % len(_FALLBACK_COLORS)]
    return {"color": color, "linestyle": "--" if name.endswith(SUBPIXEL) else "-"}


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure  # a bare Figure needs no pyplot, no backend and no global state

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def sdr_curve_png(path: str | os.PathLike, radii_fine: Sequence[float], curves: Mapping[str, Sequence[float]],
                  target_radius: float) -> None:
    """Success rate (share of landmarks within r) against the radius r in mm, one line per method."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    radii = np.asarray(radii_fine, dtype=np.float64)
    for i, (method, rates) in enumerate(curves.items()):
        rates = 100 * np.asarray(rates, dtype=np.float64)
        at_target = np.interp(target_radius, radii, rates) if len(radii) else np.nan
        ax.plot(radii, rates, label=f"{method} ({at_target:.1f}% at {target_radius:g} mm)", linewidth=1.6,
                **_style(method, i))
    ax.axvline(target_radius, color="0.5", linewidth=0.8, linestyle=":")
    ax.set(xlabel="radius r (mm)", ylabel="landmarks within r (%)", ylim=(0, 101),
           title="Success detection rate against radius")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def per_landmark_png(path: str | os.PathLike, names: Sequence[str], mre: Mapping[str, Sequence[float]]) -> None:
    """Grouped bars of each landmark's mean radial error (mm), one bar per method."""
    fig = _figure(max(6.4, 0.75 * len(names) + 2), 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    width = 0.8 / max(1, len(mre))
    for i, (method, values) in enumerate(mre.items()):
        style = _style(method, i)
        ax.bar(x + (i - (len(mre) - 1) / 2) * width, np.asarray(values, dtype=np.float64), width, label=method,
               color=style["color"], hatch="//" if style["linestyle"] == "--" else None, edgecolor="white",
               linewidth=0.3)
    ax.set_xticks(x, list(names), rotation=45, ha="right")
    ax.set(xlabel="landmark (top to bottom)", ylabel="mean radial error (mm)", title="Mean radial error per landmark")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def fusion_panel_png(path: str | os.PathLike, image_u8: np.ndarray, prior: np.ndarray, heatmap: np.ndarray,
                     product: np.ndarray, points: Mapping[str, Sequence[float]], title: str | None = None) -> None:
    """The fusion of one landmark in four panels: image, regressor prior, U-Net heatmap, their product.

    Args:
        image_u8, prior, heatmap, product: (H, W) on the heatmap's grid.
        points: name -> (x, y) in heatmap pixels ("truth", "direct", "argmax", "fused", ...), drawn on every panel.
    """
    fig = _figure(12.0, 3.6)
    axes = fig.subplots(1, 4)
    product = np.asarray(product, dtype=np.float64)
    peak = float(product.max()) if product.size else 0.0
    panels = [
        (image_u8, "gray", "image", (0, 255)),
        (prior, "magma", "regressor prior", (0, 1)),
        (heatmap, "magma", "U-Net heatmap", (0, 1)),
        (product / peak if peak > 0 else product, "magma", f"prior x heatmap (peak {peak:.3g})", (0, 1)),
    ]
    handles = []
    for ax, (img, cmap, label, (lo, hi)) in zip(axes, panels):
        ax.imshow(np.asarray(img, dtype=np.float32), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        handles = []
        for i, (name, (x, y)) in enumerate(points.items()):
            marker = "o" if name == "truth" else "x"
            handles.append(ax.scatter([x], [y], s=28, marker=marker, color=_style(name, i)["color"], label=name,
                                      linewidths=1.5, facecolors="none" if marker == "o" else None))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def sigma_sweep_png(path: str | os.PathLike, sigmas: Sequence[float | str], sdr_values: Sequence[float],
                    mre_values: Sequence[float], radius_mm: float | None = None) -> None:
    """Fused success rate (left axis, %) and mean radial error (right axis, mm) for each prior sigma.

    Args:
        sigmas: sigma labels in heatmap pixels (numbers or text such as "auto"), shown in the given order.
        sdr_values: success rates as fractions (0..1), at `radius_mm` when given (named on the axis).
    """
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(sigmas))
    sdr_color, mre_color = COLOURS["fused"], COLOURS["direct"]
    ax.plot(x, 100 * np.asarray(sdr_values, dtype=np.float64), "o-", color=sdr_color, label="success rate")
    ax.set_xticks(x, [s if isinstance(s, str) else f"{s:g}" for s in sigmas])
    at = f" at {radius_mm:g} mm" if radius_mm is not None else ""
    ax.set(xlabel="prior sigma (heatmap px)", ylabel=f"success rate{at} (%)", title="Fusion against the prior's sigma")
    ax.tick_params(axis="y", colors=sdr_color)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(x, np.asarray(mre_values, dtype=np.float64), "s--", color=mre_color, label="mean radial error")
    ax2.set_ylabel("mean radial error (mm)")
    ax2.tick_params(axis="y", colors=mre_color)
    fig.legend(handles=ax.get_lines()[:1] + ax2.get_lines()[:1], loc="outside lower center", ncol=2, fontsize=8)
    _save(fig, path)


def learning_curves_png(path: str | os.PathLike, panels: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
                        train: Collection[str] | None = None) -> None:
    """Loss per epoch, one panel per network side by side, one colour per variant (validation solid, training
    dashed; only for the variants in `train` when given, so that many variants stay readable).
    panels: {title: {variant: {"epoch": [...], "train_loss": [...], "val_loss": [...]}}}."""
    fig = _figure(4.2 * max(len(panels), 1), 3.6)
    for j, (title, variants) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), j + 1)
        for i, (variant, curve) in enumerate(variants.items()):
            color = _FALLBACK_COLORS[i % len(_FALLBACK_COLORS)]
            ax.plot(curve["epoch"], curve["val_loss"], color=color, linewidth=1.6, label=f"{variant} (val)")
            if train is None or variant in train:
                ax.plot(curve["epoch"], curve["train_loss"], color=color, linewidth=1.0, linestyle="--",
                        label=f"{variant} (train)")
        ax.set(xlabel="epoch", ylabel="loss", yscale="log", title=title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)
