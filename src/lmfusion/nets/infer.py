"""Inference: both trained networks and their raw outputs (the infer stage's and the predictor's forward pass).

`to_input` is both networks' one input normalization (the training datasets use it too). `Networks.outputs` turns
preprocessed images into the raw outputs that `lmfusion.decoding.LandmarkDecoder` decodes: the regressor's
normalized coordinates and the U-Net's heatmap probabilities.

Legend: N images, K landmarks, S network input side, H x W heatmap pixels.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from lmfusion.errors import DataError
from lmfusion.nets.models import load_model


def to_input(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 images (N, S, S) or (S, S) to the networks' input: float32 (N, 1, S, S) in -1..1 (training and
    inference alike)."""
    x = torch.from_numpy(np.array(images_u8, dtype=np.float32, ndmin=3))  # a copy: read-only memmaps are fine
    return (x / 127.5 - 1.0)[:, None]  # (N, 1, S, S)


class Networks:
    """The two trained networks and their input sizes."""

    def __init__(self, regressor: torch.nn.Module, unet: torch.nn.Module, meta_reg: dict, meta_hm: dict,
                 device: str | None = None):
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.regressor = regressor.to(self.device).eval()
        self.unet = unet.to(self.device).eval()
        self.reg_size = int(meta_reg["input_size"])
        self.hm_size = int(meta_hm["input_size"])
        self.names = tuple(meta_reg["names"])
        if tuple(meta_hm["names"]) != self.names:
            raise DataError(f"the regressor's landmarks {self.names} differ from the U-Net's "
                            f"{tuple(meta_hm['names'])}: retrain both from one params.yaml")
        self.meta = {"regressor": meta_reg, "heatmap": meta_hm}

    @classmethod
    def load(cls, regressor_path: str | os.PathLike, heatmap_path: str | os.PathLike,
             device: str | None = None) -> Networks:
        regressor, meta_reg = load_model(regressor_path)
        unet, meta_hm = load_model(heatmap_path)
        return cls(regressor, unet, meta_reg, meta_hm, device)

    @torch.no_grad()
    def outputs(self, hm_images: np.ndarray, reg_images: np.ndarray, batch_size: int = 8,
                zooms: tuple[float, ...] = (1.0,)) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for preprocessed uint8 images (N, S_u, S_u) and (N, S_r, S_r).

        Returns coords_norm (N, K, 2) float32 and heatmaps (N, K, H, W) float16 probabilities (sigmoid), (N, K + 1,
        H, W) with the sacrum map last where the U-Net was trained with one (train_unet.sacrum_channel); float16 is
        the outputs' one precision, so cached and fresh outputs decode identically. `zooms` (infer.zooms): the
        networks also see each batch zoomed about its centre by every factor; coordinates and maps are mapped back
        and averaged, a zoomed-in view's maps only where it sees. (1.0,) is one plain pass.
        """
        coords, heatmaps = [], []
        for i in range(0, len(hm_images), batch_size):
            x_reg = to_input(reg_images[i:i + batch_size]).to(self.device)  # (n, 1, S_r, S_r)
            x_hm = to_input(hm_images[i:i + batch_size]).to(self.device)  # (n, 1, S_u, S_u)
            c_sum = h_sum = seen = 0.0
            for z in zooms:
                c = self.regressor(_zoom(x_reg, z)).float()  # (n, K, 2) normalized, about the centre 0.5
                logits = self.unet(_zoom(x_hm, z))[:, :len(self.names) + 1]  # the K maps, and the sacrum map
                maps, where = _unzoom(torch.sigmoid(logits.float()), z)
                c_sum, h_sum, seen = c_sum + (c if z == 1.0 else 0.5 + (c - 0.5) / z), h_sum + maps, seen + where
            # the average over the views that see each pixel (one plain view: division by 1, exact); a pixel no view
            # sees (only zoomed-in views were asked for) keeps probability 0
            coords.append((c_sum / len(zooms)).cpu().numpy())
            heatmaps.append((h_sum / torch.as_tensor(seen).clamp(min=1e-6)).cpu().numpy().astype(np.float16))
        return np.concatenate(coords).astype(np.float32), np.concatenate(heatmaps)


def _affine(x: torch.Tensor, scale: float) -> torch.Tensor:
    """`x` (n, c, H, W) resampled (bilinear, zeros outside) so that the output at centred coordinate u shows the input
    at u * scale: scale < 1 enlarges about the centre, > 1 shrinks."""
    theta = torch.tensor([[scale, 0.0, 0.0], [0.0, scale, 0.0]], dtype=x.dtype, device=x.device)
    grid = torch.nn.functional.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=True)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _zoom(x: torch.Tensor, z: float) -> torch.Tensor:
    """The network input zoomed by `z` about its centre (in -1..1, so the border pads with -1: black)."""
    return x if z == 1.0 else _affine(x + 1.0, 1.0 / z) - 1.0


def _unzoom(maps: torch.Tensor, z: float) -> tuple[torch.Tensor, torch.Tensor | float]:
    """A zoomed view's maps back on the unzoomed grid, and where they see (1 inside the view, 0 outside)."""
    if z == 1.0:
        return maps, 1.0
    back = _affine(maps, z)
    where = _affine(torch.ones_like(maps[:, :1]), z).clamp(0, 1)
    return back, where
