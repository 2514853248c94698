"""Shadowing: once the canary is ready, mirror requests to it (answers discarded) and check every interval; held
without a mirror while the route's Gateways are not known to implement RequestMirror (`mirror.py`)."""

from __future__ import annotations

from sluice.api.v1alpha1 import Phase
from sluice.core.gates import shadow_check
from sluice.core.plan import EventType
from sluice.core.rollout.mirror import hold_for_mirror
from sluice.core.rollout.schedule import check_window
from sluice.core.rollout.state import Decision
from sluice.core.rollout.verdicts import record_check


def handle(decision: Decision) -> None:
    status, shadow = decision.status, decision.spec.rollout.shadow
    if shadow is None:
        end_shadow(decision, "spec.rollout.shadow removed")
    elif decision.roll_back_if_stuck() or hold_for_mirror(decision):
        return
    elif status.step_started_at is None:
        if decision.canary_available():
            status.step_started_at = decision.now
            decision.event(
                EventType.NORMAL,
                "ShadowStarted",
                f"canary {status.canary_version} ready; mirroring {shadow.percent}% of requests to it, "
                f"answers discarded; {shadow.checks} passed checks needed before live traffic",
            )
    else:
        reading, comparisons = decision.observations.analysis, decision.observations.shadow
        if reading is None or comparisons is None or check_window(decision.spec, status, decision.now) is None:
            return
        check = shadow_check(decision.spec.analysis, shadow, reading, comparisons, time=decision.now)

        def enough_passed() -> None:
            if status.passed_checks >= shadow.checks:
                end_shadow(decision, f"{status.passed_checks} shadow checks passed")

        record_check(decision, check, on_pass=enough_passed, failed_reason="ShadowAnalysisFailed")


def end_shadow(decision: Decision, why: str) -> None:
    """On to the first live step (entered at once: the canary is ready)."""
    decision.pass_gate(Phase.SHADOWING)
    decision.event(EventType.NORMAL, "ShadowPassed", f"canary {decision.status.canary_version}: {why}; going live")
