"""Progressing: the live steps. Wait for the canary, then check each step every interval and move on or back."""

from __future__ import annotations

from functools import partial

from sluice.api.durations import parse_duration
from sluice.core.analysis import evaluate
from sluice.core.plan import AnalysisReading, EventType
from sluice.core.rollout.schedule import check_window, judging
from sluice.core.rollout.state import Decision
from sluice.core.rollout.verdicts import record_check
from sluice.core.world import route_holds


def handle(decision: Decision) -> None:
    status = decision.status
    if decision.roll_back_if_stuck() or route_holds(decision.spec, status):
        return  # a route no Gateway accepted: the weight and the step clock hold (RouteAccepted says why)
    if status.current_step is None:
        if decision.canary_available():
            decision.enter_step(0)
            where = decision.where()
            decision.event(EventType.NORMAL, "CanaryReady", f"canary {status.canary_version} ready; {where}")
    else:
        _run_step(decision, status.current_step)


def _run_step(decision: Decision, step: int) -> None:
    steps = decision.spec.rollout.steps
    step = min(step, len(steps) - 1)  # steps edited mid-rollout apply at once, to the same step index
    decision.status.current_step = step
    decision.status.canary_weight = steps[step]
    reading = decision.observations.analysis
    if reading is None or check_window(decision.spec, decision.status, decision.now) is None:
        return
    may_pass = True
    if judging(decision.spec, decision.status):
        may_pass = _old_enough(decision, reading)
    check = evaluate(
        decision.spec.analysis, reading, time=decision.now, step=step, weight=steps[step], may_pass=may_pass
    )
    record_check(decision, check, on_pass=partial(advance, decision), failed_reason="AnalysisFailed")


def _old_enough(decision: Decision, reading: AnalysisReading) -> bool:
    """compareToStable: start the step's clock at the first check that sees the canary serve at the step's weight;
    whether the step has since run one interval (before that no relative check passes)."""
    status = decision.status
    served = reading.comparison is not None and (reading.comparison.canary.requests or 0) > 0
    if status.step_traffic_at is None and served:
        status.step_traffic_at = decision.now
    started = status.step_traffic_at
    return started is not None and decision.now >= started + parse_duration(decision.spec.rollout.interval)


def advance(decision: Decision) -> None:
    """To the next step, or to promotion after the last one."""
    step, steps = decision.status.current_step, decision.spec.rollout.steps
    if step is not None and step + 1 < len(steps):
        decision.enter_step(step + 1)
        decision.event(EventType.NORMAL, "StepAdvanced", f"canary {decision.status.canary_version} {decision.where()}")
    else:
        decision.start_promoting(f"step {len(steps)}/{len(steps)} done")
