"""Rollout notifications, decided: which rollout events a reconcile produced (from the status it read and the one
its plan writes), who hears of them, and the `Notified` condition and `status.notifications` counts.

An event's id is a hash of the ModelDeployment's uid, the event and the rollout position it happened at, so the
same transition always yields the same id (receivers can dedupe) and a repeated reconcile of a transition whose
status was written finds no transition at all: the status it reads already holds it. Nothing here reads a
receiver's answer: notices carry names, versions, counts, the core's CamelCase reasons and check values only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sluice.api.v1alpha1 import (
    Action,
    HistoryEntry,
    ModelDeploymentStatus,
    NotificationCounts,
    NotificationsSpec,
    Outcome,
    Phase,
    RolloutEvent,
)
from sluice.core.conditions import ConditionStatus, find_condition, set_condition
from sluice.core.plan import EventRecord, EventType

NOTIFIED = "Notified"
"""Condition: True while every receiver named is in the notification Secret and deliveries succeed."""
_OUTCOME_EVENTS = {
    Outcome.PROMOTED: RolloutEvent.PROMOTED,
    Outcome.ROLLED_BACK: RolloutEvent.ROLLED_BACK,
    Outcome.ABORTED: RolloutEvent.ROLLED_BACK,
    Outcome.ROLLED_BACK_AFTER_PROMOTION: RolloutEvent.ROLLED_BACK,
    Outcome.KEPT: RolloutEvent.ROLLED_BACK,
}
"""History outcomes that are notified (a Superseded rollout is followed by the next one's Started; an experiment
that kept the stable version removed the candidate, a rollback with reason ExperimentKept)."""


@dataclass(frozen=True)
class Subject:
    """The ModelDeployment a notice is about."""

    namespace: str
    name: str
    uid: str
    steps: int
    """len(spec.rollout.steps), for "step 2/3"."""


@dataclass(frozen=True)
class CheckValue:
    """One number a gate measured, with the bounds it was held to."""

    name: str
    value: float | None
    min: float | None
    max: float | None
    verdict: str


@dataclass(frozen=True)
class RolloutNotice:
    """One rollout event, as every body format renders it."""

    id: str
    event: RolloutEvent
    subject: Subject
    time: datetime
    version: str
    revision: int | None
    stable_version: str | None
    step: int | None
    """The step the event happened at, counted from 1; None outside the live steps."""
    weight: int
    reason: str
    """The core's CamelCase reason (RolloutStarted, AnalysisFailed, Aborted, ...)."""
    checks: tuple[CheckValue, ...] = ()

    @property
    def summary(self) -> str:
        """One fixed-text line: `ml/iris: 1.1.0 promoted (Promoted)`."""
        where = f" at step {self.step}/{self.subject.steps}, {self.weight}%" if self.step is not None else ""
        verb = _VERBS[self.event]
        return f"{self.subject.namespace}/{self.subject.name}: {self.version} {verb}{where} ({self.reason})"


_VERBS = {
    RolloutEvent.STARTED: "rollout started",
    RolloutEvent.STEP_PASSED: "passed a step",
    RolloutEvent.PAUSED: "rollout paused",
    RolloutEvent.PROMOTED: "promoted",
    RolloutEvent.ROLLED_BACK: "rolled back",
}


def rollout_notices(
    subject: Subject, previous: ModelDeploymentStatus, status: ModelDeploymentStatus, now: datetime
) -> tuple[RolloutNotice, ...]:
    """The rollout events of the transition from the status read (`previous`) to the one written (`status`), in
    the order they happened: a rollout that ended, the one started, a step passed, a pause, the rollout's end."""
    started = status.rollout_started_at is not None and status.rollout_started_at != previous.rollout_started_at
    ends = [_ended(subject, entry, status) for entry in _new_entries(previous, status)]
    ended = [notice for notice in ends if notice is not None]
    progress = [*_steps_passed(subject, previous, status, now), *_paused(subject, previous, status, now)]
    if started:
        return (*ended, _started(subject, status, now), *progress)
    return (*progress, *ended)


