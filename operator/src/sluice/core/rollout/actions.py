"""Manual actions (the sluice.dev/action annotations): promote, promote-full, abort, retry; a refused one is a
Warning Event saying why."""

from __future__ import annotations

from collections.abc import Callable

from sluice.api.v1alpha1 import Action, ActionOutcome, Outcome, Phase
from sluice.core.plan import EventType
from sluice.core.rollout.order import ROLLOUT_PHASES
from sluice.core.rollout.phases.progressing import advance
from sluice.core.rollout.phases.shadowing import end_shadow
from sluice.core.rollout.state import Decision
from sluice.core.world import route_holds

ActionHandler = Callable[[Decision, str], str | None]
"""Carries out a request (by id) on a decision; the reason it was refused, or None."""


def handle_action(decision: Decision) -> None:
    request = decision.observations.action
    if request is None or request.request_id == decision.status.last_handled_action_id:
        return
    decision.status.last_handled_action_id = request.request_id
    refusal = _HANDLERS[request.action](decision, request.request_id)
    decision.status.last_action = ActionOutcome(
        id=request.request_id, action=request.action, accepted=refusal is None, message=refusal or ""
    )
    if refusal is not None:
        message = f"{request.action} ({request.request_id}) ignored: {refusal}"
        decision.event(EventType.WARNING, "ActionIgnored", message)


def _promote(decision: Decision, request_id: str) -> str | None:
    refusal = _promotion_refusal(decision)
    if refusal is not None:
        return refusal
    if decision.status.phase is Phase.SHADOWING:
        decision.event(EventType.NORMAL, "ManualPromotion", f"{request_id}: skipping the rest of the shadow phase")
        end_shadow(decision, f"shadow skipped ({request_id})")
        return None
    if decision.status.current_step is None:
        return f"canary {decision.status.canary_version} is not ready yet (promote-full promotes without steps)"
    if route_holds(decision.spec, decision.status):
        return "the HTTPRoute is not accepted by every parent (RouteAccepted): no step moves the weight"
    decision.event(EventType.NORMAL, "ManualPromotion", f"{request_id}: skipping the rest of {decision.where()}")
    advance(decision)
    return None


def _promote_full(decision: Decision, request_id: str) -> str | None:
    refusal = _promotion_refusal(decision)
    if refusal is not None:
        return refusal
    decision.event(EventType.NORMAL, "ManualPromotion", f"{request_id}: promoting now, {decision.where()}")
    decision.start_promoting(f"promote-full requested ({request_id})")
    return None


def _promotion_refusal(decision: Decision) -> str | None:
    phase, version = decision.status.phase, decision.status.canary_version
    if phase is Phase.PAUSED:
        return "the rollout is paused; resume it first (spec.paused, annotation sluice.dev/paused)"
    if phase is Phase.PROMOTING:
        return f"{version} is already being promoted"
    if phase is Phase.VALIDATING:
        return f"{version} has not passed the validation gate (abort, or fix spec.validation)"
    if phase not in (Phase.PROGRESSING, Phase.SHADOWING):
        return f"no rollout in progress (phase {phase})"
    return None


def _abort(decision: Decision, request_id: str) -> str | None:
    if decision.status.phase not in ROLLOUT_PHASES:
        return f"no rollout to abort (phase {decision.status.phase})"
    decision.roll_back(Outcome.ABORTED, "Aborted", f"aborted by request {request_id} {decision.where()}")
    return None


def _retry(decision: Decision, request_id: str) -> str | None:
    status = decision.status
    if status.phase is not Phase.ROLLED_BACK:
        return f"nothing was rolled back (phase {status.phase})"
    decision.start_rollout(f"retrying {status.canary_version} ({request_id})")
    return None


_HANDLERS: dict[Action, ActionHandler] = {
    Action.PROMOTE: _promote,
    Action.PROMOTE_FULL: _promote_full,
    Action.ABORT: _abort,
    Action.RETRY: _retry,
}
