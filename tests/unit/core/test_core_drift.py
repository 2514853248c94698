"""Prediction and feature drift: PSI and KS from Prometheus count vectors, and how checks judge them.

Expected values are computed by hand (the arithmetic is in the comments); properties are checked with hypothesis.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.api.v1alpha1 import AnalysisSpec, CheckResult, Phase, Verdict
from sluice.core.analysis import (
    ERROR_RATE,
    FEATURE_PSI,
    LATENCY_P99,
    PREDICTION_KS,
    PREDICTION_PSI,
    REQUEST_COUNT,
    evaluate,
    summary,
)
from sluice.core.drift import EPSILON, CountKind, Counts, aligned, ks, psi
from sluice.core.plan import AnalysisReading
from unit.core.support import HEALTHY, T0, at_first_step, make_spec

SHIFTED = Counts(CountKind.CLASSES, canary={"0": 20, "1": 80}, stable={"0": 50, "1": 50})
# p = (0.2, 0.8), q = (0.5, 0.5): PSI = (0.2 - 0.5) ln(0.2 / 0.5) + (0.8 - 0.5) ln(0.8 / 0.5)
#                                    = 0.274887 + 0.141001 = 0.415888; KS = |0.2 - 0.5| = 0.3
SHIFTED_PSI = 0.3 * math.log(2.5) + 0.3 * math.log(1.6)
SAME = Counts(CountKind.CLASSES, canary={"0": 200, "1": 300}, stable={"0": 800, "1": 1200})
BUCKETS = Counts(
    CountKind.BUCKETS,
    canary={"0.0": 10, "1.0": 60, "+Inf": 100},
    stable={"0.0": 30, "1.0": 70, "+Inf": 100},
)
# per bucket (10, 50, 40) and (30, 40, 30): p = (.1, .5, .4), q = (.3, .4, .3)
# PSI = -.2 ln(1/3) + .1 ln(5/4) + .1 ln(4/3) = .219722 + .022314 + .028768 = .270805; KS = max(.2, .1, 0) = .2
BUCKETS_PSI = 0.2 * math.log(3) + 0.1 * math.log(1.25) + 0.1 * math.log(4 / 3)
BUCKETS_X10 = Counts(
    CountKind.BUCKETS,
    canary={key: value * 10 for key, value in BUCKETS.canary.items()},
    stable={key: value * 10 for key, value in BUCKETS.stable.items()},
)


def distances(counts: Counts) -> tuple[float, float]:
    sides = aligned(counts)
    return psi(sides.canary, sides.stable), ks(sides.canary, sides.stable)


def test_psi_and_ks_of_two_class_mixes() -> None:
    value, distance = distances(SHIFTED)
    assert value == pytest.approx(0.415888, abs=1e-6)
    assert value == pytest.approx(SHIFTED_PSI)
    assert distance == pytest.approx(0.3)


def test_the_same_mix_at_other_volumes_does_not_drift() -> None:
    assert distances(SAME) == (0.0, 0.0)


def test_a_class_missing_on_one_side_is_floored_at_epsilon() -> None:
    one_class = Counts(CountKind.CLASSES, canary={"1": 100}, stable={"0": 50, "1": 50})
    value, distance = distances(one_class)
    # p = (1e-4, 1), q = (.5, .5): (1e-4 - .5) ln(1e-4 / .5) + (1 - .5) ln(1 / .5) = 4.257745 + 0.346574
    assert value == pytest.approx((EPSILON - 0.5) * math.log(EPSILON / 0.5) + 0.5 * math.log(2))
    assert value == pytest.approx(4.604319, abs=1e-6)
    assert distance == pytest.approx(0.5)


def test_psi_and_ks_of_cumulative_histogram_buckets() -> None:
    sides = aligned(BUCKETS)
    assert sides.categories == ("0", "1", "+Inf")
    assert (sides.canary, sides.stable) == ((10, 50, 40), (30, 40, 30))
    value, distance = distances(BUCKETS)
    assert value == pytest.approx(BUCKETS_PSI)
    assert value == pytest.approx(0.270805, abs=1e-6)
    assert distance == pytest.approx(0.2)


def test_buckets_only_one_side_has_merge_into_the_next_shared_bound() -> None:
    finer = Counts(CountKind.BUCKETS, canary={"0.0": 10, "0.5": 30, "1.0": 60, "+Inf": 100}, stable=BUCKETS.stable)
    assert aligned(finer) == aligned(BUCKETS)


def test_cumulative_counts_that_dip_from_extrapolation_are_made_monotonic() -> None:
    dipping = Counts(CountKind.BUCKETS, canary={"0.0": 10.5, "1.0": 10.2, "+Inf": 20}, stable={"+Inf": 20})
    assert aligned(dipping).canary == (20,)  # only +Inf is shared
    sides = aligned(Counts(CountKind.BUCKETS, canary=dipping.canary, stable=dipping.canary))
    assert sides.canary == (10.5, 0.0, 9.5)


def test_classes_are_ordered_numerically_then_as_text() -> None:
    counts = Counts(CountKind.CLASSES, canary={"10": 1, "2": 1, "b": 1}, stable={"a": 1, "-1": 1})
    assert aligned(counts).categories == ("-1", "2", "10", "a", "b")


def test_no_observations_on_a_side_measures_nothing() -> None:
    empty = Counts(CountKind.CLASSES, canary={}, stable={"0": 10})
    assert distances(empty) == (0.0, 0.0)
    assert aligned(Counts(CountKind.BUCKETS, canary={}, stable={"+Inf": 3})).categories == ()


counts_vectors = st.integers(min_value=1, max_value=12).flatmap(
    lambda size: st.tuples(
        st.lists(st.floats(min_value=0, max_value=1e6), min_size=size, max_size=size),
        st.lists(st.floats(min_value=0, max_value=1e6), min_size=size, max_size=size),
    )
)


@given(counts_vectors)
def test_psi_is_non_negative_symmetric_and_bounded(pair: tuple[list[float], list[float]]) -> None:
    canary, stable = pair
    value = psi(canary, stable)
    assert 0 <= value <= 2 * math.log(1 / EPSILON) + 1e-9
    assert value == pytest.approx(psi(stable, canary), rel=1e-9, abs=1e-12)


@given(counts_vectors)
def test_ks_is_a_symmetric_distance_in_zero_one(pair: tuple[list[float], list[float]]) -> None:
    canary, stable = pair
    distance = ks(canary, stable)
    assert 0 <= distance <= 1
    assert distance == pytest.approx(ks(stable, canary), abs=1e-12)


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=12),
    st.floats(min_value=0.01, max_value=100),
)
def test_identical_proportions_do_not_drift(counts: list[float], scale: float) -> None:
    scaled = [count * scale for count in counts]
    assert psi(counts, scaled) == pytest.approx(0, abs=1e-9)
    assert ks(counts, scaled) == pytest.approx(0, abs=1e-9)


# --- checks ---------------------------------------------------------------------------------------------------

ANALYSIS = AnalysisSpec.model_validate(
    {"maxPredictionPSI": 0.2, "maxPredictionKS": 0.1, "maxFeaturePSI": 0.25, "minDriftSamples": 100}
)
FEATURES_SAME = {
    "0": Counts(CountKind.BUCKETS, canary={"0.0": 50, "+Inf": 100}, stable={"0.0": 200, "+Inf": 400}),
    "1": Counts(CountKind.BUCKETS, canary={"0.0": 30, "+Inf": 100}, stable={"0.0": 120, "+Inf": 400}),
}


def judge(predictions: Counts | None, features: dict[str, Counts]) -> CheckResult:
    return evaluate(ANALYSIS, replace(HEALTHY, predictions=predictions, features=features), time=T0, step=0, weight=20)


def check(predictions: Counts | None, features: dict[str, Counts]) -> tuple[Verdict, dict[str, Verdict], str]:
    result = judge(predictions, features)
    return result.verdict, {metric.name: metric.verdict for metric in result.metrics}, summary(result)


def test_drift_metrics_are_judged_only_when_their_bound_is_set() -> None:
    result = evaluate(AnalysisSpec(), replace(HEALTHY, predictions=SHIFTED), time=T0, step=0, weight=20)
    assert [metric.name for metric in result.metrics] == [REQUEST_COUNT, ERROR_RATE, LATENCY_P99]
    assert result.verdict is Verdict.PASSED


def test_the_same_prediction_and_feature_mix_passes_with_values_and_bounds_recorded() -> None:
    result = judge(SAME, FEATURES_SAME)
    assert result.verdict is Verdict.PASSED
    drift = [(m.name, m.value, m.max, m.verdict) for m in result.metrics[3:]]
    assert drift == [
        (PREDICTION_PSI, 0.0, 0.2, Verdict.PASSED),
        (PREDICTION_KS, 0.0, 0.1, Verdict.PASSED),
        (FEATURE_PSI, 0.0, 0.25, Verdict.PASSED),
    ]
    assert result.metrics[-1].message == "feature 1 PSI 0 within maxFeaturePSI 0.25 (worst of 2 features)"


def test_shifted_predictions_fail_with_value_and_bound_in_the_summary() -> None:
    verdict, verdicts, why = check(SHIFTED, FEATURES_SAME)  # 100 predictions a side: judged
    assert verdict is Verdict.FAILED
    assert verdicts[PREDICTION_PSI] is verdicts[PREDICTION_KS] is Verdict.FAILED
    assert verdicts[FEATURE_PSI] is Verdict.PASSED
    assert why == "prediction PSI 0.415888 above maxPredictionPSI 0.2; prediction KS 0.3 above maxPredictionKS 0.1"


def test_too_few_predictions_is_inconclusive_whatever_the_distance() -> None:
    few = Counts(CountKind.CLASSES, canary={"1": 40}, stable={"0": 500, "1": 500})
    verdict, verdicts, why = check(few, FEATURES_SAME)
    assert verdict is Verdict.INCONCLUSIVE
    assert verdicts[PREDICTION_PSI] is Verdict.INCONCLUSIVE
    assert why.startswith("prediction PSI 4.60")
    assert "not judged: only 40 canary predictions, fewer than minDriftSamples 100" in why


def test_a_side_without_predictions_records_no_value() -> None:
    result = judge(Counts(CountKind.CLASSES, canary={}, stable={"0": 500}), FEATURES_SAME)
    psi_result = result.metrics[3]
    assert (psi_result.name, psi_result.value, psi_result.verdict) == (PREDICTION_PSI, None, Verdict.INCONCLUSIVE)
    assert psi_result.message == "prediction PSI not judged: only 0 canary predictions, fewer than minDriftSamples 100"


def test_no_prediction_series_is_inconclusive() -> None:
    verdict, _, why = check(None, FEATURES_SAME)
    assert verdict is Verdict.INCONCLUSIVE
    assert why == "prediction PSI: no data; prediction KS: no data"


def test_one_shifted_feature_fails_and_is_named() -> None:
    verdict, verdicts, why = check(SAME, {**FEATURES_SAME, "7": BUCKETS_X10})
    assert verdict is Verdict.FAILED
    assert verdicts[FEATURE_PSI] is Verdict.FAILED
    assert why == "feature 7 PSI 0.270805 above maxFeaturePSI 0.25 (worst of 3 features)"


def test_features_with_too_few_values_are_left_out_and_alone_are_inconclusive() -> None:
    few = {"3": Counts(CountKind.BUCKETS, canary={"0.0": 5, "+Inf": 10}, stable={"0.0": 1, "+Inf": 400})}
    _, verdicts, why = check(SAME, few)
    assert verdicts[FEATURE_PSI] is Verdict.INCONCLUSIVE
    assert why == "feature PSI not judged: only 10 canary values of feature 3, fewer than minDriftSamples 100"
    result = judge(SAME, {**FEATURES_SAME, **few})
    assert result.verdict is Verdict.PASSED
    assert result.metrics[-1].message.endswith("(worst of 2 features, 1 too few values)")


def test_an_unanswered_reading_errors_the_drift_metrics_too() -> None:
    result = evaluate(ANALYSIS, AnalysisReading(error="connection refused"), time=T0, step=0, weight=20)
    assert result.verdict is Verdict.ERRORED
    assert [(m.name, m.max, m.verdict) for m in result.metrics[3:]] == [
        (PREDICTION_PSI, 0.2, Verdict.ERRORED),
        (PREDICTION_KS, 0.1, Verdict.ERRORED),
        (FEATURE_PSI, 0.25, Verdict.ERRORED),
    ]


def test_a_drifting_canary_is_rolled_back_like_any_failed_check() -> None:
    simulation = at_first_step(make_spec(analysis={"maxPredictionPSI": 0.2, "minDriftSamples": 100}))
    plan = simulation.check(replace(HEALTHY, predictions=SHIFTED))
    assert plan.status.phase is Phase.ROLLED_BACK
    entry = plan.status.history[-1]
    assert (entry.reason, entry.version) == ("AnalysisFailed", "2.0.0")
    assert entry.message.startswith("prediction PSI 0.415888 above maxPredictionPSI 0.2 at step 1/3")
    assert plan.status.last_check is not None
    assert plan.status.last_check.metrics[-1].name == PREDICTION_PSI
