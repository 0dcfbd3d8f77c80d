"""The chain decode's displacement model: a Gaussian of each step between consecutive landmarks (and of the end step
to the S1 body), fitted on the training split's ground truth.

Legend: N studies, K landmarks (top to bottom); (x, y) in original pixels with (N, 2) mm per pixel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from lmfusion.anatomy import sacrum_anchor
from lmfusion.errors import DataError, ParamError

UNITS = ("mm", "spine")
COV_REG = 0.05  # added variance (COV_REG x mean step)^2: a degenerate fit (one study) stays invertible


@dataclass(frozen=True)
class ChainModel:
    """Gaussian model of the step k -> k + 1 between consecutive landmarks, in `unit`: "mm", or "spine" (mm divided
    by the chain length, first to last landmark in mm: the truth's when fitting, the regressed chain's at decode)."""

    mean: np.ndarray  # (K-1, 2)
    cov: np.ndarray  # (K-1, 2, 2), regularised
    unit: str = "mm"
    end_mean: np.ndarray | None = None  # (2,) the step from the last landmark to the end node (the S1 body)
    end_cov: np.ndarray | None = None  # (2, 2)

    def __post_init__(self) -> None:
        mean, cov = np.asarray(self.mean, np.float64), np.asarray(self.cov, np.float64)
        if self.unit not in UNITS:
            raise ParamError(f"chain model unit: expected one of {UNITS}, got {self.unit!r}")
        if mean.ndim != 2 or mean.shape[1] != 2 or cov.shape != (len(mean), 2, 2) or not np.isfinite(cov).all():
            raise DataError(f"chain model: expected mean (K-1, 2), finite cov (K-1, 2, 2); got {mean.shape}, "
                            f"{cov.shape}")
        object.__setattr__(self, "mean", mean)  # frozen: the arrays are normalised once, here
        object.__setattr__(self, "cov", cov)
        if (self.end_mean is None) != (self.end_cov is None):
            raise DataError("chain model: the end step needs both end_mean and end_cov")
        if self.end_mean is not None:
            end_mean, end_cov = np.asarray(self.end_mean, np.float64), np.asarray(self.end_cov, np.float64)
            if end_mean.shape != (2,) or end_cov.shape != (2, 2) or not np.isfinite(end_cov).all():
                raise DataError(f"chain model: expected end_mean (2,), finite end_cov (2, 2); got {end_mean.shape}, "
                                f"{end_cov.shape}")
            object.__setattr__(self, "end_mean", end_mean)
            object.__setattr__(self, "end_cov", end_cov)

    @property
    def has_end(self) -> bool:
        return self.end_mean is not None

    def with_end(self) -> ChainModel:
        """The model of the K + 1 nodes: the end step appended as the last one."""
        if self.end_mean is None or self.end_cov is None:
            raise DataError("chain model: no end step was fitted (the training split has fewer than 3 landmarks)")
        return ChainModel(np.vstack([self.mean, self.end_mean]), np.concatenate([self.cov, self.end_cov[None]]),
                          self.unit)

    @property
    def precision(self) -> np.ndarray:
        """(K-1, 2, 2) inverse covariances."""
        return np.linalg.inv(self.cov)

    def to_dict(self) -> dict:
        end = {} if self.end_mean is None else {"end_mean": self.end_mean.tolist(), "end_cov": self.end_cov.tolist()}
        return {"unit": self.unit, "mean": self.mean.tolist(), "cov": self.cov.tolist(), **end}

    @classmethod
    def from_dict(cls, d: dict) -> ChainModel:
        if not {"unit", "mean", "cov"} <= set(d) <= {"unit", "mean", "cov", "end_mean", "end_cov"}:
            raise DataError(f"chain model: expected keys unit, mean, cov (and end_mean, end_cov), got {sorted(d)}")
        end = {k: np.asarray(d[k], np.float64) if k in d else None for k in ("end_mean", "end_cov")}
        return cls(mean=np.asarray(d["mean"], np.float64), cov=np.asarray(d["cov"], np.float64), unit=d["unit"],
                   **end)


def chain_length(xy: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(N,) mm from the first to the last landmark of (N, K, 2) points with (N, 2) mm per px."""
    return np.linalg.norm((xy[:, -1] - xy[:, 0]) * scale, axis=-1)


def fit_chain_model(xy: np.ndarray, spacing: np.ndarray, unit: str = "mm") -> ChainModel:
    """Mean and covariance of each consecutive step, from the training split's ground truth, and (K >= 3) of the end
    step to the S1 body extrapolated from it (lmfusion.anatomy.sacrum_anchor), the chain's optional end node.

    Args:
        xy: (N, K, 2) ground-truth landmarks in original pixels; NaN landmarks are left out of their steps.
        spacing: (N, 2) mm per pixel in x and y.
        unit: "mm" or "spine" (steps divided by the study's own ground-truth chain length).
    """
    xy, spacing = np.asarray(xy, np.float64), np.asarray(spacing, np.float64)
    if xy.ndim != 3 or xy.shape[1] < 2 or xy.shape[2] != 2 or spacing.shape != (len(xy), 2):
        raise DataError(f"chain model fit: expected (N, K >= 2, 2) landmarks and (N, 2) spacing, got {xy.shape}, "
                        f"{spacing.shape}")
    model = _step_model(xy, spacing, unit, chain_length(xy, spacing))
    end = sacrum_anchor(xy * spacing[:, None], range(xy.shape[1]))  # (N, 2) mm: the S1 body as training draws it
    if end is None:
        return model
    full = _step_model(np.concatenate([xy[:, -1:], (end / spacing)[:, None]], 1), spacing, unit,
                       chain_length(xy, spacing), reg_step=np.linalg.norm(model.mean, axis=-1).mean())
    return dataclasses.replace(model, end_mean=full.mean[0], end_cov=full.cov[0])


def _step_model(xy: np.ndarray, spacing: np.ndarray, unit: str, length: np.ndarray,
                reg_step: float | None = None) -> ChainModel:
    """The Gaussian of each step of (N, K, 2) points, regularised by COV_REG x reg_step (default: the mean step)."""
    step = np.diff(xy, axis=1) * spacing[:, None]  # (N, K-1, 2) mm
    if unit == "spine":
        step = step / length[:, None, None]
    ok = np.isfinite(step).all(-1)  # (N, K-1)
    count = ok.sum(0)
    if np.any(count == 0):
        raise DataError("chain model fit: a pair of consecutive landmarks has no study with both annotated")
    mean = np.where(ok[..., None], step, 0).sum(0) / count[:, None]  # (K-1, 2)
    r = np.where(ok[..., None], step - mean, 0)
    cov = np.einsum("nki,nkj->kij", r, r) / count[:, None, None]  # (K-1, 2, 2)
    reg = (COV_REG * (np.linalg.norm(mean, axis=-1).mean() if reg_step is None else reg_step)) ** 2
    return ChainModel(mean=mean, cov=cov + (reg if reg > 0 else 1.0) * np.eye(2), unit=unit)
