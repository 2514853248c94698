"""The ML gates in the pure core: the validation gate's scoring and judgement, the shadow phase's checks, and the
Validating -> Shadowing -> Progressing phases of `decide` (state in, state out)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from sluice.api.v1alpha1 import Action, Outcome, Phase, ValidationMetric, ValidationSpec, Verdict
from sluice.core import validation
from sluice.core.gates import (
    SHADOW_AGREEMENT,
    SHADOW_COMPARISONS,
    SHADOW_MEAN_ABS_DIFFERENCE,
    ScoreError,
    judge_validation,
    score,
    shadow_check,
)
from sluice.core.plan import ShadowReading, ValidationReading
from sluice.core.rollout import validation_due
from unit.core.support import HEALTHY, T0, Simulation, deployed, make_spec

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}
VALIDATION = {"uri": "https://data.example.com/holdout.csv", "metric": "accuracy", "min": 0.85}
SHADOW = {"percent": 40, "checks": 2, "minComparisons": 50, "minAgreement": 0.9}
AGREEING = ShadowReading(comparisons=200, agreement=0.99)
DISAGREEING = ShadowReading(comparisons=200, agreement=0.4)


def gated(**overrides: Any) -> Simulation:
    """Stable 1.0.0 behind a Gateway, with the gates `overrides` asks for, and 2.0.0 just applied."""
    spec = make_spec("1.0.0", traffic=GATEWAY, **overrides)
    simulation = deployed(spec)
    simulation.set_version("2.0.0")
    return simulation


# --- scoring ----------------------------------------------------------------------------------------------------


def test_accuracy_counts_equal_labels_whatever_their_json_type() -> None:
    assert score(ValidationMetric.ACCURACY, [1, 0, "1", 1.0, "cat"], ["1", 0, 1, 1, "dog"]) == pytest.approx(0.8)


def test_mae_and_rmse_of_numeric_predictions() -> None:
    assert score(ValidationMetric.MAE, [1.0, 2.0, 4.0], [1, 3, 2]) == pytest.approx(1.0)
    assert score(ValidationMetric.RMSE, [1.0, 2.0, 4.0], [1, 3, 2]) == pytest.approx(math.sqrt(5 / 3))


@pytest.mark.parametrize(
    ("predictions", "labels", "why"),
    [
        ([1, 2], [1], "2 predictions for 1 labels"),
        ([], [], "no rows"),
        (["a"], [1.0], "row 1: the prediction or the label is not a number"),
    ],
)
def test_unscorable_answers_raise(predictions: list[Any], labels: list[Any], why: str) -> None:
    with pytest.raises(ScoreError, match=why):
        score(ValidationMetric.MAE, predictions, labels)


def test_the_gate_compares_the_score_with_its_bounds_and_says_so() -> None:
    spec = ValidationSpec.model_validate(VALIDATION)
    passed = judge_validation(spec, ValidationReading(score=0.9, samples=300), version="2.0.0", time=T0)
    failed = judge_validation(spec, ValidationReading(score=0.12, samples=300), version="2.0.0", time=T0)
    errored = judge_validation(spec, ValidationReading(error="HTTP 503"), version="2.0.0", time=T0)
    assert (passed.passed, passed.score, passed.message) == (
        True,
        0.9,
        "accuracy 0.9 on 300 rows meets accuracy >= 0.85",
    )
    assert (failed.passed, failed.message) == (False, "accuracy 0.12 on 300 rows breaks accuracy >= 0.85")
    assert (errored.passed, errored.score, errored.message) == (False, None, "validation could not run: HTTP 503")
    regression = ValidationSpec.model_validate({"uri": "file:///d.csv", "metric": "rmse", "max": 2.5})
    assert not judge_validation(regression, ValidationReading(score=3.0, samples=9), version="v", time=T0).passed


# --- shadow checks ----------------------------------------------------------------------------------------------


def shadow_spec(**overrides: Any) -> Any:
    return make_spec(traffic=GATEWAY, rollout={"shadow": SHADOW | overrides})


@pytest.mark.parametrize(
    ("reading", "verdict", "deciding"),
    [
        (AGREEING, Verdict.PASSED, None),
        (DISAGREEING, Verdict.FAILED, "shadow agreement 0.4 below shadow.minAgreement 0.9"),
        (ShadowReading(comparisons=12, agreement=0.1), Verdict.INCONCLUSIVE, "only 12 comparisons"),
        (ShadowReading(), Verdict.INCONCLUSIVE, "no comparisons"),
        (ShadowReading(error="timeout"), Verdict.ERRORED, "no answer: timeout"),
    ],
)
def test_a_shadow_check_judges_agreement_only_over_enough_comparisons(
    reading: ShadowReading, verdict: Verdict, deciding: str | None
) -> None:
    spec = shadow_spec()
    assert spec.rollout.shadow is not None
    check = shadow_check(spec.analysis, spec.rollout.shadow, HEALTHY, reading, time=T0)
    assert (check.verdict, check.step, check.weight) == (verdict, 0, 0)
    names = [metric.name for metric in check.metrics]
    assert names[-2:] == [SHADOW_COMPARISONS, SHADOW_AGREEMENT]
    if deciding is not None:
        assert any(deciding in metric.message for metric in check.metrics if metric.verdict is verdict), check


def test_a_shadow_check_also_applies_the_canarys_own_error_rate_bound() -> None:
    spec = shadow_spec()
    assert spec.rollout.shadow is not None
    erroring = HEALTHY.__class__(request_count=120, error_rate=0.4, latency_p99_seconds=0.05)
    assert shadow_check(spec.analysis, spec.rollout.shadow, erroring, AGREEING, time=T0).verdict is Verdict.FAILED


def test_regressors_are_judged_on_the_mean_absolute_difference() -> None:
    spec = shadow_spec(minAgreement=None, maxMeanAbsDifference=0.5)
    assert spec.rollout.shadow is not None
    far = ShadowReading(comparisons=100, agreement=0.0, mean_abs_difference=2.0)
    check = shadow_check(spec.analysis, spec.rollout.shadow, HEALTHY, far, time=T0)
    assert check.verdict is Verdict.FAILED
    assert [m.name for m in check.metrics][-1] == SHADOW_MEAN_ABS_DIFFERENCE
    near = ShadowReading(comparisons=100, agreement=0.0, mean_abs_difference=0.01)
    assert shadow_check(spec.analysis, spec.rollout.shadow, HEALTHY, near, time=T0).verdict is Verdict.PASSED


# --- the phases -------------------------------------------------------------------------------------------------


def test_the_validation_gate_runs_once_the_canary_is_ready_and_a_pass_leads_to_the_shadow_phase() -> None:
    simulation = gated(validation=VALIDATION, rollout={"shadow": SHADOW})
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.canary_weight, plan.mirror_percent) == (Phase.VALIDATING, 0, 0)
    assert plan.canary is not None
    assert plan.canary.replicas == 2, "the canary runs at full replicas behind the Gateway, at weight 0"
    assert not validation_due(simulation.spec, simulation.status, simulation.canary.__class__(), simulation.now)
    assert validation_due(simulation.spec, simulation.status, simulation.canary, simulation.now)
    plan = simulation.reconcile()  # the runner's reading arrives: 0.95 >= 0.85
    assert plan.status.validation is not None
    assert (plan.status.validation.passed, plan.status.validation.score) == (True, 0.95)
    assert (plan.status.phase, plan.canary_weight, plan.mirror_percent) == (Phase.SHADOWING, 0, 40)
    assert plan.status.step_started_at == simulation.now
    assert plan.requeue_after == timedelta(minutes=1)
    assert simulation.event_reasons()[-2:] == ["ValidationPassed", "ShadowStarted"]
    assert not validation_due(simulation.spec, simulation.status, simulation.canary, simulation.now)


def test_a_canary_under_the_bound_is_rolled_back_before_any_traffic_with_its_score_recorded() -> None:
    simulation = gated(validation=VALIDATION, rollout={"shadow": SHADOW})
    simulation.validation = ValidationReading(score=0.31, samples=300)
    simulation.reconcile()
    plan = simulation.reconcile()
    status = plan.status
    assert (status.phase, plan.canary_weight, plan.mirror_percent) == (Phase.ROLLED_BACK, 0, 0)
    assert plan.canary is not None
    assert plan.canary.replicas == 0
    assert status.validation is not None
    assert (status.validation.score, status.validation.passed) == (0.31, False)
    entry = status.history[-1]
    assert (entry.outcome, entry.reason) == (Outcome.ROLLED_BACK, "ValidationFailed")
    assert entry.message == "accuracy 0.31 on 300 rows breaks accuracy >= 0.85 at the validation gate (weight 0)"


def test_a_run_without_a_score_is_retried_every_interval_up_to_max_consecutive_errors() -> None:
    simulation = gated(validation=VALIDATION, analysis={"maxConsecutiveErrors": 2})
    simulation.validation = ValidationReading(error="HTTP 503: no ready endpoint")
    simulation.reconcile()
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.status.consecutive_errors) == (Phase.VALIDATING, 1)
    assert plan.requeue_after == timedelta(minutes=1)
    assert not validation_due(simulation.spec, simulation.status, simulation.canary, simulation.now)
    simulation.wait("1m")
    plan = simulation.reconcile()
    assert plan.status.phase is Phase.ROLLED_BACK
    assert plan.status.history[-1].reason == "ValidationErrored"


def test_removing_a_gate_mid_rollout_moves_on_to_the_next_one() -> None:
    simulation = gated(validation=VALIDATION, rollout={"shadow": SHADOW})
    simulation.canary_starts = False
    assert simulation.reconcile().status.phase is Phase.VALIDATING
    simulation.spec = simulation.spec.model_copy(update={"validation": None})
    assert simulation.reconcile().status.phase is Phase.SHADOWING
    rollout = simulation.spec.rollout.model_copy(update={"shadow": None})
    simulation.spec = simulation.spec.model_copy(update={"rollout": rollout})
    simulation.canary_starts = True
    simulation.reconcile()
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.status.current_step, plan.canary_weight) == (Phase.PROGRESSING, 0, 10)
    assert {"ValidationSkipped", "ShadowPassed"} <= set(simulation.event_reasons())


def test_without_shadow_a_passed_gate_goes_straight_to_the_first_step() -> None:
    simulation = gated(validation=VALIDATION)
    simulation.reconcile()
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.status.current_step, plan.canary_weight) == (Phase.PROGRESSING, 0, 10)


def test_the_shadow_phase_needs_its_passed_checks_then_the_first_step_starts() -> None:
    simulation = gated(rollout={"shadow": SHADOW})
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.mirror_percent, plan.status.step_started_at) == (Phase.SHADOWING, 0, None)
    plan = simulation.reconcile()  # canary ready: mirroring starts
    assert (plan.status.phase, plan.mirror_percent, plan.canary_weight) == (Phase.SHADOWING, 40, 0)
    plan = simulation.check(HEALTHY)
    assert (plan.status.phase, plan.status.passed_checks, plan.canary_weight) == (Phase.SHADOWING, 1, 0)
    assert plan.status.last_check is not None
    assert plan.status.last_check.weight == 0
    plan = simulation.check(HEALTHY)
    assert (plan.status.phase, plan.status.current_step, plan.canary_weight, plan.mirror_percent) == (
        Phase.PROGRESSING,
        0,
        10,
        0,
    )
    assert "ShadowPassed" in simulation.event_reasons()


def test_a_canary_disagreeing_with_stable_is_rolled_back_from_the_shadow_phase() -> None:
    simulation = gated(rollout={"shadow": SHADOW})
    simulation.shadow = DISAGREEING
    simulation.reconcile()
    simulation.reconcile()
    plan = simulation.check(HEALTHY)
    assert (plan.status.phase, plan.canary_weight, plan.mirror_percent) == (Phase.ROLLED_BACK, 0, 0)
    entry = plan.status.history[-1]
    assert entry.reason == "ShadowAnalysisFailed"
    assert "shadow agreement 0.4 below shadow.minAgreement 0.9 in the shadow phase (weight 0)" in entry.message


def test_a_paused_shadow_phase_resumes_in_the_shadow_phase() -> None:
    simulation = gated(rollout={"shadow": SHADOW})
    simulation.reconcile()
    simulation.reconcile()
    simulation.paused = True
    assert simulation.reconcile().status.phase is Phase.PAUSED
    assert simulation.plan is not None
    assert simulation.plan.mirror_percent == 0
    simulation.paused = False
    assert simulation.reconcile().status.phase is Phase.SHADOWING


def test_promote_skips_the_rest_of_the_shadow_phase_but_not_the_validation_gate() -> None:
    simulation = gated(validation=VALIDATION, rollout={"shadow": SHADOW})
    simulation.canary_starts = False
    simulation.reconcile()
    simulation.reconcile(action=Action.PROMOTE)
    assert simulation.status.phase is Phase.VALIDATING
    assert "has not passed the validation gate" in simulation.events[-1].message
    simulation.canary_starts = True
    simulation.reconcile()
    assert simulation.reconcile().status.phase is Phase.SHADOWING
    plan = simulation.reconcile(action=Action.PROMOTE)
    assert (plan.status.phase, plan.status.current_step, plan.canary_weight) == (Phase.PROGRESSING, 0, 10)


def test_the_canary_compares_itself_with_the_stable_model_when_shadow_is_on() -> None:
    simulation = gated(rollout={"shadow": SHADOW})
    plan = simulation.reconcile()
    assert plan.canary is not None
    assert plan.canary.reference is not None
    assert (plan.canary.model.version, plan.canary.reference.version) == ("2.0.0", "1.0.0")
    without = gated().reconcile().canary
    assert without is not None
    assert without.reference is None


def test_gates_need_a_gateway_router() -> None:
    spec = make_spec(validation=VALIDATION, rollout={"shadow": SHADOW})
    found = validation.problems("iris", spec, "image")
    assert found == [
        "spec.validation needs spec.traffic.gateway: only an HTTPRoute keeps a running canary at weight 0",
        "spec.rollout.shadow needs spec.traffic.gateway: only an HTTPRoute keeps a running canary at weight 0",
    ]
