"""Both networks' forward pass with test-time zooms (Networks.outputs, infer.zooms): what a zoomed view sees is mapped
back onto the image's own grid, so stand-in networks that echo the image or point at its brightest spot give the
same answer at every zoom."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmfusion.nets.infer import Networks

NAMES = ("L1", "L2")
SIDE = 64


class _Echo(torch.nn.Module):
    """A U-Net stand-in: every landmark's logits are the input image itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(1, len(NAMES), 1, 1) * 4.0


class _Brightest(torch.nn.Module):
    """A regressor stand-in: every landmark at the intensity-weighted centre of the bright spot, normalized 0..1
    (pixel centres at (i + 0.5) / S would be off-centre by half a pixel; (i) / (S - 1) is centred)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.clamp(x[:, 0] - 0.5, min=0)  # (n, S, S): only the spot
        grid = torch.arange(x.shape[-1], dtype=x.dtype) / (x.shape[-1] - 1)
        cx = (w.sum(1) * grid).sum(-1) / w.sum((1, 2))
        cy = (w.sum(2) * grid).sum(-1) / w.sum((1, 2))
        return torch.stack([cx, cy], -1)[:, None].repeat(1, len(NAMES), 1)


def _networks() -> Networks:
    meta = {"input_size": SIDE, "names": list(NAMES)}
    return Networks(_Brightest(), _Echo(), meta, meta, device="cpu")


def _spot(x: float, y: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIDE, :SIDE] / (SIDE - 1)
    return (255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 0.04 ** 2))).astype(np.uint8)[None]


def test_one_plain_pass_is_the_default() -> None:
    net, image = _networks(), _spot(0.3, 0.6)
    for a, b in zip(net.outputs(image, image), net.outputs(image, image, zooms=(1.0,))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("zooms", [(0.8, 1.0, 1.25), (0.8, 0.9, 1.0, 1.1, 1.25)])
def test_zoomed_views_map_back_to_the_same_place(zooms) -> None:
    net, image = _networks(), _spot(0.35, 0.6)
    plain_xy, plain_maps = net.outputs(image, image)
    xy, maps = net.outputs(image, image, zooms=zooms)
    np.testing.assert_allclose(xy, plain_xy, atol=0.01)  # 0.6 px of 64
    peak = np.unravel_index(np.argmax(maps[0, 0]), maps[0, 0].shape)
    assert peak == np.unravel_index(np.argmax(plain_maps[0, 0]), plain_maps[0, 0].shape)
    np.testing.assert_allclose(maps.astype(np.float32), plain_maps.astype(np.float32), atol=0.06)


def test_a_zoomed_in_view_counts_only_where_it_sees() -> None:
    # a spot near the corner leaves the 1.25 view; the average there is the other views' alone, not diluted by zeros
    net, image = _networks(), _spot(0.04, 0.05)
    plain = net.outputs(image, image)[1].astype(np.float32)
    zoomed = net.outputs(image, image, zooms=(1.0, 1.25))[1].astype(np.float32)
    assert abs(zoomed[0, 0, 3, 3] - plain[0, 0, 3, 3]) < 0.02


@pytest.mark.parametrize("zooms", [(1.1, 1.25), (1.25,)])
def test_zoomed_in_views_alone_leave_what_none_sees_at_zero(zooms) -> None:
    # no plain view: the corners are outside every view, so nothing there (not 0 / 0), the centre as the plain pass
    net, image = _networks(), _spot(0.5, 0.5)
    plain = net.outputs(image, image)[1].astype(np.float32)
    maps = net.outputs(image, image, zooms=zooms)[1].astype(np.float32)
    assert np.isfinite(maps).all() and maps[0, 0, 0, 0] == 0.0
    np.testing.assert_allclose(maps[0, 0, 32, 32], plain[0, 0, 32, 32], atol=0.02)
