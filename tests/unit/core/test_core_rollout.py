"""The rollout state machine, state in and state out, driven through `decide` with a simulated clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from sluice.api.v1alpha1 import (
    HISTORY_LIMIT,
    Action,
    ActionOutcome,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Outcome,
    Phase,
    Verdict,
)
from sluice.core.conditions import PROGRESSING, READY, find_condition
from sluice.core.plan import AnalysisReading, EventType, Observations, WorkloadState
from sluice.core.rollout import canary_replicas_for_weight, check_window, decide
from unit.core.support import (
    ERRORING,
    HEALTHY,
    QUIET,
    T0,
    UNREACHABLE,
    Simulation,
    at_first_step,
    deployed,
    make_spec,
)


def condition(status: ModelDeploymentStatus, condition_type: str) -> tuple[str, str]:
    found = find_condition(status.conditions, condition_type)
    assert found is not None
    return found.status, found.reason


def condition_message(status: ModelDeploymentStatus, condition_type: str) -> str:
    found = find_condition(status.conditions, condition_type)
    assert found is not None
    return found.message


# --- first deploy and steady state -----------------------------------------------------------------------------------


def test_first_deploy_is_initializing_until_the_stable_workload_is_available() -> None:
    simulation = Simulation(make_spec("1.0.0"))

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.INITIALIZING
    assert plan.stable.model.version == "1.0.0"
    assert plan.stable.replicas == 2
    assert plan.canary is None
    assert plan.status.stable_model is not None
    assert plan.status.stable_model.uri == "s3://models/fraud/1.0.0/model.onnx"
    assert condition(plan.status, READY) == ("False", "StableUnavailable")

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.STABLE
    assert plan.status.stable_version == "1.0.0"
    assert [event.reason for event in plan.events] == ["Deployed"]


def test_steady_state_is_ready_not_progressing_and_mirrors_the_stable_workload() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.generation = 7

    plan = simulation.reconcile()

    assert condition(plan.status, READY) == ("True", "StableAvailable")
    assert condition(plan.status, PROGRESSING) == ("False", "Deployed")
    assert plan.status.observed_generation == 7
    assert plan.status.ready_replicas == 2
    assert plan.canary_weight == 0
    assert plan.requeue_after is None
    assert plan.events == ()


def test_a_replicas_change_applies_to_stable_directly_and_is_not_a_rollout() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.spec = simulation.spec.model_copy(update={"replicas": 5})

    plan = simulation.reconcile()

    assert plan.stable.replicas == 5
    assert plan.status.phase is Phase.STABLE
    assert plan.canary is None


def test_a_stable_workload_that_is_updating_but_serving_stays_ready() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.stable = WorkloadState(exists=True, version="1.0.0", replicas=4, ready_replicas=2, available=False)

    plan = simulation.reconcile()

    assert condition(plan.status, READY) == ("True", "StableUpdating")


# --- rollout start and canary readiness ------------------------------------------------------------------------------


def test_a_new_version_starts_a_canary_at_weight_zero_until_it_is_ready() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.set_version("2.0.0")

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.PROGRESSING
    assert plan.status.canary_version == "2.0.0"
    assert plan.canary_weight == 0
    assert plan.status.current_step is None
    assert plan.stable.model.version == "1.0.0"
    assert plan.canary is not None
    assert plan.canary.model.version == "2.0.0"
    assert plan.requeue_after == timedelta(minutes=10)
    assert condition(plan.status, PROGRESSING) == ("True", "WaitingForCanary")
    assert [event.reason for event in plan.events] == ["RolloutStarted"]

    plan = simulation.reconcile()

    assert plan.canary_weight == 10
    assert plan.status.current_step == 0
    assert plan.status.step_started_at == T0
    assert plan.requeue_after == timedelta(minutes=1)
    assert [event.reason for event in plan.events] == ["CanaryReady"]


def test_a_canary_not_ready_within_the_progress_deadline_is_rolled_back() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.canary_starts = False
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.wait("9m59s")
    assert simulation.reconcile().status.phase is Phase.PROGRESSING

    simulation.wait("1s")
    plan = simulation.reconcile()

    assert plan.status.phase is Phase.ROLLED_BACK
    assert plan.canary_weight == 0
    assert plan.canary is not None
    assert plan.canary.replicas == 0
    assert condition(plan.status, PROGRESSING) == ("False", "ProgressDeadlineExceeded")
    assert plan.status.history[-1].message == "canary 2.0.0 not available within progressDeadline 10m"


def test_a_canary_deployment_that_exceeds_its_own_progress_deadline_is_rolled_back() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.canary_starts = False
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.canary = replace(simulation.canary, ready_replicas=0, available=False, progress_deadline_exceeded=True)

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.ROLLED_BACK
    assert plan.status.history[-1].reason == "ProgressDeadlineExceeded"


# --- steps and checks ------------------------------------------------------------------------------------------------


def test_a_check_is_due_one_interval_after_the_step_started() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    simulation.wait("59s")
    assert check_window(simulation.spec, simulation.status, simulation.now) is None
    simulation.wait("1s")
    assert check_window(simulation.spec, simulation.status, simulation.now) == timedelta(minutes=1)


def test_a_healthy_canary_advances_through_every_step_and_is_promoted() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    weights = [simulation.check(HEALTHY).canary_weight for _ in range(3)]

    assert weights == [25, 50, 50]
    plan = simulation.plan
    assert plan is not None
    assert plan.status.phase is Phase.PROMOTING
    assert plan.stable.model.version == "2.0.0"
    assert condition(plan.status, PROGRESSING) == ("True", "Promoting")

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.STABLE
    assert plan.status.stable_version == "2.0.0"
    assert plan.status.stable_model is not None
    assert plan.status.stable_model.version == "2.0.0"
    assert plan.canary_weight == 0
    assert plan.canary is not None
    assert plan.canary.replicas == 0
    assert plan.status.canary_version is None
    assert plan.status.passed_checks == 3
    assert plan.status.history[-1].outcome is Outcome.PROMOTED
    assert condition(plan.status, PROGRESSING) == ("False", "Promoted")
    assert simulation.event_reasons() == [
        *["CheckPassed", "StepAdvanced"] * 2,
        "CheckPassed",
        "Promoting",
        "Promoted",
    ]


def test_promotion_waits_until_the_stable_workload_serves_the_new_version() -> None:
    simulation = at_first_step(make_spec("1.0.0", rollout={"steps": [50], "interval": "1m"}))
    simulation.check(HEALTHY)
    simulation.stable = WorkloadState(exists=True, version="2.0.0", replicas=2, ready_replicas=1, available=False)

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.PROMOTING
    assert plan.canary_weight == 50
    assert condition(plan.status, READY) == ("True", "StableUpdating")


def test_a_promotion_whose_stable_update_stalls_is_rolled_back_to_the_old_model() -> None:
    simulation = at_first_step(make_spec("1.0.0", rollout={"steps": [50], "interval": "1m"}))
    simulation.check(HEALTHY)
    simulation.stable = replace(simulation.stable, ready_replicas=0, available=False, progress_deadline_exceeded=True)

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.ROLLED_BACK
    assert plan.stable.model.version == "1.0.0"
    assert plan.status.history[-1].reason == "PromotionFailed"


def test_a_bad_canary_is_rolled_back_at_the_first_failed_check() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(HEALTHY)

    plan = simulation.check(ERRORING)

    assert plan.status.phase is Phase.ROLLED_BACK
    assert plan.canary_weight == 0
    assert plan.canary is not None
    assert plan.canary.replicas == 0
    assert plan.stable.model.version == "1.0.0"
    assert plan.stable.replicas == 2
    assert condition(plan.status, READY) == ("True", "StableAvailable")
    expected = "error rate 31% above maxErrorRate 1% at step 2/3 (25%)"
    assert condition(plan.status, PROGRESSING) == ("False", "AnalysisFailed")
    assert condition_message(plan.status, PROGRESSING) == expected
    entry = plan.status.history[-1]
    assert (entry.version, entry.outcome, entry.message) == ("2.0.0", Outcome.ROLLED_BACK, expected)
    assert [(event.type, event.reason) for event in plan.events] == [
        (EventType.WARNING, "CheckFailed"),
        (EventType.WARNING, "RolledBack"),
    ]
    assert plan.status.last_check is not None
    assert plan.status.last_check.verdict is Verdict.FAILED
    assert plan.requeue_after is None


def test_failed_checks_below_the_limit_keep_the_step_and_recheck_an_interval_later() -> None:
    simulation = at_first_step(make_spec("1.0.0", analysis={"maxFailedChecks": 2}))

    plan = simulation.check(ERRORING)

    assert plan.status.phase is Phase.PROGRESSING
    assert (plan.canary_weight, plan.status.failed_checks) == (10, 1)
    assert plan.requeue_after == timedelta(minutes=1)

    plan = simulation.check(ERRORING)

    assert plan.status.phase is Phase.ROLLED_BACK
    assert plan.status.history[-1].message.endswith("(failed check 2 of maxFailedChecks 2)")


def test_too_few_requests_is_inconclusive_and_never_a_pass() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    plan = simulation.check(QUIET)

    assert plan.status.last_check is not None
    assert plan.status.last_check.verdict is Verdict.INCONCLUSIVE
    assert (plan.canary_weight, plan.status.passed_checks, plan.status.inconclusive_checks) == (10, 0, 1)


def test_inconclusive_checks_up_to_the_limit_roll_back_by_default() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    phases = [simulation.check(QUIET).status.phase for _ in range(3)]

    assert phases == [Phase.PROGRESSING, Phase.PROGRESSING, Phase.ROLLED_BACK]
    assert simulation.status.history[-1].reason == "AnalysisInconclusive"
    assert "only 4 requests, fewer than minRequests 20" in simulation.status.history[-1].message


def test_inconclusive_hold_stays_at_the_step_rechecks_each_interval_and_continues_on_a_pass() -> None:
    spec = make_spec("1.0.0", analysis={"onInconclusive": "Hold", "maxInconclusiveChecks": 2})
    simulation = at_first_step(spec)

    for _ in range(4):
        plan = simulation.check(QUIET)
        assert (plan.status.phase, plan.canary_weight) == (Phase.PROGRESSING, 10)
    assert condition(simulation.status, PROGRESSING) == ("True", "InconclusiveHold")

    plan = simulation.check(HEALTHY)

    assert (plan.canary_weight, plan.status.inconclusive_checks) == (25, 0)
    assert condition(plan.status, PROGRESSING) == ("True", "Analysing")


def test_prometheus_errors_roll_back_after_max_consecutive_errors() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    streaks = [simulation.check(UNREACHABLE).status.consecutive_errors for _ in range(3)]

    assert streaks == [1, 2, 3]
    assert simulation.status.phase is Phase.ROLLED_BACK
    assert simulation.status.history[-1].reason == "AnalysisErrored"
    assert "connection refused" in simulation.status.history[-1].message


def test_an_unanswered_check_says_why_once_not_once_per_metric() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    plan = simulation.check(UNREACHABLE)

    [event] = [event for event in plan.events if event.reason == "CheckErrored"]
    assert event.message == "Errored at step 1/3 (10%): no answer: connection refused"


def test_an_answered_check_resets_the_error_streak() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    simulation.check(UNREACHABLE)
    simulation.check(UNREACHABLE)
    plan = simulation.check(QUIET)

    assert (plan.status.consecutive_errors, plan.status.inconclusive_checks) == (0, 1)


def test_a_due_check_without_a_reading_waits_for_one_and_asks_to_come_back_now() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.wait("5m")

    plan = simulation.reconcile(reading=None)

    assert plan.canary_weight == 10
    assert plan.requeue_after == timedelta(0)


def test_a_reading_passed_before_its_check_is_due_is_ignored() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.wait("30s")
    observations = Observations(
        generation=simulation.generation, stable=simulation.stable, canary=simulation.canary, analysis=ERRORING
    )

    plan = decide(simulation.spec, simulation.status, observations, simulation.now)

    assert plan.status == simulation.status
    assert plan.requeue_after == timedelta(seconds=30)


# --- replicas and routing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "stable", "canary"),
    [(0, 4, 0), (10, 2, 1), (25, 4, 1), (25, 6, 2), (50, 3, 3), (75, 2, 6), (90, 1, 9), (100, 2, 18), (10, 0, 0)],
)
def test_replica_ratio_approximates_the_weight(weight: int, stable: int, canary: int) -> None:
    assert canary_replicas_for_weight(weight, stable) == canary


def test_without_a_gateway_canary_replicas_follow_the_weight_from_the_first_step_on() -> None:
    simulation = deployed(make_spec("1.0.0", replicas=6))
    simulation.set_version("2.0.0")

    starting = simulation.reconcile()
    first_step = simulation.reconcile()
    second_step = simulation.check(HEALTHY)

    assert [plan.canary.replicas for plan in (starting, first_step, second_step) if plan.canary] == [1, 1, 2]
    assert {plan.stable.replicas for plan in (starting, first_step, second_step)} == {6}


def test_with_a_gateway_the_canary_runs_spec_replicas() -> None:
    gateway = {"gateway": {"parentRefs": [{"name": "public"}]}}
    simulation = at_first_step(make_spec("1.0.0", replicas=3, traffic=gateway))

    plan = simulation.reconcile()

    assert plan.canary is not None
    assert (plan.canary.replicas, plan.canary_weight) == (3, 10)


# --- versions changing -----------------------------------------------------------------------------------------------


def test_reapplying_a_rolled_back_version_does_not_restart_it() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(ERRORING)
    simulation.generation += 1

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.ROLLED_BACK
    assert plan.status.canary_version == "2.0.0"
    assert plan.events == ()


def test_retry_restarts_a_rolled_back_version_from_the_first_step() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(ERRORING)

    plan = simulation.reconcile(action=Action.RETRY)

    assert plan.status.phase is Phase.PROGRESSING
    assert (plan.status.failed_checks, plan.status.current_step, plan.canary_weight) == (0, None, 0)
    assert [event.reason for event in plan.events] == ["RolloutStarted"]
    assert simulation.reconcile().canary_weight == 10


def test_another_version_after_a_rollback_starts_a_fresh_rollout_from_stable() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(ERRORING)
    simulation.set_version("3.0.0")

    plan = simulation.reconcile()

    assert (plan.status.phase, plan.status.canary_version, plan.status.stable_version) == (
        Phase.PROGRESSING,
        "3.0.0",
        "1.0.0",
    )
    assert [entry.outcome for entry in plan.status.history] == [Outcome.ROLLED_BACK]


def test_a_new_version_mid_rollout_supersedes_the_canary() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(HEALTHY)
    simulation.set_version("3.0.0")

    plan = simulation.reconcile()

    assert plan.status.canary_version == "3.0.0"
    assert (plan.canary_weight, plan.status.current_step, plan.status.passed_checks) == (0, None, 0)
    assert plan.canary is not None
    assert plan.canary.model.version == "3.0.0"
    assert plan.stable.model.version == "1.0.0"
    entry = plan.status.history[-1]
    assert (entry.version, entry.outcome) == ("2.0.0", Outcome.SUPERSEDED)
    assert [event.reason for event in plan.events] == ["Superseded", "RolloutStarted"]


def test_setting_the_version_back_to_stable_ends_the_rollout_as_aborted() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.set_version("1.0.0")

    plan = simulation.reconcile()

    assert (plan.status.phase, plan.canary_weight, plan.status.canary_version) == (Phase.STABLE, 0, None)
    assert plan.status.history[-1].outcome is Outcome.ABORTED
    assert condition(plan.status, PROGRESSING) == ("False", "RevertedToStable")


def test_setting_the_version_back_to_stable_after_a_rollback_is_simply_stable() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(ERRORING)
    simulation.set_version("1.0.0")

    plan = simulation.reconcile()

    assert (plan.status.phase, plan.status.canary_version) == (Phase.STABLE, None)
    assert len(plan.status.history) == 1


def test_history_keeps_the_newest_entries_up_to_the_limit() -> None:
    simulation = deployed(make_spec("1.0.0"))
    for release in range(HISTORY_LIMIT + 3):
        simulation.set_version(f"2.0.{release}")
        simulation.reconcile()

    assert len(simulation.status.history) == HISTORY_LIMIT
    assert simulation.status.history[0].version == "2.0.2"
    assert simulation.status.history[-1].version == f"2.0.{HISTORY_LIMIT + 1}"


def test_history_entries_keep_the_rolled_out_and_the_stable_model_for_undo() -> None:
    simulation = at_first_step(make_spec("1.0.0", rollout={"steps": [50], "interval": "1m"}))
    simulation.check(HEALTHY)
    simulation.reconcile()  # promoted: 2.0.0 is stable
    simulation.set_version("3.0.0")
    simulation.reconcile()
    simulation.set_version("4.0.0")  # supersedes 3.0.0: the spec no longer names 3.0.0's model
    plan = simulation.reconcile(action=Action.ABORT)

    promoted, superseded, aborted = plan.status.history
    assert promoted.outcome is Outcome.PROMOTED
    assert promoted.model is not None
    assert (promoted.model.version, promoted.model.uri) == ("2.0.0", "s3://models/fraud/2.0.0/model.onnx")
    assert promoted.stable_model is not None
    assert promoted.stable_model.version == "1.0.0"
    assert (superseded.version, superseded.outcome, superseded.model) == ("3.0.0", Outcome.SUPERSEDED, None)
    assert superseded.stable_model is not None
    assert superseded.stable_model.version == "2.0.0"
    assert aborted.model is not None
    assert (aborted.version, aborted.outcome, aborted.model.version) == ("4.0.0", Outcome.ABORTED, "4.0.0")


# --- manual actions --------------------------------------------------------------------------------------------------


def test_manual_promote_skips_the_rest_of_the_step_without_analysis() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.wait("10s")

    plan = simulation.reconcile(action=Action.PROMOTE)

    assert (plan.canary_weight, plan.status.passed_checks) == (25, 0)
    assert plan.status.step_started_at == simulation.now
    assert plan.status.last_handled_action_id == "request-1"
    assert [event.reason for event in plan.events] == ["ManualPromotion", "StepAdvanced"]


def test_manual_promote_full_promotes_now() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    plan = simulation.reconcile(action=Action.PROMOTE_FULL)

    assert plan.status.phase is Phase.PROMOTING
    assert plan.stable.model.version == "2.0.0"
    assert simulation.reconcile().status.stable_version == "2.0.0"


def test_manual_abort_rolls_back_now() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    plan = simulation.reconcile(action=Action.ABORT)

    assert (plan.status.phase, plan.canary_weight) == (Phase.ROLLED_BACK, 0)
    assert plan.status.history[-1].outcome is Outcome.ABORTED
    assert [(event.type, event.reason) for event in plan.events] == [(EventType.WARNING, "RolloutAborted")]


def test_an_action_is_handled_once() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    observations = simulation.observe(action=Action.PROMOTE)

    first = decide(simulation.spec, simulation.status, observations, simulation.now)
    again = decide(simulation.spec, first.status, observations, simulation.now + timedelta(seconds=5))

    assert (first.canary_weight, again.canary_weight) == (25, 25)
    assert again.events == ()


@pytest.mark.parametrize(
    ("action", "why"),
    [
        (Action.PROMOTE, "no rollout in progress"),
        (Action.PROMOTE_FULL, "no rollout in progress"),
        (Action.ABORT, "no rollout to abort"),
        (Action.RETRY, "nothing was rolled back"),
    ],
)
def test_an_action_that_makes_no_sense_is_recorded_and_warned_about(action: Action, why: str) -> None:
    simulation = deployed(make_spec("1.0.0"))

    plan = simulation.reconcile(action=action)

    assert plan.status.phase is Phase.STABLE
    assert plan.status.last_handled_action_id == "request-1"
    [event] = plan.events
    assert (event.type, event.reason) == (EventType.WARNING, "ActionIgnored")
    assert why in event.message


def test_the_outcome_of_a_manual_action_is_recorded_in_the_status_for_the_cli() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    refused = simulation.reconcile(action=Action.RETRY)
    accepted = simulation.reconcile(action=Action.PROMOTE)

    assert refused.status.last_action == ActionOutcome(
        id="request-1", action=Action.RETRY, accepted=False, message="nothing was rolled back (phase Progressing)"
    )
    assert accepted.status.last_action == ActionOutcome(id="request-2", action=Action.PROMOTE, accepted=True)


# --- pauses and restarts ---------------------------------------------------------------------------------------------


def test_a_paused_rollout_neither_checks_nor_advances() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.paused = True

    plan = simulation.reconcile()
    assert (plan.status.phase, plan.canary_weight) == (Phase.PAUSED, 10)
    assert condition(plan.status, PROGRESSING) == ("Unknown", "Paused")

    simulation.wait("5m")
    assert check_window(simulation.spec, simulation.status, simulation.now) is None
    plan = simulation.reconcile(HEALTHY)

    assert (plan.status.phase, plan.canary_weight, plan.requeue_after) == (Phase.PAUSED, 10, None)
    assert plan.events == ()


def test_a_rollout_paused_before_its_canary_is_ready_runs_no_canary_pods_without_a_gateway() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.paused = True
    simulation.set_version("2.0.0")

    plan = simulation.reconcile()

    assert (plan.status.phase, plan.canary_weight) == (Phase.PAUSED, 0)
    assert plan.canary is not None
    assert plan.canary.replicas == 0
    assert [event.reason for event in plan.events] == ["RolloutStarted", "Paused"]

    simulation.paused = False
    resumed = simulation.reconcile()
    assert resumed.canary is not None
    assert (resumed.status.current_step, resumed.canary.replicas) == (None, 1)
    assert simulation.reconcile().canary_weight == 10


def test_promote_is_refused_while_paused_but_abort_is_not() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.paused = True
    simulation.reconcile()

    refused = simulation.reconcile(action=Action.PROMOTE_FULL)
    aborted = simulation.reconcile(action=Action.ABORT)

    assert [event.reason for event in refused.events] == ["ActionIgnored"]
    assert aborted.status.phase is Phase.ROLLED_BACK


def test_after_a_long_pause_the_check_that_fell_due_runs_at_once() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.wait("20s")
    simulation.paused = True
    simulation.reconcile()
    simulation.wait("10m")
    simulation.paused = False

    resumed = simulation.reconcile()
    assert (resumed.status.phase, resumed.requeue_after) == (Phase.PROGRESSING, timedelta(0))
    checked = simulation.reconcile(HEALTHY)

    assert checked.canary_weight == 25
    assert [event.reason for event in resumed.events] == ["Resumed"]


def test_after_a_short_pause_the_step_keeps_its_schedule() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.wait("20s")
    simulation.paused = True
    simulation.reconcile()
    simulation.wait("10s")
    simulation.paused = False

    plan = simulation.reconcile()

    assert plan.requeue_after == timedelta(seconds=30)


def test_a_paused_rollout_records_the_phase_it_is_frozen_in_and_resumes_there() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.paused = True

    paused = simulation.reconcile()
    assert (paused.status.phase, paused.status.paused_in) == (Phase.PAUSED, Phase.PROGRESSING)

    simulation.paused = False
    resumed = simulation.reconcile()
    assert (resumed.status.phase, resumed.status.paused_in, resumed.canary_weight) == (Phase.PROGRESSING, None, 10)


@pytest.mark.parametrize(
    ("spec", "progress", "resumes_in"),
    [
        pytest.param(make_spec("1.0.0"), {"current_step": 1, "canary_weight": 25}, Phase.PROGRESSING, id="at-a-step"),
        pytest.param(make_spec("1.0.0"), {}, Phase.PROGRESSING, id="before-the-canary-was-ready"),
        pytest.param(
            make_spec(
                "1.0.0", validation={"uri": "https://data.example.com/holdout.csv", "metric": "accuracy", "min": 0.85}
            ),
            {},
            Phase.VALIDATING,
            id="before-the-validation-gate-passed",
        ),
        pytest.param(
            make_spec("1.0.0", rollout={"steps": [10, 50], "shadow": {"percent": 50, "checks": 2}}),
            {"passed_checks": 1},
            Phase.SHADOWING,
            id="in-the-shadow-phase",
        ),
    ],
)
def test_a_rollout_paused_by_an_operator_without_paused_in_resumes_where_its_progress_shows(
    spec: ModelDeploymentSpec, progress: dict[str, Any], resumes_in: Phase
) -> None:
    simulation = deployed(spec)
    simulation.set_version("2.0.0")
    simulation.reconcile()
    written_by_an_older_operator = {"phase": Phase.PAUSED, "paused_in": None, **progress}
    simulation.status = simulation.status.model_copy(update=written_by_an_older_operator)

    resumed = simulation.reconcile()

    assert (resumed.status.phase, resumed.status.paused_in) == (resumes_in, None)
    assert [event.reason for event in resumed.events][:1] == ["Resumed"]


def test_restarted_operator_continues_from_recorded_step() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(HEALTHY)
    simulation.wait("40s")
    written = simulation.status.to_wire()

    restarted = Simulation(simulation.spec, now=simulation.now, stable=simulation.stable, canary=simulation.canary)
    restarted.status = ModelDeploymentStatus.model_validate(written)
    plan = restarted.reconcile()

    assert (plan.status.current_step, plan.canary_weight, plan.requeue_after) == (1, 25, timedelta(seconds=20))
    assert plan.events == ()
    assert restarted.check(HEALTHY).canary_weight == 50


def test_deciding_twice_on_the_same_input_changes_nothing_the_second_time() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.until_next_check()
    observations = simulation.observe(ERRORING)

    first = decide(simulation.spec, simulation.status, observations, simulation.now)
    second = decide(simulation.spec, first.status, observations, simulation.now)

    assert first.status.phase is Phase.ROLLED_BACK
    assert second.status == first.status
    assert second.events == ()


def test_a_check_reading_with_nan_values_is_no_data() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    plan = simulation.check(AnalysisReading(request_count=float("nan"), error_rate=0.0, latency_p99_seconds=0.1))

    assert plan.status.last_check is not None
    assert plan.status.last_check.verdict is Verdict.INCONCLUSIVE