def _id(subject: Subject, event: RolloutEvent, key: Iterable[object]) -> str:
    """The event's stable id: the same ModelDeployment, event and rollout position give the same id."""
    text = "\x1f".join([subject.uid, str(event), *(str(part) for part in key)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _started(subject: Subject, status: ModelDeploymentStatus, now: datetime) -> RolloutNotice:
    key = [status.rollout_started_at]
    at = status.rollout_started_at or now
    return _notice(subject, RolloutEvent.STARTED, key, status, time=at, step=None, reason="RolloutStarted")


def _notice(
    subject: Subject,
    event: RolloutEvent,
    key: Iterable[object],
    status: ModelDeploymentStatus,
    *,
    time: datetime,
    step: int | None,
    reason: str,
    checks: tuple[CheckValue, ...] = (),
) -> RolloutNotice:
    """A notice about the rollout `status` holds (its canary, stable version and weight)."""
    return RolloutNotice(
        id=_id(subject, event, key),
        event=event,
        subject=subject,
        time=time,
        version=status.canary_version or "",
        revision=status.canary_revision.number if status.canary_revision else None,
        stable_version=status.stable_version,
        step=step,
        weight=status.canary_weight,
        reason=reason,
        checks=checks,
    )


def _steps_passed(
    subject: Subject, previous: ModelDeploymentStatus, status: ModelDeploymentStatus, now: datetime
) -> list[RolloutNotice]:
    """Steps of the same rollout left forward: to a later step, or (the last one) to the promotion, unless
    promote-full skipped it."""
    step, started = previous.current_step, previous.rollout_started_at
    if step is None or started is None or previous.phase is not Phase.PROGRESSING:
        return []
    if status.rollout_started_at == started and status.current_step is not None and status.current_step > step:
        passed = range(step, status.current_step)
    elif status.phase in (Phase.PROMOTING, Phase.PROMOTED, Phase.STABLE) and not _promoted_in_full(previous, status):
        passed = range(step, step + 1)
    else:
        return []
    reason = "ManualPromotion" if _new_action(previous, status) is Action.PROMOTE else "CheckPassed"
    checks = _checks(status) if status.last_check_time != previous.last_check_time else ()
    return [
        _notice(
            subject, RolloutEvent.STEP_PASSED, [started, index], previous,
            time=now, step=index + 1, reason=reason, checks=checks,
        )
        for index in passed
    ]  # fmt: skip


def _new_action(previous: ModelDeploymentStatus, status: ModelDeploymentStatus) -> Action | None:
    """The manual action this transition carried out, if any."""
    action = status.last_action
    if action is None or not action.accepted or status.last_handled_action_id == previous.last_handled_action_id:
        return None
    return action.action


def _promoted_in_full(previous: ModelDeploymentStatus, status: ModelDeploymentStatus) -> bool:
    return _new_action(previous, status) is Action.PROMOTE_FULL


def _paused(
    subject: Subject, previous: ModelDeploymentStatus, status: ModelDeploymentStatus, now: datetime
) -> list[RolloutNotice]:
    if status.phase is not Phase.PAUSED or previous.phase is Phase.PAUSED:
        return []
    checks_run = status.passed_checks + status.failed_checks + status.inconclusive_checks
    key = [status.rollout_started_at, status.paused_in, status.current_step, checks_run, status.last_check_time]
    step = None if status.current_step is None else status.current_step + 1
    return [
        _notice(subject, RolloutEvent.PAUSED, key, status, time=now, step=step, reason="Paused", checks=_checks(status))
    ]


def _new_entries(previous: ModelDeploymentStatus, status: ModelDeploymentStatus) -> list[HistoryEntry]:
    last = max((entry.finished_at for entry in previous.history), default=None)
    return [entry for entry in status.history if last is None or entry.finished_at > last]


def _ended(subject: Subject, entry: HistoryEntry, status: ModelDeploymentStatus) -> RolloutNotice | None:
    event = _OUTCOME_EVENTS.get(entry.outcome)
    if event is None:
        return None
    check = status.last_check
    measured = check is not None and check.time >= entry.started_at
    return RolloutNotice(
        id=_id(subject, event, [entry.started_at, entry.finished_at]),
        event=event,
        subject=subject,
        time=entry.finished_at,
        version=entry.version,
        revision=entry.revision.number if entry.revision else None,
        stable_version=entry.stable_model.version if entry.stable_model else None,
        step=check.step + 1 if check is not None and measured else None,
        weight=check.weight if check is not None and measured else 0,
        reason=entry.reason,
        checks=_checks(status) if measured else (),
    )


def _checks(status: ModelDeploymentStatus) -> tuple[CheckValue, ...]:
    """The last analysis check's numbers (the metric messages are left out: they may quote what was read)."""
    if status.last_check is None:
        return ()
    return tuple(
        CheckValue(metric.name, metric.value, metric.min, metric.max, str(metric.verdict))
        for metric in status.last_check.metrics
    )


# --- who hears of them, and what the status says -----------------------------------------------------------------


def wanted_receivers(spec: NotificationsSpec | None, defaults: Iterable[str]) -> tuple[str, ...]:
    """The receivers a ModelDeployment's events go to: spec.notifications.receivers, else the operator's."""
    return tuple(spec.receivers) if spec is not None else tuple(defaults)


def wanted(spec: NotificationsSpec | None, notice: RolloutNotice) -> bool:
    """Whether spec.notifications.events (all when left out) includes the notice's event."""
    return spec is None or spec.events is None or notice.event in spec.events


@dataclass(frozen=True)
class ReceiverBook:
    """The receivers the notification Secret defines (names only), or why it could not be read (fixed text)."""

    names: frozenset[str] = frozenset()
    problem: str | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """Deliveries that ended since the last status write, and how the latest one ended (None: none ended)."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    latest_failed: bool | None = None


def notification_status(
    status: ModelDeploymentStatus,
    receivers: tuple[str, ...],
    book: ReceiverBook,
    report: DeliveryReport,
    now: datetime,
) -> tuple[ModelDeploymentStatus, tuple[EventRecord, ...]]:
    """The status with the deliveries counted and the Notified condition set (only once there are receivers or
    counts), and a Warning Event when the condition turns False or changes its reason while False."""
    counts = status.notifications
    if report != DeliveryReport():
        base = counts or NotificationCounts()
        counts = NotificationCounts(
            delivered=base.delivered + report.delivered,
            failed=base.failed + report.failed,
            dropped=base.dropped + report.dropped,
        )
    previous = find_condition(status.conditions, NOTIFIED)
    if not receivers and previous is None:
        return _with_counts(status, counts), ()
    condition_status, reason, message = _notified(status, receivers, book, report, counts)
    conditions = set_condition(
        status.conditions,
        NOTIFIED,
        condition_status,
        reason=reason,
        message=message,
        now=now,
        observed_generation=status.observed_generation,
    )
    updated = status.model_copy(update={"conditions": conditions, "notifications": counts})
    news = condition_status is ConditionStatus.FALSE and (previous is None or previous.reason != reason)
    return updated, ((EventRecord(EventType.WARNING, reason, message),) if news else ())


def _with_counts(status: ModelDeploymentStatus, counts: NotificationCounts | None) -> ModelDeploymentStatus:
    return status if counts == status.notifications else status.model_copy(update={"notifications": counts})


def _notified(
    status: ModelDeploymentStatus,
    receivers: tuple[str, ...],
    book: ReceiverBook,
    report: DeliveryReport,
    counts: NotificationCounts | None,
) -> tuple[ConditionStatus, str, str]:
    if not receivers:
        return ConditionStatus.TRUE, "NoReceivers", "no receivers to notify"
    if book.problem is not None:
        return ConditionStatus.FALSE, "ReceiverSecretUnavailable", book.problem
    unknown = [name for name in receivers if name not in book.names]
    if unknown:
        missing = ", ".join(unknown)
        return ConditionStatus.FALSE, "UnknownReceiver", f"not in the notification Secret (or invalid): {missing}"
    previous = find_condition(status.conditions, NOTIFIED)
    failing = report.latest_failed
    if failing is None:
        failing = previous is not None and previous.reason == "DeliveryFailed"
    if failing and counts is not None:
        message = f"{counts.failed} notifications failed after retries and {counts.dropped} were dropped in all"
        return ConditionStatus.FALSE, "DeliveryFailed", message
    return ConditionStatus.TRUE, "Delivering", f"notifying {', '.join(receivers)}"
