"""When to look again: the next analysis check, the validation gate's (re)run, the canary's progress deadline.

The adapter asks `check_window` and `validation_due` before reading Prometheus or running the gate, with the same
`now` it passes to `decide`; `requeue_after` becomes the plan's timer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus, Phase
from sluice.core.experiment import next_experiment_check_at
from sluice.core.plan import WorkloadState
from sluice.core.rollout.workloads import canary_ready
from sluice.core.world import route_holds

PROBE_PERIOD = timedelta(seconds=10)
"""compareToStable: how often a step looks for the canary's first request at its weight (when the interval is
longer), so that the step's clock starts near it."""


def judging(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> bool:
    """Whether the current step is judged by compareToStable's sequential test (a live step with the bounds set)."""
    return (
        spec.analysis.compare_to_stable is not None
        and status.phase is Phase.PROGRESSING
        and status.current_step is not None
        and status.step_started_at is not None
    )


def check_window(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> timedelta | None:
    """The window to read the canary's metrics over when an analysis check is due at `now`, else None.

    A check is due one interval after the later of the step's start and the last check, while a step is running
    (phase Progressing, canary ready). The window is the interval; with compareToStable it is the whole step so far
    (the sequential test's evidence), at most analysis.maxStepDuration. Call it with the same `now` as `decide`.
    """
    due = next_check_at(spec, status)
    if due is None or now < due or (status.previous is not None and now >= status.previous.until):
        return None  # (after rollout.keepPrevious's window a post-promotion check would be ignored)
    if judging(spec, status) and status.step_started_at is not None:
        longest = parse_duration(spec.analysis.max_step_duration)
        return max(min(now - status.step_started_at, longest), timedelta(seconds=1))
    return parse_duration(spec.rollout.interval)


def step_clock(status: ModelDeploymentStatus) -> datetime | None:
    """compareToStable: when the current step's clock started: the canary's first request at its weight, else the
    step's start."""
    return status.step_traffic_at or status.step_started_at


def step_expired(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
    """compareToStable: whether the step has run analysis.maxStepDuration on its clock."""
    started = step_clock(status)
    return started is not None and now - started >= parse_duration(spec.analysis.max_step_duration)


def next_check_at(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """When the current step's (or the shadow phase's, or the post-promotion analysis') next check is due; None
    when no step or shadow runs."""
    if status.phase is Phase.PROMOTED:
        return post_promotion_check_at(spec, status)
    if status.step_started_at is None:
        return None
    stepping = status.phase is Phase.PROGRESSING and status.current_step is not None
    if (not stepping and status.phase is not Phase.SHADOWING) or (stepping and route_holds(spec, status)):
        return None
    last = status.step_started_at
    if status.last_check_time is not None:
        last = max(last, status.last_check_time)
    interval = parse_duration(spec.rollout.interval)
    if judging(spec, status) and status.step_traffic_at is None:
        return last + min(interval, PROBE_PERIOD)
    return last + interval


def post_promotion_check_at(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """rollout.postPromotionAnalysis: one interval after the later of the promotion and the last check, while the
    previous revision is kept; None when that falls at or after the window's end (a check then would be ignored)."""
    previous = status.previous
    if not spec.rollout.post_promotion_analysis or status.phase is not Phase.PROMOTED or previous is None:
        return None
    last = max(previous.since, status.last_check_time or previous.since)
    due = last + parse_duration(spec.rollout.interval)
    return due if due < previous.until else None


def analysed_versions(status: ModelDeploymentStatus) -> tuple[str, str | None] | None:
    """(the version a check reads from the canary track, the stable version beside it): the canary's during a
    rollout; after a promotion kept by rollout.keepPrevious, the promoted version (it serves from the canary's pods)
    beside the previous one. None when no check reads anything."""
    if status.phase is Phase.PROMOTED and status.previous is not None and status.stable_version is not None:
        return status.stable_version, status.previous.version
    if status.canary_version is None:
        return None
    return status.canary_version, status.stable_version


def validation_due(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, canary: WorkloadState, now: datetime
) -> bool:
    """Whether the adapter should run the validation gate against the canary at `now` (and pass the reading in
    `Observations.validation`): phase Validating, the canary ready, and no result for this rollout yet, or an
    errored run one rollout.interval ago. Call it with the same `now` as `decide`."""
    if spec.validation is None or status.phase is not Phase.VALIDATING or not canary_ready(spec, status, canary):
        return False
    retry_at = validation_retry_at(spec, status)
    return retry_at is not None and now >= retry_at


def validation_retry_at(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """When the gate may run (again): at once without a result of this rollout, one interval after an errored
    run, never after a scored one (the gate has decided)."""
    result = status.validation
    started = status.rollout_started_at
    if result is None or result.version != status.canary_version or (started is not None and result.time < started):
        return started
    if result.score is not None:
        return None
    return result.time + parse_duration(spec.rollout.interval)


def requeue_after(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> timedelta | None:
    """Until the next check, or until the canary's progress deadline while it starts (or the validation gate's
    retry after an errored run); zero when already due."""
    if status.phase is Phase.VALIDATING:
        retry_at = validation_retry_at(spec, status)
        due = retry_at if retry_at is not None and status.validation is not None else canary_deadline(spec, status)
    elif status.phase is Phase.EXPERIMENTING:
        started = status.experiment is not None and status.experiment.started_at is not None
        due = next_experiment_check_at(spec, status) if started else canary_deadline(spec, status)
    elif status.phase in (Phase.PROGRESSING, Phase.SHADOWING):
        due = next_check_at(spec, status) if status.step_started_at is not None else canary_deadline(spec, status)
    elif status.phase is Phase.PROMOTED and status.previous is not None and not status.previous.released:
        check_at = post_promotion_check_at(spec, status)
        due = status.previous.until if check_at is None else min(check_at, status.previous.until)
    else:
        return None
    if due is None:
        return None
    return max(due - now, timedelta(0))


def canary_deadline(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """When a canary that has not become ready counts as failed to progress."""
    if status.rollout_started_at is None:
        return None
    return status.rollout_started_at + parse_duration(spec.rollout.progress_deadline)
