"""The relative checks of `analysis.compareToStable`: the canary's error rate and share of slow requests, each
against the stable version's over the same window, judged by `sluice.core.judge`.

Each becomes one metric of the check: value the estimate (canary minus stable, a fraction), max the bound, lower and
upper the confidence interval, canaryRequests and stableRequests the evidence. Worse is Failed, NotWorse Passed,
too little evidence Inconclusive with the canary requests still missing in its message. A NotWorse before the step
has run one interval of canary traffic (`may_pass` false) is Inconclusive too: a step lasts at least the interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import AnalysisSpec, CompareToStable, MetricResult, Verdict
from sluice.core.drift import INF_BOUND
from sluice.core.judge import Decision, Judgement, Track, judge
from sluice.core.plan import Comparison, TrackCounts

ERROR_RATE_INCREASE = "errorRateIncrease"
SLOW_REQUESTS_INCREASE = "slowRequestsIncrease"
"""Names of the relative metrics (camelCase, as the other built-in metrics)."""


def relative_bounds(compare: CompareToStable | None) -> dict[str, float]:
    """The relative metrics the spec turns on, by name, with their bounds."""
    if compare is None:
        return {}
    bounds = {
        ERROR_RATE_INCREASE: compare.max_error_rate_increase,
        SLOW_REQUESTS_INCREASE: compare.max_slow_requests_increase,
    }
    return {name: bound for name, bound in bounds.items() if bound is not None}


def judge_relative(analysis: AnalysisSpec, comparison: Comparison | None, *, may_pass: bool) -> list[MetricResult]:
    """One metric per relative bound set in `analysis.compareToStable`."""
    bounds = relative_bounds(analysis.compare_to_stable)
    results: list[MetricResult] = []
    if ERROR_RATE_INCREASE in bounds:
        tracks = None if comparison is None else _error_tracks(comparison)
        results.append(_judged(ERROR_RATE_INCREASE, "error rate", tracks, bounds[ERROR_RATE_INCREASE], analysis))
    compare = analysis.compare_to_stable
    if SLOW_REQUESTS_INCREASE in bounds and compare is not None and compare.slower_than is not None:
        threshold = parse_duration(compare.slower_than).total_seconds()
        tracks = None if comparison is None else _slow_tracks(comparison, threshold)
        bound = bounds[SLOW_REQUESTS_INCREASE]
        results.append(
            _judged(SLOW_REQUESTS_INCREASE, f"share slower than {compare.slower_than}", tracks, bound, analysis)
        )
    return [result if may_pass else _not_yet(result) for result in results]


def _error_tracks(comparison: Comparison) -> tuple[Track, Track] | None:
    sides = []
    for counts in (comparison.canary, comparison.stable):
        if counts.requests is None:
            return None
        sides.append(Track(max(counts.requests, 0.0), min(max(counts.errors or 0.0, 0.0), max(counts.requests, 0.0))))
    return sides[0], sides[1]


def _slow_tracks(comparison: Comparison, threshold: float) -> tuple[Track, Track] | None:
    """Each side's requests and those slower than the largest bucket bound at or below `threshold`."""
    sides = []
    for counts in (comparison.canary, comparison.stable):
        track = _slow(counts, threshold)
        if track is None:
            return None
        sides.append(track)
    return sides[0], sides[1]


def _slow(counts: TrackCounts, threshold: float) -> Track | None:
    buckets = _bounds(counts.latency_buckets)
    total = buckets.get(math.inf)
    below = [bound for bound in buckets if bound <= threshold]
    if total is None or not below:
        return None
    fast = buckets[max(below)]
    return Track(max(total, 0.0), min(max(total - fast, 0.0), max(total, 0.0)))


def _bounds(buckets: Mapping[str, float]) -> dict[float, float]:
    parsed: dict[float, float] = {}
    for le, count in buckets.items():
        try:
            bound = math.inf if le == INF_BOUND else float(le)
        except ValueError:
            continue
        if not math.isnan(bound) and not math.isnan(count):
            parsed[bound] = count
    return parsed


def _judged(
    name: str, label: str, tracks: tuple[Track, Track] | None, bound: float, analysis: AnalysisSpec
) -> MetricResult:
    bound_name = f"max{name[0].upper()}{name[1:]}"
    if tracks is None or tracks[0].requests <= 0:
        return MetricResult(
            name=name, max=bound, verdict=Verdict.INCONCLUSIVE, message=f"{label} against stable: no canary requests"
        )
    canary, stable = tracks
    if stable.requests <= 0:
        return MetricResult(
            name=name, max=bound, verdict=Verdict.INCONCLUSIVE, message=f"{label} against stable: no stable requests"
        )
    judgement = judge(canary, stable, bound=bound, confidence=analysis.confidence)
    verdict = {Decision.WORSE: Verdict.FAILED, Decision.NOT_WORSE: Verdict.PASSED}.get(
        judgement.decision, Verdict.INCONCLUSIVE
    )
    return MetricResult(
        name=name,
        value=judgement.estimate,
        max=bound,
        verdict=verdict,
        message=_message(
            label,
            judgement,
            bound_name=bound_name,
            bound=bound,
            confidence=analysis.confidence,
            tracks=(canary, stable),
        ),
        lower=judgement.lower,
        upper=judgement.upper,
        canary_requests=canary.requests,
        stable_requests=stable.requests,
    )


def points(value: float) -> str:
    """A difference of two shares in percentage points, e.g. `+2.1 points`."""
    return f"{value * 100:+.2g} points"


def _message(
    label: str,
    judgement: Judgement,
    *,
    bound_name: str,
    bound: float,
    confidence: float,
    tracks: tuple[Track, Track],
) -> str:
    canary, stable = tracks
    said = (
        f"{label} {points(judgement.estimate)} against stable "
        f"({confidence:.4g} interval {points(judgement.lower)} to {points(judgement.upper)}; "
        f"{canary.requests:.0f} canary, {stable.requests:.0f} stable requests)"
    )
    limit = f"{bound_name} {bound * 100:.3g} points"
    match judgement.decision:
        case Decision.WORSE:
            return f"{said}: worse than {limit}"
        case Decision.NOT_WORSE:
            return f"{said}: within {limit}"
    missing = judgement.missing_requests
    more = (
        f"about {missing:.0f} more canary requests needed"
        if missing is not None
        else "the estimate sits on the bound; more requests will not decide it soon"
    )
    return f"{said}: not yet decided against {limit}; {more}"


def _not_yet(result: MetricResult) -> MetricResult:
    if result.verdict is not Verdict.PASSED:
        return result
    return result.model_copy(
        update={
            "verdict": Verdict.INCONCLUSIVE,
            "message": f"{result.message}, but the step has not yet run one interval since the canary's first request",
        }
    )
