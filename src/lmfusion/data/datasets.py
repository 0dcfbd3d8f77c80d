"""Torch datasets over the prepared in-memory arrays; inputs go through the networks' one normalization
(lmfusion.nets.infer.to_input).

Legend: N images, K landmarks, S image side.

Each item is (input (1, S, S) float32, target, fell_back) where fell_back says whether the augmentation kept the
identity because every draw pushed a landmark off the image (counted by the training loop).
Augmentation randomness comes from `np.random.default_rng([seed, epoch, index])`: an item is the same whatever the
worker, the order or the process that loads it, and after a resume. Call `set_epoch` before each epoch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lmfusion.config import AugmentConfig
from lmfusion.coords import from_norm, to_norm
from lmfusion.data.augment import augment
from lmfusion.heatmaps import encode
from lmfusion.nets.infer import to_input


class _AugmentedDataset(Dataset):
    def __init__(self, images_u8: np.ndarray, aug: AugmentConfig | None, seed: int):
        self.images = images_u8  # (N, S, S) uint8
        self.aug = aug
        self.seed = int(seed)
        self.epoch = 0
        self.required: int | None = None  # landmarks the augmentation keeps inside; None: all

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _sample(self, index: int, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """The (S, S) image and its (K, 2) pixel landmarks, augmented when configured."""
        if self.aug is None:
            return self.images[index], xy, False
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return augment(self.images[index], xy, self.aug, rng, self.required)


class RegressorDataset(_AugmentedDataset):
    """Items: input (1, S, S), target (K, 2) normalized 0..1 coordinates (float32), fell_back."""

    def __init__(self, images_u8: np.ndarray, landmarks_norm: np.ndarray, aug: AugmentConfig | None, seed: int):
        super().__init__(images_u8, aug, seed)
        self.landmarks_norm = np.asarray(landmarks_norm, dtype=np.float64)  # (N, K, 2)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        s = self.images.shape[-1]
        xy = from_norm(self.landmarks_norm[index], s, s)  # (K, 2) pixels
        image, xy, fell_back = self._sample(index, xy)
        target = torch.from_numpy(to_norm(xy, s, s).astype(np.float32))  # (K, 2)
        return to_input(image)[0], target, fell_back


class HeatmapDataset(_AugmentedDataset):
    """Items: input (1, S, S), target (K, S, S) Gaussian heatmaps (float32), fell_back.

    Without augmentation the stored `targets` (N, K, S, S) are used when given; augmented samples get targets
    rendered again from their moved landmarks (see lmfusion.data.augment).
    """

    def __init__(self, images_u8: np.ndarray, landmarks_px: np.ndarray, sigma: float, aug: AugmentConfig | None,
                 seed: int, targets: np.ndarray | None = None, required: int | None = None):
        super().__init__(images_u8, aug, seed)
        self.required = required  # the auxiliary points beyond it (the sacrum anchor) may leave the image
        self.landmarks_px = np.asarray(landmarks_px, dtype=np.float64)  # (N, K, 2) at the image size
        self.sigma = float(sigma)
        self.targets = targets  # (N, K, S, S) float16 or None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        s = self.images.shape[-1]
        if self.aug is None and self.targets is not None:
            image, fell_back = self.images[index], False
            target = np.asarray(self.targets[index], dtype=np.float32)  # (K, S, S)
        else:
            image, xy, fell_back = self._sample(index, self.landmarks_px[index])
            target = encode(xy, s, s, self.sigma, dtype=np.float32)  # (K, S, S)
        return to_input(image)[0], torch.from_numpy(target), fell_back
