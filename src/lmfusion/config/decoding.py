"""The params sections of the decoder, the evaluation and the report (fusion, chain, evaluate, report), as frozen
dataclasses. Only the evaluate and report stages (and the predictor) import this module, so a decoding param added
or checked here reruns those and never a training stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from lmfusion.config.sections import _check


@dataclass(frozen=True)
class FusionConfig:
    # prior sigma in pixels of a heatmap.reference_size heatmap (lmfusion.config.geometry), or fitted on val residuals
    sigma: Union[float, Literal["auto"]] = "auto"
    min_product: float = 1e-4  # peak of prior x heatmap below this: fall back to the regressed coordinate
    auto_scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
    # the method "gated": the prior only where the heatmap is ambiguous (rival peak >= gate x the top peak)
    gate: Union[float, Literal["auto"]] = "auto"  # auto: fitted on val over gate_ratios (0 = fused, inf = argmax)
    gate_ratios: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    gate_sep: float = 6.0  # px at heatmap.reference_size: a rival peak nearer the top one than this is the same peak

    def validate(self, s: str) -> None:
        if self.sigma != "auto":
            _check(0 < self.sigma <= 1e4, f"{s}.sigma", "'auto' or a number of pixels > 0", self.sigma)
        _check(0 <= self.min_product < 1, f"{s}.min_product", "in [0, 1)", self.min_product)
        _check(len(self.auto_scales) >= 1 and min(self.auto_scales) > 0, f"{s}.auto_scales",
               "a non-empty list of numbers > 0", list(self.auto_scales))
        _check(self.gate == "auto" or self.gate >= 0, f"{s}.gate", "'auto' or a ratio >= 0 (inf: never)", self.gate)
        _check(len(self.gate_ratios) >= 1 and min(self.gate_ratios) >= 0, f"{s}.gate_ratios",
               "a non-empty list of ratios >= 0", list(self.gate_ratios))
        _check(self.gate_sep > 0, f"{s}.gate_sep", "> 0 px", self.gate_sep)


@dataclass(frozen=True)
class ChainConfig:
    """The chain decode: each weight and the candidate count either fixed or `auto` (fitted on val over its grid)."""

    unit: Literal["mm", "spine"] = "mm"  # units of the neighbour displacement model
    prior_weight: Union[float, Literal["auto"]] = "auto"  # weight of the log fusion prior in the unary score
    pairwise_weight: Union[float, Literal["auto"]] = "auto"  # weight of the displacement log-density
    candidates: Union[int, Literal["auto"]] = "auto"  # heatmap peaks per landmark (the regressed point is added)
    prior_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    pairwise_weights: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25)
    # the fuller search first, so a tie on val keeps it: a channel that fires a level up and down on both sides can
    # rank its right peak fifth or lower
    candidate_counts: tuple[int, ...] = (8, 4)
    lend_penalty: Union[float, None] = None  # null: no lending of the same-kind neighbours' peaks
    rival_sep: float = 6.0  # px at heatmap.reference_size: the level margin's rival chain moves every landmark this far
    # level_uncertain when the chain's margin is below this (0: never; auto: fitted on val) or its end fit below
    # end_threshold (null: never; auto: fitted on val); an auto threshold flags flag_rate of val's right studies when
    # val has no wrong-level one; against val's wrong-level studies it flags at most flag_budget of the right ones (or
    # falls back to flag_rate)
    margin_threshold: Union[float, Literal["auto"]] = 0.0
    end_threshold: Union[float, Literal["auto"], None] = "auto"
    flag_rate: float = 0.05
    flag_budget: float = 0.15
    # the regressed candidate scores at least the regressor's val reliability x the channel's top peak: auto
    # (fitted on val, with and without), true or false
    trust_regressor: Union[bool, Literal["auto"]] = "auto"
    # the S1 body (the U-Net's sacrum map, train_unet.sacrum_channel) as one more node below the last landmark: auto
    # (fitted on val, with and without, where the U-Net has the map), true or false
    end_node: Union[bool, Literal["auto"]] = True
    # nothing below the last landmark looks like the one before it: the weight of log(1 - landmark K-2's map one step
    # beyond the chain's end), every chain's, not fitted (0: off)
    end_check: float = 1.0
    end_radius: float = 3.0  # px at heatmap.reference_size: the end check reads the map's maximum this near its point
    # the level check: the chain decoded again with this pairwise weight (a strong shape prior, no regressor prior);
    # a study whose answer sits a level away from it is flagged level_uncertain too (null: no check)
    check_weight: Union[float, None] = 0.5
    # where the check names other levels and the answer's mean U-Net probability is below this, "chain" gives the
    # check's landmarks: auto (the flag_rate quantile of val's answers), a number, or null (the check only flags)
    check_confidence: Union[float, Literal["auto"], None] = "auto"

    def validate(self, s: str) -> None:
        for k in ("prior_weight", "pairwise_weight", "margin_threshold"):
            v = getattr(self, k)
            _check(v == "auto" or v >= 0, f"{s}.{k}", "'auto' or a number >= 0", v)
        _check(self.candidates == "auto" or self.candidates >= 1, f"{s}.candidates", "'auto' or an integer >= 1",
               self.candidates)
        for k in ("prior_weights", "pairwise_weights"):
            v = getattr(self, k)
            _check(len(v) >= 1 and min(v) >= 0, f"{s}.{k}", "a non-empty list of numbers >= 0", list(v))
        _check(len(self.candidate_counts) >= 1 and min(self.candidate_counts) >= 1, f"{s}.candidate_counts",
               "a non-empty list of integers >= 1", list(self.candidate_counts))
        _check(self.lend_penalty is None or self.lend_penalty >= 0, f"{s}.lend_penalty", "null or a number >= 0",
               self.lend_penalty)
        _check(self.rival_sep > 0, f"{s}.rival_sep", "> 0 px", self.rival_sep)
        _check(0 <= self.end_check <= 1e3, f"{s}.end_check", "a number >= 0 (0: off)", self.end_check)
        _check(self.check_weight is None or 0 <= self.check_weight <= 1e3, f"{s}.check_weight",
               "null or a number >= 0", self.check_weight)
        _check(self.check_confidence in ("auto", None) or 0 <= self.check_confidence <= 1, f"{s}.check_confidence",
               "'auto', null or a probability in [0, 1]", self.check_confidence)
        _check(self.end_radius >= 0, f"{s}.end_radius", ">= 0 px (0: the point itself)", self.end_radius)
        _check(self.end_threshold in ("auto", None) or self.end_threshold <= 0, f"{s}.end_threshold",
               "'auto', null or a number <= 0 (an end fit is never above 0)", self.end_threshold)
        _check(0 < self.flag_rate < 1, f"{s}.flag_rate", "a share in (0, 1)", self.flag_rate)
        _check(0 < self.flag_budget <= 1, f"{s}.flag_budget", "a share in (0, 1]", self.flag_budget)

    def grid(self) -> dict[str, tuple]:
        """The values fit_chain tries: a fixed param is a grid of one."""
        pick = lambda fixed, values: values if fixed == "auto" else (fixed,)  # noqa: E731
        return {"prior_weights": pick(self.prior_weight, self.prior_weights),
                "pairwise_weights": pick(self.pairwise_weight, self.pairwise_weights),
                "candidate_counts": pick(self.candidates, self.candidate_counts),
                "lend_penalties": (self.lend_penalty,),
                "trusts": (False, True) if self.trust_regressor == "auto" else (self.trust_regressor,),
                "end_nodes": (False, True) if self.end_node == "auto" else (self.end_node,),
                "end_check": self.end_check}


@dataclass(frozen=True)
class EvaluateConfig:
    radii: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0)  # mm
    target_radius: float = 8.0  # mm; the paper's headline radius
    n_overlays: int = 4
    n_worst: int = 4

    def validate(self, s: str) -> None:
        _check(len(self.radii) >= 1 and min(self.radii) > 0, f"{s}.radii", "a list of radii > 0 mm",
               list(self.radii))
        _check(self.target_radius in self.radii, f"{s}.target_radius", f"one of radii {list(self.radii)}",
               self.target_radius)
        _check(self.n_overlays >= 0, f"{s}.n_overlays", ">= 0", self.n_overlays)
        _check(self.n_worst >= 0, f"{s}.n_worst", ">= 0", self.n_worst)


@dataclass(frozen=True)
class ReportConfig:
    sigma_sweep: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

    def validate(self, s: str) -> None:
        _check(len(self.sigma_sweep) >= 1 and min(self.sigma_sweep) > 0, f"{s}.sigma_sweep",
               "a list of sigmas > 0", list(self.sigma_sweep))
