"""Conditions from the world, state in and plan out through `decide`: the actual share, pods that cannot start, a
first deploy past its deadline, and an HTTPRoute its Gateways did not accept."""

from __future__ import annotations

from datetime import timedelta

from sluice.api.v1alpha1 import Action, ModelDeploymentStatus, Phase
from sluice.core.conditions import PROGRESSING, READY, RECONCILING, STALLED, find_condition
from sluice.core.plan import BlockedPods, EventType, RouteReading, WorkloadState
from sluice.core.rollout import check_window, decide
from sluice.core.world import PODS_CAN_START, ROUTE_ACCEPTED, ROUTE_GRACE, WORLD_POLL, blocked_pods
from unit.core.support import HEALTHY, Simulation, at_first_step, deployed, make_spec

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}
ACCEPTED = RouteReading(parents=1, accepted=1, refused=0)
SILENT = RouteReading(parents=1, accepted=0, refused=0)
REFUSED = RouteReading(parents=1, accepted=0, refused=1, reason="NotAllowedByListeners")


def condition(status: ModelDeploymentStatus, condition_type: str) -> tuple[str, str]:
    found = find_condition(status.conditions, condition_type)
    assert found is not None, f"no {condition_type} condition"
    return found.status, found.reason


# --- the actual share ------------------------------------------------------------------------------------------------


def test_one_canary_pod_beside_one_stable_pod_is_reported_as_half_the_traffic_at_the_ten_percent_step() -> None:
    simulation = at_first_step(make_spec("1.0.0", replicas=1))

    status = simulation.reconcile().status

    assert (status.canary_weight, status.actual_weight) == (10, 50)


def test_with_a_gateway_the_actual_share_is_the_route_weight_once_accepted_and_unknown_before() -> None:
    simulation = at_first_step(make_spec("1.0.0", traffic=GATEWAY))
    assert (simulation.status.canary_weight, simulation.status.actual_weight) == (10, 10)

    simulation.route = SILENT
    assert simulation.reconcile().status.actual_weight is None


def test_between_rollouts_without_a_gateway_the_canary_takes_no_share() -> None:
    assert deployed(make_spec("1.0.0")).reconcile().status.actual_weight == 0


# --- pods that cannot start ------------------------------------------------------------------------------------------


def test_the_most_common_blocking_reason_names_the_blocked_pods_and_other_reasons_are_not_counted() -> None:
    reasons = ["ImagePullBackOff", "Unschedulable", None, "ContainerCreating", "Unschedulable"]
    assert blocked_pods(reasons) == BlockedPods(reason="Unschedulable", count=3)
    assert blocked_pods([None, "ContainerCreating"]) is None


def test_pods_that_cannot_schedule_set_pods_can_start_false_with_the_kubernetes_reason_and_warn_once() -> None:
    simulation = Simulation(make_spec("1.0.0", replicas=4))
    simulation.reconcile()
    pending = WorkloadState(exists=True, version="1.0.0", replicas=4)
    simulation.blocked_pods = BlockedPods(reason="Unschedulable", count=4)

    simulation.stable = pending
    plan = simulation.reconcile()
    simulation.stable = pending
    again = simulation.reconcile()

    assert condition(plan.status, PODS_CAN_START) == ("False", "Unschedulable")
    found = find_condition(plan.status.conditions, PODS_CAN_START)
    assert found is not None
    assert found.message.startswith("4 pods cannot start (Unschedulable)")
    assert [(e.type, e.reason) for e in plan.events] == [(EventType.WARNING, "PodsCannotStart")]
    assert again.events == ()
    assert plan.requeue_after == WORLD_POLL, "pods are not watched: the operator looks again"


