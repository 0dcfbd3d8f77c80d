"""The landmark decoder: raw network outputs -> every method's landmarks in the original images' pixels.

One codec owns the decode end to end (every method of lmfusion.decoding.methods, the fusion prior, the chain
decode, the rescaling from heatmap to original pixels, the scores and the study-level confidence), so the evaluate
stage, the report, `LandmarkPredictor` and `lmfusion predict` give the same coordinates for the same outputs. Pure
numpy: reading cached outputs needs no torch. Fitted by `lmfusion.decoding.fit`, saved as models/decoder.json.

"chain" names three things, one each:
- the method "chain" (and "chain_subpixel"): what `Decoded.xy["chain"]` holds, the answer of the fitted decode;
  where fitting found the fused or argmax landmarks better on the validation split (`ChainSettings.mode`), the
  method gives those, and the joint DP still gives the margin;
- the params section `chain:` (lmfusion.config.decoding.ChainConfig): the grid the weights are fitted on, and the flag;
- the module `lmfusion.decoding.chain`: the joint DP over landmark candidates (ChainModel, ChainSettings).

Legend: N images, K landmarks, H x W heatmap pixels. Raw outputs are the regressor's normalized coordinates
(N, K, 2) in 0..1 and the U-Net's probabilities (N, K, H, W); sizes are the original (width, height) per image and
spacing the original mm per pixel (x, y).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmfusion import metrics
from lmfusion.coords import from_norm, rescale
from lmfusion.decoding import chain, fusion, peaks
from lmfusion.decoding.methods import METHODS
from lmfusion.errors import DataError

log = logging.getLogger("lmfusion")

DECODER_FILE = "decoder.json"  # in the models folder: the fitted decoder (the evaluate stage writes it)
LEGACY_DECODER_FILE = "fusion.json"  # its name before this release: still read, with a warning


@dataclass(frozen=True)
class Decoded:
    """Every method's landmarks in original pixels, with scores and the study-level level confidence."""

    xy: dict[str, np.ndarray]  # method -> (N, K, 2)
    scores: dict[str, np.ndarray]  # method -> (N, K) U-Net probability at the method's point
    fallback: np.ndarray  # (N, K) True where the fused product was ~0 and the regressed point was kept
    margin: np.ndarray  # (N,) chain score minus its best rival sharing no position (NaN without a chain model)
    end_fit: np.ndarray  # (N,) the chain's score over the steps at its end (NaN without a chain model)
    level_uncertain: np.ndarray  # (N,) bool: margin or end fit below the decoder's threshold, or the level check
    # disagreeing (`LandmarkDecoder.flag`)
    prior_used: np.ndarray  # (N, K) bool: where "gated" took the fused landmark (the heatmap was ambiguous)
    level_check: np.ndarray  # (N,) the answer's metrics.level_shift from the check chain (NaN: no check)
    check_answered: np.ndarray  # (N,) bool: "chain" gives the check's landmarks (`check_confidence`)


CHECK_ANSWERS = ("chain", "chain_subpixel")  # the methods whose landmarks the level check gives where it answers


@dataclass(frozen=True)
class HeatmapDecoded:
    """Every method's landmarks in heatmap pixels, (N, K, 2) each, and the chain's margin, end fit and level check
    (N,)."""

    xy: dict[str, np.ndarray]
    fallback: np.ndarray  # (N, K) bool
    margin: np.ndarray  # (N,)
    end_fit: np.ndarray  # (N,)
    prior_used: np.ndarray  # (N, K) bool
    level_check: np.ndarray  # (N,) NaN without a check
    check_answered: np.ndarray  # (N,) bool

    @property
    def fallbacks(self) -> int:
        return int(self.fallback.sum())


