"""The PodsCanStart and RouteAccepted conditions, set from the observations before the phase handlers run (a route
not accepted holds the weight: `core.world.route_holds`), each with one Event per change."""

from __future__ import annotations

from sluice.core.conditions import ConditionStatus, find_condition
from sluice.core.plan import EventType
from sluice.core.rollout.state import Decision
from sluice.core.world import (
    PODS_CAN_START,
    ROUTE_ACCEPTED,
    ConditionText,
    has_gateway,
    pods_condition,
    route_condition,
    route_holds,
)


def observe_world(decision: Decision) -> None:
    """Set PodsCanStart, and RouteAccepted with a Gateway (removed without one); when the route becomes accepted
    while a step runs, the step starts over: its time so far moved no traffic."""
    _set(decision, PODS_CAN_START, pods_condition(decision.observations.blocked_pods), "PodsCannotStart")
    status = decision.status
    if not has_gateway(decision.spec):
        status.conditions = [condition for condition in status.conditions if condition.type != ROUTE_ACCEPTED]
        return
    held = route_holds(decision.spec, status)
    previous = find_condition(status.conditions, ROUTE_ACCEPTED)
    _set(
        decision,
        ROUTE_ACCEPTED,
        route_condition(decision.observations.route, previous, decision.now),
        "RouteNotAccepted",
    )
    if held and previous is not None and not route_holds(decision.spec, status):  # (not after an upgrade)
        if previous.status == ConditionStatus.FALSE:
            decision.event(EventType.NORMAL, "RouteAccepted", "every parent accepted the HTTPRoute; steps move again")
        if status.current_step is not None:
            status.step_started_at = decision.now


def _set(decision: Decision, condition_type: str, text: ConditionText, warning: str) -> None:
    """Set the condition; a Warning Event when it becomes False or its reason changes while False."""
    condition_status, reason, message = text
    previous = find_condition(decision.status.conditions, condition_type)
    decision.set_condition(condition_type, condition_status, reason, message)
    news = previous is None or previous.status != condition_status or previous.reason != reason
    if condition_status is ConditionStatus.FALSE and news:
        decision.event(EventType.WARNING, warning, message)
