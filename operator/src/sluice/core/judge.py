"""The judge: is the canary worse than the stable version by more than a bound, on the evidence so far?

Both tracks' requests over the same window give two shares (of failed requests, or of slow ones); the judge keeps
an always-valid confidence sequence on their difference (canary minus stable): the one-sided normal-mixture
boundary of Howard, Ramdas, McAuliffe and Sekhon ("Time-uniform, nonparametric, nonasymptotic confidence
sequences", 2021, eq. 14; the mixture sequential probability ratio test of Robbins 1970 and Johari et al. 2022):

    estimate - difference <= sqrt(2 V (V + tau^2) / tau^2 * log(sqrt((V + tau^2) / V) / (2 alpha) + 1))

and the same bound on difference - estimate, where V is the variance of the estimate (each share's p(1-p)/n, with
p smoothed as (hits+1)/(requests+2) so that zero failures never claim zero variance), alpha = 1 - confidence and
tau, the mixture's scale, is the bound itself: the boundary is tightest where the estimate must be told from the
bound by about the bound's own size. Each end of the interval holds, at every look at once, with probability at
least `confidence`: a check may look as often as it likes, and a step that has too little evidence waits for more
instead of deciding on noise. (V is estimated from the counts, so the guarantee is asymptotic in the requests; the
smoothing and `minimum_requests` keep small samples on the safe side, and tests/unit/core/test_core_judge.py
checks the error rates over many seeds.)

Decisions: Worse (the lower end above the bound: wrong for a canary within its bound at most 1 - confidence of the
time), NotWorse (the upper end at or below the bound, and the canary served at least `minimum_requests`: wrong for
a canary beyond its bound at most 1 - confidence of the time), else MoreEvidence, with an estimate of the canary
requests still missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

_MAX_GROWTH = 1e6
"""How many times the evidence so far `missing_requests` looks ahead at most; beyond it the step cannot decide."""


class Decision(StrEnum):
    WORSE = "Worse"
    NOT_WORSE = "NotWorse"
    MORE_EVIDENCE = "MoreEvidence"


@dataclass(frozen=True)
class Track:
    """One track's evidence over the window: requests, and the requests that count (failed, or slow)."""

    requests: float
    hits: float

    @property
    def smoothed_share(self) -> float:
        return (self.hits + 1) / (self.requests + 2)

    def variance(self) -> float:
        """Of the track's share of hits, smoothed: never 0, even without hits."""
        share = self.smoothed_share
        return share * (1 - share) / max(self.requests, 1.0)

    def share(self) -> float:
        return self.hits / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class Judgement:
    decision: Decision
    estimate: float
    """Canary's share minus stable's."""
    lower: float
    upper: float
    missing_requests: float | None
    """MoreEvidence: about how many more canary requests the step needs (at the same traffic split and shares);
    None when decided, or when the estimate sits on the bound (no amount decides it)."""


def minimum_requests(bound: float, confidence: float) -> int:
    """The fewest canary requests a NotWorse needs (0 < bound < 1): with fewer, even a canary without a single
    failure has not shown at `confidence` that it fails less than `bound` of its requests
    ((1 - bound)^n <= 1 - confidence)."""
    return math.ceil(math.log(1 - confidence) / math.log1p(-bound))


def half_width(variance: float, *, alpha: float, scale: float) -> float:
    """How far one end of the confidence sequence lies from the estimate, at an estimate of `variance`."""
    tau2 = scale * scale
    spread = 2 * variance * (variance + tau2) / tau2
    return math.sqrt(spread * math.log(math.sqrt((variance + tau2) / variance) / (2 * alpha) + 1))


def judge(canary: Track, stable: Track, *, bound: float, confidence: float) -> Judgement:
    """Decide whether canary's share exceeds stable's by more than `bound` (a fraction), at `confidence`."""
    alpha, scale = 1 - confidence, max(bound, 1e-4)
    estimate = canary.share() - stable.share()
    variance = canary.variance() + stable.variance()
    width = half_width(variance, alpha=alpha, scale=scale)
    lower, upper = estimate - width, estimate + width
    if lower > bound:
        return Judgement(Decision.WORSE, estimate, lower, upper, None)
    enough = canary.requests >= minimum_requests(bound, confidence)
    if upper <= bound and enough:
        return Judgement(Decision.NOT_WORSE, estimate, lower, upper, None)
    missing = _missing(variance, canary.requests, abs(bound - estimate), alpha=alpha, scale=scale)
    if missing is not None and not enough:
        missing = max(missing, minimum_requests(bound, confidence) - canary.requests)
    return Judgement(Decision.MORE_EVIDENCE, estimate, lower, upper, missing)


def _missing(variance: float, requests: float, gap: float, *, alpha: float, scale: float) -> float | None:
    """Canary requests to add (both tracks growing in proportion) until the interval's half width fits `gap`."""
    if gap <= 0:
        return None
    low, high = 1.0, 2.0
    while half_width(variance / high, alpha=alpha, scale=scale) > gap:
        low, high = high, high * 2
        if high > _MAX_GROWTH:
            return None
    for _ in range(40):
        middle = (low + high) / 2
        if half_width(variance / middle, alpha=alpha, scale=scale) > gap:
            low = middle
        else:
            high = middle
    return max(requests, 1.0) * (high - 1)