@dataclass(frozen=True)
class LandmarkDecoder:
    """Decodes raw outputs with one fitted setting.

    Args:
        sigma_hm: (K,) fusion prior sigma in heatmap pixels (inf: plain argmax, 0: the regressed point).
        min_product: below this peak of prior x heatmap the regressed point is kept (a fallback).
        chain_model: the neighbour displacement model; None decodes "chain" as "fused" (with a NaN margin).
        chain: the chain decode's weights, mode and lengths (lmfusion.decoding.chain.ChainSettings); needed with a
            chain_model.
        margin_threshold: a study whose chain margin is below it is flagged level_uncertain (0: never).
        end_threshold: a study whose chain end fit (lmfusion.decoding.chain.end_fit) is below it is flagged
            level_uncertain too; None: never (a decoder file of before the end fit).
        check_weight: the level check: the chain decoded again with this pairwise weight, a strong shape prior (no
            regressor prior, no trusted regressed point); a study whose "chain" answer sits a level away from it is
            flagged level_uncertain too. None: no check (a decoder file of before it).
        check_confidence: where the check names other levels and the answer's mean U-Net probability is below
            this (a study less sure than the validation split vouches for), "chain" gives the check's landmarks
            (its margin and end fit stay the fitted chain's). None: never (the check only flags).
        best_method: the method that was best on the validation split (what `lmfusion predict` uses by default).
        gate_ratio: "gated" takes the fused landmark where the heatmap is ambiguous, its strongest rival peak (at
            least gate_sep heatmap px from the top one) at least gate_ratio x the top peak, else the argmax
            (0: always fused; inf: always argmax).
        gate_sep: heatmap px (fusion.gate_sep scaled by lmfusion.config.geometry); needed where 0 < gate_ratio < inf.

    The lengths are the fitted heatmaps' pixels, stored in decoder.json, so decoding needs no params.yaml.
    """

    sigma_hm: np.ndarray
    min_product: float
    chain_model: chain.ChainModel | None = None
    chain: chain.ChainSettings | None = None
    margin_threshold: float = 0.0
    best_method: str = "fused"
    gate_ratio: float = np.inf
    gate_sep: float | None = None
    reliability: np.ndarray | None = None  # (K,) the regressor's share of val landmarks within the target radius
    end_threshold: float | None = None
    check_weight: float | None = None
    check_confidence: float | None = None

    def __post_init__(self) -> None:
        if self.chain_model is not None and self.chain is None:
            raise DataError("decoder: a chain model needs its chain settings (chain)")
        if 0 < self.gate_ratio < np.inf and not (self.gate_sep is not None and self.gate_sep > 0):
            raise DataError(f"decoder: gate ratio {self.gate_ratio:g} needs a gate_sep > 0 heatmap px, "
                            f"got {self.gate_sep}")
        if self.check_weight is not None and not (np.isfinite(self.check_weight) and self.check_weight >= 0):
            raise DataError(f"decoder: check_weight must be null or a finite number >= 0, got {self.check_weight}")
        if self.check_confidence is not None and not 0 <= self.check_confidence <= 1:
            raise DataError(f"decoder: check_confidence must be null or a probability in [0, 1], got "
                            f"{self.check_confidence}")

    def decode(self, coords_norm: np.ndarray, heatmaps: np.ndarray, sizes: np.ndarray,
               spacing: np.ndarray | None = None, anchor: np.ndarray | None = None) -> Decoded:
        """Every method's landmarks in the original images' pixels.

        Args:
            coords_norm: (N, K, 2) regressor outputs, 0..1.
            heatmaps: (N, K, H, W) U-Net probabilities, or (N, K + 1, H, W) with the sacrum map last (a U-Net
                trained with train_unet.sacrum_channel).
            sizes: (N, 2) original (width, height).
            spacing: (N, 2) original mm per pixel; None: 1 mm (only the chain's displacement model uses it).
            anchor: (N, H, W) the sacrum map, where heatmaps hold only the K landmarks' maps.
        """
        heatmaps, extra = split_maps(_check_4d(np.asarray(heatmaps)), np.shape(coords_norm)[1])
        anchor = extra if anchor is None else anchor
        n, k, h, w = heatmaps.shape
        sizes = np.asarray(sizes, np.float64)
        spacing = np.ones((n, 2)) if spacing is None else np.asarray(spacing, np.float64)
        in_hm = self.decode_hm(heatmaps, from_norm(coords_norm, w, h), spacing * sizes / np.array([w, h]), anchor)
        src = (np.float64(w), np.float64(h))
        dst = (sizes[:, None, 0], sizes[:, None, 1])
        xy = {m: rescale(in_hm.xy[m], src, dst) for m in METHODS}
        scores = {m: peaks.values_at(heatmaps, in_hm.xy[m]) for m in METHODS}
        return Decoded(xy=xy, scores=scores, fallback=in_hm.fallback, margin=in_hm.margin, end_fit=in_hm.end_fit,
                       level_uncertain=self.flag(in_hm.margin, in_hm.end_fit, in_hm.level_check),
                       prior_used=in_hm.prior_used, level_check=in_hm.level_check,
                       check_answered=in_hm.check_answered)

    def flag(self, margin: np.ndarray, end_fit: np.ndarray, level_check: np.ndarray | None = None) -> np.ndarray:
        """(N,) level_uncertain: the chain's margin or its end fit, (N,) each, below the decoder's threshold, or the
        level check (N,) a level or more away (NaN: no check)."""
        low_end = end_fit < self.end_threshold if self.end_threshold is not None else False
        off = disagrees(level_check) if level_check is not None else False
        return np.asarray(margin < self.margin_threshold) | low_end | off

    def decode_hm(self, heatmaps: np.ndarray, xy_reg_hm: np.ndarray, mm_per_hm_px: np.ndarray | None = None,
                  anchor: np.ndarray | None = None) -> HeatmapDecoded:
        """Every method in heatmap pixels, chunk by chunk (bounded memory for any N).

        Args:
            heatmaps: (N, K, H, W) probabilities.
            xy_reg_hm: (N, K, 2) regressed landmarks in heatmap pixels.
            mm_per_hm_px: (N, 2) mm per heatmap pixel for the chain's displacement model (None: 1 mm).
            anchor: (N, H, W) the sacrum map, for the chain's end node (ChainSettings.end_node).
        """
        heatmaps = _check_4d(np.asarray(heatmaps))
        xy_reg_hm = np.asarray(xy_reg_hm, dtype=np.float64)
        k = fusion.check_shapes(heatmaps, xy_reg_hm)
        sigma = fusion.sigma_vector(self.sigma_hm, k)
        n = len(xy_reg_hm)
        xy = {m: np.empty((n, k, 2)) for m in METHODS}
        xy["direct"] = xy_reg_hm.copy()
        fallback, prior_used = np.zeros((n, k), bool), np.zeros((n, k), bool)
        for sl, hm, xr in peaks.chunks(heatmaps, xy_reg_hm):
            xy["argmax"][sl], _ = peaks.argmax(hm)
            xy["argmax_subpixel"][sl] = peaks.refine(hm, xy["argmax"][sl])
            out = fusion.fuse_chunk(hm, xr, sigma, self.min_product, subpixel=True)
            xy["fused"][sl], xy["fused_subpixel"][sl] = out["xy"], out["xy_sub"]
            fallback[sl] = out["fallback"]
            prior_used[sl] = self.gate(hm)
        for sub in ("", "_subpixel"):
            xy["gated" + sub] = np.where(prior_used[..., None], xy["fused" + sub], xy["argmax" + sub])
        margin, end, check = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        answered = np.zeros(n, bool)
        if self.chain_model is not None:
            mm = np.ones((n, 2)) if mm_per_hm_px is None else mm_per_hm_px
            res = chain.decode(heatmaps, xy_reg_hm, mm, sigma, self.chain_model, self.chain, self.min_product,
                               self.reliability, anchor)
            margin, end = res.margin, res.end_fit
        if self.chain_model is None or self.chain.mode == "fused":
            xy["chain"], xy["chain_subpixel"] = xy["fused"], xy["fused_subpixel"]
        elif self.chain.mode == "argmax":
            xy["chain"], xy["chain_subpixel"] = xy["argmax"], xy["argmax_subpixel"]
        else:
            xy["chain"], xy["chain_subpixel"] = res.xy_hm, res.xy_sub_hm
        if self.chain_model is not None and self.check_weight is not None:
            strict = dataclasses.replace(self.chain, mode="chain", prior_weight=0.0, trust_regressor=False,
                                         pairwise_weight=self.check_weight)
            other = chain.decode(heatmaps, xy_reg_hm, mm, sigma, self.chain_model, strict, self.min_product,
                                 self.reliability, anchor, margin=False)
            check = metrics.level_shift(xy["chain"], other.xy_hm, mm).astype(np.float64)
            if self.check_confidence is not None:
                sure = peaks.values_at(heatmaps, xy["chain"]).mean(1)  # (N,) the answer's mean probability
                answered = disagrees(check) & (sure < self.check_confidence)
                for m, theirs in zip(CHECK_ANSWERS, (other.xy_hm, other.xy_sub_hm)):
                    xy[m] = np.where(answered[:, None, None], theirs, xy[m])  # a new array: xy[m] may be fused's
        return HeatmapDecoded(xy=xy, fallback=fallback, margin=margin, end_fit=end, prior_used=prior_used,
                              level_check=check, check_answered=answered)

    def gate(self, hm: np.ndarray) -> np.ndarray:
        """(S, K) where "gated" uses the fusion prior on (S, K, H, W) float32 maps: an ambiguous heatmap."""
        if np.isinf(self.gate_ratio) or self.gate_ratio <= 0:  # never or always: no peaks to search
            return np.full(hm.shape[:2], self.gate_ratio <= 0)
        return peaks.rival_ratio(hm, self.gate_sep, self.min_product) >= self.gate_ratio

    def replace(self, **changes: Any) -> LandmarkDecoder:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: an infinite sigma (plain argmax) or margin threshold is written "inf"."""
        return {"sigma_hm": sigma_to_json(self.sigma_hm), "min_product": self.min_product,
                "chain_model": None if self.chain_model is None else self.chain_model.to_dict(),
                "chain": None if self.chain is None else self.chain.to_dict(),
                "margin_threshold": sigma_to_json([self.margin_threshold])[0],
                "best_method": self.best_method, "gate_ratio": sigma_to_json([self.gate_ratio])[0],
                "gate_sep": self.gate_sep,
                "reliability": None if self.reliability is None else [float(r) for r in self.reliability],
                "end_threshold": None if self.end_threshold is None else float(self.end_threshold),
                "check_weight": self.check_weight, "check_confidence": self.check_confidence}

    @classmethod
    def load(cls, path: str | os.PathLike) -> LandmarkDecoder:
        """The decoder the evaluate stage fitted: a decoder.json file, or a models folder holding one. A field this
        release needs and an older file lacks is a one-line DataError naming both."""
        file = decoder_path(path)
        raw = json.loads(file.read_text())
        model, settings = raw.get("chain_model"), raw.get("chain")
        gate_ratio = float(raw.get("gate_ratio", "inf"))
        gate_sep = _field(raw, "gate_sep", file) if 0 < gate_ratio < np.inf else raw.get("gate_sep")
        return cls(sigma_hm=np.asarray([float(s) for s in _field(raw, "sigma_hm", file)], dtype=np.float64),
                   min_product=float(_field(raw, "min_product", file)),
                   chain_model=None if model is None else chain.ChainModel.from_dict(model),
                   chain=None if model is None and not settings else _chain_settings(_field(raw, "chain", file), file),
                   margin_threshold=float(raw.get("margin_threshold", 0.0)),
                   best_method=raw.get("best_method", "fused"), gate_ratio=gate_ratio,
                   gate_sep=None if gate_sep is None else float(gate_sep),
                   reliability=None if raw.get("reliability") is None else np.asarray(raw["reliability"], float),
                   end_threshold=None if raw.get("end_threshold") is None else float(raw["end_threshold"]),
                   check_weight=None if raw.get("check_weight") is None else float(raw["check_weight"]),
                   check_confidence=None if raw.get("check_confidence") is None else float(raw["check_confidence"]))


def disagrees(level_check: np.ndarray) -> np.ndarray:
    """(N,) bool: a level check (`Decoded.level_check`) a level or more away; NaN (no check) never."""
    return np.abs(np.nan_to_num(np.asarray(level_check, np.float64))) >= 0.5


def _field(raw: dict, key: str, file: Path, where: str = "") -> Any:
    """raw[key], or a one-line error naming the decoder file and the field."""
    if key not in raw:
        raise DataError(f"{file}: field {where}{key} missing (written by an older release); rerun the evaluate stage "
                        f"(dvc repro evaluate)")
    return raw[key]


def _chain_settings(d: dict, file: Path) -> chain.ChainSettings:
    """The chain settings of a decoder file. A file of before rival_sep and end_radius has their one length min_sep
    (the margin's rival distance, and half of it the end check's radius): read as exactly that."""
    if "min_sep" in d and not {"rival_sep", "end_radius"} & set(d):
        d = {**{k: v for k, v in d.items() if k != "min_sep"}, "rival_sep": d["min_sep"],
             "end_radius": d["min_sep"] / 2}
    for key in ("rival_sep", "end_radius"):
        _field(d, key, file, "chain.")
    return chain.ChainSettings.from_dict(d)


def split_maps(heatmaps: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, K, H, W) landmark maps and the (N, H, W) sacrum map (None without one) of a U-Net's K or K + 1 maps."""
    if heatmaps.ndim == 4 and heatmaps.shape[1] == k + 1:
        return heatmaps[:, :k], heatmaps[:, k]
    return heatmaps, None


def _check_4d(heatmaps: np.ndarray) -> np.ndarray:
    if heatmaps.ndim != 4:
        raise DataError(f"expected heatmaps of shape (N, K, H, W), got {heatmaps.shape}")
    return heatmaps


def sigma_to_json(sigma_hm: np.ndarray) -> list:
    """(K,) sigmas as strict JSON: an infinite sigma (plain argmax) is written "inf"."""
    return [float(s) if np.isfinite(s) else "inf" for s in sigma_hm]


def decoder_path(path: str | os.PathLike) -> Path:
    """The decoder file at `path`, or in the models folder `path`; the old name (fusion.json) with a warning."""
    path = Path(path)
    folder, name = (path, DECODER_FILE) if path.is_dir() else (path.parent, path.name)
    if name == DECODER_FILE and not (folder / name).exists() and (folder / LEGACY_DECODER_FILE).is_file():
        log.warning("%s: read under its old name; rerun the evaluate stage (dvc repro) to write %s, the only name "
                    "the next release reads", folder / LEGACY_DECODER_FILE, DECODER_FILE)
        return folder / LEGACY_DECODER_FILE
    return folder / name
