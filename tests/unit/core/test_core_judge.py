"""The judge's confidence sequence: its decisions, its minimum evidence, and its error rates over many seeds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.core.judge import Decision, Track, judge, minimum_requests

CONFIDENCE = 0.95


def tracks(max_requests: int = 100_000) -> st.SearchStrategy[Track]:
    return st.integers(0, max_requests).flatmap(
        lambda requests: st.builds(Track, requests=st.just(float(requests)), hits=st.integers(0, requests).map(float))
    )


@given(canary=tracks(), stable=tracks(), bound=st.floats(0.001, 0.5), confidence=st.floats(0.5, 0.9999))
def test_the_judge_never_passes_a_canary_with_fewer_requests_than_the_confidence_needs(
    canary: Track, stable: Track, bound: float, confidence: float
) -> None:
    judgement = judge(canary, stable, bound=bound, confidence=confidence)
    if judgement.decision is Decision.NOT_WORSE:
        assert canary.requests >= minimum_requests(bound, confidence)


@given(canary=tracks(), stable=tracks(), bound=st.floats(0.001, 0.5))
def test_the_interval_always_holds_the_estimate_and_a_decision_follows_from_it(
    canary: Track, stable: Track, bound: float
) -> None:
    judgement = judge(canary, stable, bound=bound, confidence=CONFIDENCE)
    assert judgement.lower <= judgement.estimate <= judgement.upper
    assert (judgement.decision is Decision.WORSE) == (judgement.lower > bound)
    if judgement.decision is Decision.NOT_WORSE:
        assert judgement.upper <= bound


def test_a_canary_that_fails_no_request_of_fewer_than_the_minimum_is_not_yet_passed() -> None:
    needed = minimum_requests(0.01, CONFIDENCE)
    assert needed == 299  # (1 - 1%)^n <= 5%
    short = judge(Track(needed - 1, 0), Track(100_000, 0), bound=0.01, confidence=CONFIDENCE)
    assert short.decision is Decision.MORE_EVIDENCE
    assert short.missing_requests is not None
    assert short.missing_requests >= 1
    enough = judge(Track(2 * needed, 0), Track(100_000, 0), bound=0.01, confidence=CONFIDENCE)
    assert enough.decision is Decision.NOT_WORSE


def test_a_canary_far_worse_than_stable_is_judged_worse_and_one_alike_not_worse() -> None:
    worse = judge(Track(2000, 200), Track(6000, 60), bound=0.01, confidence=CONFIDENCE)
    assert worse.decision is Decision.WORSE
    assert worse.lower > 0.01
    alike = judge(Track(20_000, 200), Track(60_000, 600), bound=0.01, confidence=CONFIDENCE)
    assert alike.decision is Decision.NOT_WORSE
    assert alike.upper <= 0.01


def test_too_little_evidence_says_how_many_more_canary_requests_would_decide() -> None:
    judgement = judge(Track(500, 5), Track(1500, 15), bound=0.01, confidence=CONFIDENCE)
    assert judgement.decision is Decision.MORE_EVIDENCE
    assert judgement.missing_requests is not None
    more = 500 + judgement.missing_requests
    later = judge(Track(more, more * 0.01), Track(3 * more, 3 * more * 0.01), bound=0.01, confidence=CONFIDENCE)
    assert later.decision is Decision.NOT_WORSE


def test_an_estimate_on_the_bound_needs_evidence_no_amount_supplies() -> None:
    judgement = judge(Track(1000, 20), Track(1000, 10), bound=0.01, confidence=CONFIDENCE)
    assert judgement.decision is Decision.MORE_EVIDENCE
    assert judgement.missing_requests is None


def _looks(rng: np.random.Generator, canary_rate: float, stable_rate: float, *, per_look: int, looks: int) -> Decision:
    """One step watched `looks` times, as a check every interval does: the first decision, or MoreEvidence."""
    canary, stable = Track(0, 0), Track(0, 0)
    for _ in range(looks):
        canary = Track(canary.requests + per_look, canary.hits + rng.binomial(per_look, canary_rate))
        stable = Track(stable.requests + 3 * per_look, stable.hits + rng.binomial(3 * per_look, stable_rate))
        decision = judge(canary, stable, bound=0.01, confidence=CONFIDENCE).decision
        if decision is not Decision.MORE_EVIDENCE:
            return decision
    return Decision.MORE_EVIDENCE


def _share(decision: Decision, canary_rate: float, stable_rate: float, *, per_look: int, seed: int) -> float:
    """The share of 400 watched steps whose first decision is `decision`."""
    rng = np.random.default_rng(seed)
    seeds = 400
    hits = sum(_looks(rng, canary_rate, stable_rate, per_look=per_look, looks=120) is decision for _ in range(seeds))
    return hits / seeds


@pytest.mark.parametrize(("rate", "per_look"), [(0.0, 30), (0.001, 300), (0.01, 30), (0.03, 300), (0.2, 3000)])
def test_identical_canary_and_stable_streams_are_judged_worse_in_no_more_than_the_stated_share(
    rate: float, per_look: int
) -> None:
    assert _share(Decision.WORSE, rate, rate, per_look=per_look, seed=16) <= 1 - CONFIDENCE


@pytest.mark.parametrize("stable_rate", [0.0, 0.01, 0.05])
def test_a_canary_exactly_at_its_bound_is_judged_worse_in_no_more_than_the_stated_share(stable_rate: float) -> None:
    assert _share(Decision.WORSE, stable_rate + 0.01, stable_rate, per_look=200, seed=17) <= 1 - CONFIDENCE


@pytest.mark.parametrize("stable_rate", [0.0, 0.01, 0.05])
def test_a_canary_beyond_its_bound_is_passed_in_no_more_than_the_stated_share(stable_rate: float) -> None:
    assert _share(Decision.NOT_WORSE, stable_rate + 0.011, stable_rate, per_look=200, seed=18) <= 1 - CONFIDENCE
