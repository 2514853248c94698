"""The shadow phase's guard: requests are mirrored only through Gateways whose class implements RequestMirror.

A Gateway that does not implement the HTTPRoute `RequestMirror` filter may serve a route carrying it with errors
(Traefik v3.6 answers every request of such a route with 500). So the filter is written only when every parent
Gateway's GatewayClass lists `HTTPRouteRequestMirror` in `status.supportedFeatures` (or the operator's admin asserts
support for the class). Otherwise the shadow phase holds before it starts: weight 0 and no mirror, so the stable
version keeps all traffic; Progressing=False (Stalled=True) and a Warning Event name the Gateway, its class and the
way on; the phase starts as soon as support appears (looked at every rollout.interval) or spec.rollout.shadow is
removed. docs/ml-analysis.md, "Shadow traffic", has the reasoning.
"""

from __future__ import annotations

from datetime import timedelta

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus, Phase
from sluice.core.conditions import PROGRESSING, ConditionStatus, find_condition
from sluice.core.plan import EventType, MirrorSupport, ParentGateway
from sluice.core.rollout.state import Decision
from sluice.core.rollout.texts import ConditionText

MIRROR_FEATURE = "HTTPRouteRequestMirror"
"""The Gateway API feature name a GatewayClass lists when its implementation supports the RequestMirror filter."""

LACKS_MIRROR = "GatewayLacksRequestMirror"
"""Reason: a parent Gateway's class publishes its supported features and RequestMirror is not among them."""
SUPPORT_UNKNOWN = "RequestMirrorSupportUnknown"
"""Reason: the operator could not establish a parent Gateway's support (class silent, object missing, Forbidden)."""

_SUPPORTED = frozenset({MirrorSupport.LISTED, MirrorSupport.ASSERTED})


def mirror_allowed(gateways: tuple[ParentGateway, ...] | None) -> bool:
    """Whether every parent Gateway is known to support RequestMirror (never when they were not read)."""
    return bool(gateways) and all(parent.support in _SUPPORTED for parent in gateways or ())


def mirror_hold(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, gateways: tuple[ParentGateway, ...] | None
) -> ConditionText | None:
    """The Progressing condition of a shadow phase held for want of RequestMirror support; None when not held."""
    if spec.rollout.shadow is None or status.phase is not Phase.SHADOWING or mirror_allowed(gateways):
        return None
    blockers = [parent for parent in gateways or () if parent.support not in _SUPPORTED]
    lacking = any(parent.support is MirrorSupport.NOT_LISTED for parent in blockers)
    why = "; ".join(_why(parent) for parent in blockers) or "the HTTPRoute's parent Gateways were not read"
    ways = ["remove spec.rollout.shadow", "attach the route to a Gateway whose GatewayClass supports RequestMirror"]
    if any(parent.support is MirrorSupport.NOT_PUBLISHED for parent in blockers):
        ways.append("have the operator's admin assert the class's support (--mirror-gateway-classes)")
    if any(parent.support is MirrorSupport.FORBIDDEN for parent in blockers):
        ways.append("grant the operator get on gateways and gatewayclasses (the chart's ClusterRole does)")
    message = (
        f"shadow phase of canary {status.canary_version} held at weight 0, no request mirrored: {why}; "
        f"stable {status.stable_version} keeps all traffic. To go on: {', or '.join(ways)}"
    )
    return ConditionStatus.FALSE, LACKS_MIRROR if lacking else SUPPORT_UNKNOWN, message


def _why(parent: ParentGateway) -> str:
    gateway, gateway_class = f"Gateway {parent.gateway}", parent.gateway_class
    subject = gateway if gateway_class is None else f"GatewayClass {gateway_class} of {gateway}"
    match parent.support:
        case MirrorSupport.NOT_LISTED:
            return f"{subject} does not list {MIRROR_FEATURE} in status.supportedFeatures"
        case MirrorSupport.NOT_PUBLISHED:
            return f"{subject} publishes no status.supportedFeatures, so its support is unknown"
        case MirrorSupport.MISSING:
            return f"{subject} not found"
        case MirrorSupport.FORBIDDEN:
            return f"the operator may not read {subject} (Forbidden)"
    return f"{subject} could not be read"


def hold_for_mirror(decision: Decision) -> bool:
    """Hold the shadow phase, its mirror stopped, while RequestMirror support is not established; whether it
    holds. The Warning Event comes with a new reason or message of the condition, so once per cause."""
    held = mirror_hold(decision.spec, decision.status, decision.observations.gateways)
    if held is None:
        return False
    status = decision.status
    status.step_started_at = None  # a mirror that ran stops; it starts again (and its checks) once supported
    previous = find_condition(status.conditions, PROGRESSING)
    _, reason, message = held
    if previous is None or (previous.reason, previous.message) != (reason, message):
        decision.set_progressing(*held)
        decision.event(EventType.WARNING, reason, message)
    return True


def held_wait(spec: ModelDeploymentSpec, scheduled: timedelta | None) -> timedelta:
    """When a held shadow phase looks again: every rollout.interval (no watch says a GatewayClass changed),
    sooner for the canary's progress deadline (a deadline already past while held means the canary is ready)."""
    interval = parse_duration(spec.rollout.interval)
    return scheduled if scheduled is not None and timedelta(0) < scheduled < interval else interval
