"""What-if replay: evaluate a ModelDeployment's analysis settings against Prometheus history, step by step.

`await replay(spec, PrometheusProvider(url, timeout), start, end, ...)` runs a rollout of `canary_version` over
`stable_version` as the operator would have run it from `start` (a step starting then): each check is due one
`rollout.interval` after the later of the step's start and the last check, exactly as
`sluice.core.rollout.next_check_at` says; at that time it reads Prometheus with instant queries (`time=` the check
time, window `rollout.interval`) built by the same `sluice.adapters.metrics.canary_query` the operator uses, and
passes the reading to the same pure `sluice.core.rollout.decide`. Nothing is re-implemented: a replay over the
window of a live rollout gives the live verdicts, values equal up to the few hundred milliseconds by which the live
checks ran after they were due. It stops at `end`, or when the rollout would have ended (rolled back, or promoting).

The replay assumes the canary was ready and received its step's traffic share throughout (with a Gateway: every
parent accepted the route): it judges the metrics Prometheus recorded, not a traffic split it would have set.
Shadow and validation phases are not replayed; manual actions and pauses are ignored. `kubectl sluice analyze`
(sluice.cli.analyze) prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sluice.adapters.metrics import MetricsProvider, canary_query
from sluice.api.v1alpha1 import (
    CheckResult,
    MetricResult,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelFormat,
    ModelStatus,
    Phase,
    Verdict,
)
from sluice.core.analysis import shown
from sluice.core.plan import EventRecord, Observations
from sluice.core.rollout import check_window, decide, next_check_at
from sluice.core.rollout.replaying import ACCEPTED_ROUTE, ready_track, replay_start
from sluice.core.world import has_gateway


class Decision(StrEnum):
    """What sluice did after a check."""

    ADVANCE = "advance"
    """To the next step."""
    HOLD = "hold"
    """Stay at the step (an inconclusive or errored check, or a failed one below maxFailedChecks)."""
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    """Past the last step: the canary would be promoted."""


@dataclass(frozen=True)
class ReplayedCheck:
    """One check of the replay, the decision that followed, and the status after it."""

    check: CheckResult
    decision: Decision
    status: ModelDeploymentStatus
    events: tuple[EventRecord, ...]


async def replay(
    spec: ModelDeploymentSpec,
    provider: MetricsProvider,
    start: datetime,
    end: datetime,
    *,
    namespace: str,
    name: str,
    canary_version: str,
    stable_version: str,
    start_step: int = 0,
) -> list[ReplayedCheck]:
    """The checks a rollout of `canary_version` starting step `start_step` at `start` would have run until `end`,
    reading `provider` (a `PrometheusProvider`, as the operator's)."""
    steps = spec.rollout.steps
    if not 0 <= start_step < len(steps):
        raise ValueError(f"start step {start_step} is not one of the {len(steps)} steps")
    # A models:/ spec may name no format (the registry's flavor decides); the replay reads metrics only, never a model.
    fmt = spec.model.format or ModelFormat.ONNX
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"version": canary_version, "format": fmt})})
    stable_model = ModelStatus(version=stable_version, uri=spec.model.uri, format=fmt, digest=spec.model.digest)
    status = replay_start(spec, stable_model, start, start_step)
    checks: list[ReplayedCheck] = []
    while status.phase is Phase.PROGRESSING:
        due = next_check_at(spec, status)
        window = check_window(spec, status, due) if due is not None else None
        if due is None or window is None or due > end:
            break
        query = canary_query(
            spec.analysis,
            namespace=namespace,
            name=name,
            canary_version=canary_version,
            stable_version=stable_version,
            window=window,
            at=due,
        )
        reading = await provider.read(query)
        observations = Observations(
            generation=1,
            stable=ready_track(stable_model.version, spec.replicas),
            canary=ready_track(canary_version, spec.replicas),
            analysis=reading,
            route=ACCEPTED_ROUTE if has_gateway(spec) else None,
        )
        plan = decide(spec, status, observations, due)
        if plan.status.last_check is None or plan.status.last_check_time != due:
            break  # no check ran (cannot happen while a step runs; kept so the loop always ends)
        checks.append(ReplayedCheck(plan.status.last_check, _decision(status, plan.status), plan.status, plan.events))
        status = plan.status
    return checks


def _decision(before: ModelDeploymentStatus, after: ModelDeploymentStatus) -> Decision:
    if after.phase is Phase.ROLLED_BACK:
        return Decision.ROLLBACK
    if after.phase is not Phase.PROGRESSING:
        return Decision.PROMOTE
    if after.current_step != before.current_step:
        return Decision.ADVANCE
    return Decision.HOLD


# --- rendering ----------------------------------------------------------------------------------------------------

_MARKS = {Verdict.PASSED: "", Verdict.FAILED: " FAIL", Verdict.INCONCLUSIVE: " ?", Verdict.ERRORED: " ERR"}


def render_table(checks: Sequence[ReplayedCheck], steps: Sequence[int]) -> str:
    """A table: time, step, weight, each metric's value (FAIL, ? inconclusive, ERR marked) with its bound in the
    header, the check's verdict and the decision; then the outcome."""
    if not checks:
        return "no check was due in the window\n"
    names = list(dict.fromkeys(metric.name for replayed in checks for metric in replayed.check.metrics))
    bounds = {metric.name: _bound(metric) for replayed in checks for metric in replayed.check.metrics}
    header = ["TIME", "STEP", "WEIGHT", *(f"{name}{bounds[name]}" for name in names), "VERDICT", "DECISION"]
    rows = [header]
    for replayed in checks:
        check = replayed.check
        by_name = {metric.name: metric for metric in check.metrics}
        rows.append(
            [
                check.time.strftime("%H:%M:%S"),
                f"{check.step + 1}/{len(steps)}",
                f"{check.weight}%",
                *(_cell(by_name.get(name)) for name in names),
                str(check.verdict),
                str(replayed.decision),
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([*lines, "", outcome(checks, steps)]) + "\n"


def outcome(checks: Sequence[ReplayedCheck], steps: Sequence[int]) -> str:
    """One line: how the replayed rollout ended, or where it stood when the window ended."""
    last = checks[-1]
    status = last.status
    if last.decision is Decision.ROLLBACK and status.history:
        return f"outcome: rolled back ({status.history[-1].reason}): {status.history[-1].message}"
    if last.decision is Decision.PROMOTE:
        return f"outcome: promoted after {status.passed_checks} passed checks"
    step = status.current_step if status.current_step is not None else 0
    return (
        f"outcome: still at step {step + 1}/{len(steps)} ({status.canary_weight}%) when the window ended, "
        f"after {len(checks)} checks ({status.passed_checks} passed, {status.failed_checks} failed)"
    )


def _bound(metric: MetricResult) -> str:
    if metric.min is not None and metric.max is not None:
        return f"[{shown(metric.name, metric.min)},{shown(metric.name, metric.max)}]"
    if metric.min is not None:
        return f">={shown(metric.name, metric.min)}"
    if metric.max is not None:
        return f"<={shown(metric.name, metric.max)}"
    return ""


def _cell(metric: MetricResult | None) -> str:
    if metric is None:
        return "-"
    value = "-" if metric.value is None else shown(metric.name, metric.value)
    return value + _MARKS[metric.verdict]
