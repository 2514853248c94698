"""The shadow phase's guard in the pure core (state in, plan out): requests are mirrored only through Gateways whose
GatewayClass implements RequestMirror; otherwise the rollout holds before the shadow phase, weight 0 and no mirror,
with Progressing=False, Stalled=True and one Warning Event naming the class and the way on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sluice.api.v1alpha1 import Action, Phase
from sluice.core.conditions import PROGRESSING, STALLED, find_condition
from sluice.core.plan import EventType, MirrorSupport, ParentGateway, Plan
from unit.core.support import HEALTHY, MIRRORING_GATEWAY, Simulation, deployed, make_spec

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}
SHADOW = {"percent": 40, "checks": 2, "minComparisons": 50, "minAgreement": 0.9}
TRAEFIK = (ParentGateway("default/public", "traefik", MirrorSupport.NOT_LISTED),)


def shadowed(gateways: tuple[ParentGateway, ...] | None) -> Simulation:
    """Stable 1.0.0 behind a Gateway with rollout.shadow, 2.0.0 applied, its canary ready, the Gateways as given."""
    simulation = deployed(make_spec("1.0.0", traffic=GATEWAY, rollout={"shadow": SHADOW}))
    simulation.gateways = gateways
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.reconcile()
    return simulation


def held(plan: Plan) -> bool:
    status = plan.status
    no_traffic = (plan.canary_weight, plan.mirror_percent, status.current_step, status.step_started_at) == (
        0,
        0,
        None,
        None,
    )
    return status.phase is Phase.SHADOWING and no_traffic


def condition(plan: Plan, condition_type: str) -> tuple[str, str, str]:
    found = find_condition(plan.status.conditions, condition_type)
    assert found is not None
    return str(found.status), found.reason, found.message


def test_behind_a_gateway_lacking_request_mirror_the_shadow_phase_holds_without_a_mirror_or_live_weight() -> None:
    simulation = shadowed(TRAEFIK)
    plan = simulation.reconcile()
    assert held(plan)
    status, reason, message = condition(plan, PROGRESSING)
    assert (status, reason) == ("False", "GatewayLacksRequestMirror")
    assert "GatewayClass traefik of Gateway default/public does not list HTTPRouteRequestMirror" in message
    assert "stable 1.0.0 keeps all traffic" in message
    assert "remove spec.rollout.shadow" in message
    assert "attach the route to a Gateway whose GatewayClass supports RequestMirror" in message
    assert condition(plan, STALLED) == ("True", "GatewayLacksRequestMirror", message)
    warnings = [event for event in simulation.events if event.type is EventType.WARNING]
    assert [(event.reason, event.message) for event in warnings] == [("GatewayLacksRequestMirror", message)]
    assert "ShadowStarted" not in simulation.event_reasons()


def test_a_held_shadow_phase_warns_once_and_looks_again_every_interval() -> None:
    simulation = shadowed(TRAEFIK)
    for _ in range(3):
        simulation.wait("1m")
        plan = simulation.reconcile()
        assert held(plan)
        assert plan.requeue_after == timedelta(minutes=1)
    assert simulation.event_reasons().count("GatewayLacksRequestMirror") == 1


def test_the_shadow_phase_starts_as_soon_as_the_gateway_class_lists_request_mirror() -> None:
    simulation = shadowed(TRAEFIK)
    simulation.gateways = MIRRORING_GATEWAY
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.mirror_percent, plan.canary_weight) == (Phase.SHADOWING, 40, 0)
    assert condition(plan, PROGRESSING)[:2] == ("True", "Shadowing")
    assert condition(plan, STALLED)[0] == "False"
    assert simulation.event_reasons()[-1] == "ShadowStarted"


def test_removing_rollout_shadow_from_a_held_rollout_goes_on_to_the_first_live_step() -> None:
    simulation = shadowed(TRAEFIK)
    rollout = simulation.spec.rollout.model_copy(update={"shadow": None})
    simulation.spec = simulation.spec.model_copy(update={"rollout": rollout})
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.status.current_step, plan.canary_weight, plan.mirror_percent) == (
        Phase.PROGRESSING,
        0,
        10,
        0,
    )
    assert "ShadowPassed" in simulation.event_reasons()


def test_a_manual_promote_skips_a_held_shadow_phase() -> None:
    simulation = shadowed(TRAEFIK)
    plan = simulation.reconcile(action=Action.PROMOTE)
    assert (plan.status.phase, plan.status.current_step, plan.mirror_percent) == (Phase.PROGRESSING, 0, 0)


@pytest.mark.parametrize(
    ("parent", "why", "way"),
    [
        (
            ParentGateway("default/public", "silent", MirrorSupport.NOT_PUBLISHED),
            "GatewayClass silent of Gateway default/public publishes no status.supportedFeatures",
            "--mirror-gateway-classes",
        ),
        (
            ParentGateway("default/public", None, MirrorSupport.FORBIDDEN),
            "the operator may not read Gateway default/public (Forbidden)",
            "grant the operator get on gateways and gatewayclasses",
        ),
        (
            ParentGateway("default/public", "traefik", MirrorSupport.FORBIDDEN),
            "the operator may not read GatewayClass traefik of Gateway default/public (Forbidden)",
            "grant the operator get on gateways and gatewayclasses",
        ),
        (ParentGateway("default/public", None, MirrorSupport.MISSING), "Gateway default/public not found", ""),
        (
            ParentGateway("default/public", "gone", MirrorSupport.MISSING),
            "GatewayClass gone of Gateway default/public not found",
            "",
        ),
        (
            ParentGateway("default/public", None, MirrorSupport.UNREADABLE),
            "Gateway default/public could not be read",
            "",
        ),
        (None, "the HTTPRoute's parent Gateways were not read", ""),
    ],
)
def test_unknown_support_holds_too_and_says_which_case_it_is(parent: ParentGateway | None, why: str, way: str) -> None:
    plan = shadowed(None if parent is None else (parent,)).reconcile()
    assert held(plan)
    status, reason, message = condition(plan, PROGRESSING)
    assert (status, reason) == ("False", "RequestMirrorSupportUnknown")
    assert why in message
    assert way in message


def test_one_parent_gateway_without_request_mirror_is_enough_to_hold() -> None:
    internal = ParentGateway("edge/internal", "traefik", MirrorSupport.NOT_LISTED)
    plan = shadowed((*MIRRORING_GATEWAY, internal)).reconcile()
    assert held(plan)
    message = condition(plan, PROGRESSING)[2]
    assert "edge/internal" in message
    assert "default/public" not in message


def test_a_class_whose_support_the_admin_asserts_is_mirrored_through() -> None:
    plan = shadowed((ParentGateway("default/public", "silent", MirrorSupport.ASSERTED),)).reconcile()
    assert (plan.status.phase, plan.mirror_percent) == (Phase.SHADOWING, 40)


def test_a_running_mirror_stops_when_support_goes_away_and_its_passed_checks_count_when_it_returns() -> None:
    simulation = shadowed(MIRRORING_GATEWAY)
    assert simulation.plan is not None
    assert simulation.plan.mirror_percent == 40
    plan = simulation.check(HEALTHY)
    assert plan.status.passed_checks == 1
    simulation.gateways = TRAEFIK
    plan = simulation.reconcile()
    assert held(plan)
    assert simulation.event_reasons()[-1] == "GatewayLacksRequestMirror"
    simulation.gateways = MIRRORING_GATEWAY
    plan = simulation.reconcile()
    assert (plan.mirror_percent, plan.status.passed_checks) == (40, 1)
    plan = simulation.check(HEALTHY)
    assert (plan.status.phase, plan.status.current_step) == (Phase.PROGRESSING, 0)


def test_a_held_canary_that_never_gets_ready_is_still_rolled_back_at_its_progress_deadline() -> None:
    simulation = deployed(make_spec("1.0.0", traffic=GATEWAY, rollout={"shadow": SHADOW}))
    simulation.gateways = TRAEFIK
    simulation.canary_starts = False
    simulation.set_version("2.0.0")
    plan = simulation.reconcile()
    assert held(plan)
    assert plan.requeue_after == timedelta(minutes=1)
    simulation.wait("10m")
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.status.history[-1].reason) == (Phase.ROLLED_BACK, "ProgressDeadlineExceeded")
