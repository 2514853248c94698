"""Distribution shift between the canary and the stable version, from Prometheus counts over one window.

Pure maths on count vectors; docs/ml-analysis.md explains the signals, their defaults and their limits.

Inputs are `Counts`: for classifiers, predictions per class label (`sluice_serving_predicted_class_total`); for
histograms (regressors' `sluice_serving_predictions`, `sluice_serving_input_feature`), the cumulative count per
upper bound `le`, exactly as Prometheus exposes buckets (`+Inf` included). Both sides are first put on the same
categories (`aligned`): class labels are the union of both sides' labels (a class missing on one side counts 0);
histogram buckets are the bounds both sides expose (cumulative counts are exact at a shared bound, so buckets
present on one side only are merged into the next shared one, never guessed).

- PSI (population stability index): sum over categories of (p - q) * ln(p / q), p and q the two sides'
  proportions. Each proportion is floored at `EPSILON` (1e-4) first, so an empty category on one side adds a
  large but finite term; a category empty on both sides adds 0. PSI is symmetric, >= 0, 0 for identical
  proportions, and at most 2 * ln(1 / EPSILON) ~ 18.4.
- KS (Kolmogorov-Smirnov distance): the largest gap between the two cumulative distributions over the ordered
  categories, in [0, 1]. With buckets it is measured only at bucket bounds, so it is a lower bound of the
  distance between the underlying continuous distributions. Classes are ordered numerically when every label is
  a number, else as text, numbers first; KS of unordered classes depends on that order (see the doc).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

EPSILON = 1e-4
"""Floor of each proportion in PSI: an empty category counts as 0.01 % of its side."""

INF_BOUND = "+Inf"


class CountKind(StrEnum):
    CLASSES = "classes"
    """Keys are class labels, values counts."""
    BUCKETS = "buckets"
    """Keys are histogram upper bounds (`le`, `+Inf` included), values cumulative counts."""


@dataclass(frozen=True)
class Counts:
    """The canary's and the stable version's observations of one distribution over the same window."""

    kind: CountKind
    canary: Mapping[str, float]
    stable: Mapping[str, float]


@dataclass(frozen=True)
class Aligned:
    """Both sides on the same ordered categories: per-category counts, never negative."""

    categories: tuple[str, ...]
    canary: tuple[float, ...]
    stable: tuple[float, ...]

    @property
    def canary_total(self) -> float:
        return sum(self.canary)

    @property
    def stable_total(self) -> float:
        return sum(self.stable)


def aligned(counts: Counts) -> Aligned:
    """The two sides on shared, ordered categories (see the module docstring)."""
    if counts.kind is CountKind.CLASSES:
        labels = sorted(set(counts.canary) | set(counts.stable), key=_class_order)
        return Aligned(
            tuple(labels),
            tuple(max(counts.canary.get(label, 0.0), 0.0) for label in labels),
            tuple(max(counts.stable.get(label, 0.0), 0.0) for label in labels),
        )
    canary, stable = _cumulative(counts.canary), _cumulative(counts.stable)
    shared = sorted(set(canary) & set(stable))
    if not shared or shared[-1] != math.inf:
        # Without a shared +Inf bucket the totals are unknown: treat every observation as one bucket.
        shared = [*shared, math.inf] if canary and stable else []
    return Aligned(
        tuple(_bound_label(bound) for bound in shared),
        _per_bucket(canary, shared),
        _per_bucket(stable, shared),
    )


def psi(canary: Sequence[float], stable: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index of two count vectors over the same categories; 0 when either side is empty."""
    canary_total, stable_total = sum(canary), sum(stable)
    if canary_total <= 0 or stable_total <= 0:
        return 0.0
    index = 0.0
    for canary_count, stable_count in zip(canary, stable, strict=True):
        if canary_count <= 0 and stable_count <= 0:
            continue
        p = max(canary_count / canary_total, epsilon)
        q = max(stable_count / stable_total, epsilon)
        index += (p - q) * math.log(p / q)
    return index


def ks(canary: Sequence[float], stable: Sequence[float]) -> float:
    """Kolmogorov-Smirnov distance of two count vectors over the same ordered categories; 0 when either is empty."""
    canary_total, stable_total = sum(canary), sum(stable)
    if canary_total <= 0 or stable_total <= 0:
        return 0.0
    distance = canary_cdf = stable_cdf = 0.0
    for canary_count, stable_count in zip(canary, stable, strict=True):
        canary_cdf += canary_count / canary_total
        stable_cdf += stable_count / stable_total
        distance = max(distance, abs(canary_cdf - stable_cdf))
    return min(distance, 1.0)


def _class_order(label: str) -> tuple[int, float, str]:
    number = _number(label)
    return (0, number, label) if number is not None else (1, 0.0, label)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _cumulative(series: Mapping[str, float]) -> dict[float, float]:
    """le -> cumulative count, made non-decreasing (Prometheus' `increase()` extrapolates each bucket series on
    its own, so adjacent buckets can disagree by a fraction)."""
    bounds = sorted((bound, count) for label, count in series.items() if (bound := _number(label)) is not None)
    result: dict[float, float] = {}
    running = 0.0
    for bound, count in bounds:
        running = max(running, count, 0.0)
        result[bound] = running
    return result


def _per_bucket(cumulative: Mapping[float, float], bounds: Sequence[float]) -> tuple[float, ...]:
    counts: list[float] = []
    below = 0.0
    for bound in bounds:
        upto = cumulative.get(bound, max(cumulative.values(), default=0.0))
        counts.append(max(upto - below, 0.0))
        below = max(upto, below)
    return tuple(counts)


def _bound_label(bound: float) -> str:
    return INF_BOUND if bound == math.inf else f"{bound:g}"