def test_a_first_deploy_past_its_progress_deadline_is_stalled_with_the_pods_reason_and_no_longer_progressing() -> None:
    simulation = Simulation(make_spec("1.0.0", replicas=4))
    simulation.reconcile()
    simulation.stable = WorkloadState(exists=True, version="1.0.0", replicas=4, progress_deadline_exceeded=True)
    simulation.blocked_pods = BlockedPods(reason="Unschedulable", count=4)

    status = simulation.reconcile().status

    assert status.phase is Phase.INITIALIZING
    assert condition(status, READY) == ("False", "ProgressDeadlineExceeded")
    assert condition(status, PROGRESSING) == ("False", "ProgressDeadlineExceeded")
    assert condition(status, RECONCILING)[0] == "False"
    assert condition(status, STALLED) == ("True", "ProgressDeadlineExceeded")
    stalled = find_condition(status.conditions, STALLED)
    assert stalled is not None
    assert stalled.message.endswith("4 pods cannot start (Unschedulable)")


# --- a route no Gateway accepted -------------------------------------------------------------------------------------


def test_a_route_its_gateway_refused_holds_the_canary_at_weight_zero_and_says_why() -> None:
    simulation = deployed(make_spec("1.0.0", traffic=GATEWAY))
    simulation.route = REFUSED
    simulation.set_version("2.0.0")

    plans = [simulation.reconcile() for _ in range(3)]

    status = plans[-1].status
    assert (status.phase, status.current_step, status.canary_weight) == (Phase.PROGRESSING, None, 0)
    assert condition(status, ROUTE_ACCEPTED) == ("False", "NotAllowedByListeners")
    assert condition(status, PROGRESSING) == ("True", "RouteNotAccepted")
    warnings = [e.reason for plan in plans for e in plan.events if e.type is EventType.WARNING]
    assert warnings == ["RouteNotAccepted"]


def test_a_parent_silent_past_the_grace_counts_as_not_accepting() -> None:
    simulation = deployed(make_spec("1.0.0", traffic=GATEWAY))
    simulation.route = SILENT

    pending = simulation.reconcile()
    simulation.wait(ROUTE_GRACE)
    refused = simulation.reconcile()
    still = simulation.reconcile()

    assert condition(pending.status, ROUTE_ACCEPTED) == ("Unknown", "Pending")
    assert condition(refused.status, ROUTE_ACCEPTED) == ("False", "NoParentStatus")
    assert [e.reason for e in refused.events] == ["RouteNotAccepted"]
    assert (condition(still.status, ROUTE_ACCEPTED), still.events) == (("False", "NoParentStatus"), ())


def test_a_route_refused_mid_rollout_holds_the_weight_and_no_check_runs_until_it_is_accepted_again() -> None:
    simulation = at_first_step(make_spec("1.0.0", traffic=GATEWAY))
    simulation.route = REFUSED
    simulation.reconcile()
    simulation.wait("5m")

    held = simulation.reconcile(HEALTHY)

    assert (held.status.current_step, held.canary_weight, held.status.passed_checks) == (0, 10, 0)
    assert check_window(simulation.spec, held.status, simulation.now) is None
    assert held.requeue_after == WORLD_POLL
    simulation.route = ACCEPTED
    released = simulation.reconcile()
    assert released.status.step_started_at == simulation.now, "the step's interval starts over"
    assert "RouteAccepted" in [e.reason for e in released.events]
    assert released.requeue_after == timedelta(minutes=1)


def test_a_manual_promote_is_refused_while_the_route_holds_the_weight() -> None:
    simulation = at_first_step(make_spec("1.0.0", traffic=GATEWAY))
    simulation.route = REFUSED

    plan = simulation.reconcile(action=Action.PROMOTE)

    assert (plan.status.current_step, plan.canary_weight) == (0, 10)
    assert plan.status.last_action is not None
    assert not plan.status.last_action.accepted
    assert "RouteAccepted" in plan.status.last_action.message


def test_without_a_gateway_there_is_no_route_accepted_condition() -> None:
    simulation = deployed(make_spec("1.0.0", traffic=GATEWAY))
    simulation.spec = make_spec("1.0.0")

    status = simulation.reconcile().status

    assert find_condition(status.conditions, ROUTE_ACCEPTED) is None
    plan = decide(simulation.spec, status, simulation.observe(), simulation.now)
    assert plan.status == status
