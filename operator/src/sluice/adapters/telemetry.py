"""The operator's own Prometheus metrics, served on `--metrics-port` (SLUICE_METRICS_PORT).

Rollout metrics are derived here, at the edge, from what one reconcile changed: `record(namespace, name, previous,
plan, applied_at)` compares the status read with the plan just applied, so the pure core knows nothing of them and
a restarted operator (which reads the same status) neither loses nor double-counts a transition. Per-object series
carry `namespace` and `name` (bounded by the number of ModelDeployments) and are removed by `forget` when the
object is deleted. docs/observability.md documents every series.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.registry import CollectorRegistry

from sluice.api.v1alpha1 import ModelDeploymentStatus, Outcome, Phase
from sluice.core.plan import Plan

RECONCILES = Counter(
    "sluice_operator_reconciles_total",
    "Reconciles of ModelDeployments by outcome: ok, conflict (retried at once), error (retried with backoff)",
    ["outcome"],
)
RECONCILE_SECONDS = Histogram(
    "sluice_operator_reconcile_duration_seconds",
    "Time one reconcile of one ModelDeployment took",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
KUBE_WRITES = Counter(
    "sluice_operator_kube_write_requests_total",
    "Write requests (POST, PUT, PATCH, DELETE) the operator sent to the Kubernetes API, by method",
    ["method"],
)
KUBE_REQUESTS = Counter(
    "sluice_operator_kube_requests_total",
    "Requests the reconciler and leader election sent to the Kubernetes API (reads too), by verb and status code",
    ["verb", "code"],
)

ROLLOUTS_STARTED = Counter(
    "sluice_rollouts_started_total",
    "Canary rollouts started (a new version, a superseding version, or a retry)",
    ["namespace", "name"],
)
ROLLOUTS_FINISHED = Counter(
    "sluice_rollouts_finished_total",
    "Canary rollouts finished, by outcome: Promoted, RolledBack, Superseded, Aborted",
    ["namespace", "name", "outcome"],
)
CANARY_WEIGHT = Gauge(
    "sluice_canary_weight_ratio",
    "Share of traffic (0 to 1) the canary receives",
    ["namespace", "name"],
)
PHASE = Gauge(
    "sluice_modeldeployment_phase",
    "1 for the ModelDeployment's current phase, 0 for the others",
    ["namespace", "name", "phase"],
)
ROLLOUT_STEP = Gauge(
    "sluice_rollout_step",
    "The rollout's current step, counted from 1; 0 when no step runs",
    ["namespace", "name"],
)
CONDITION = Gauge(
    "sluice_modeldeployment_condition",
    "1 for each condition's current status (True, False, Unknown), 0 for the other two",
    ["namespace", "name", "condition", "status"],
)
CHECKS = Counter(
    "sluice_analysis_checks_total",
    "Analysis checks of canaries, by verdict: Passed, Failed, Inconclusive, Errored",
    ["namespace", "name", "verdict"],
)
METRIC_VALUE = Gauge(
    "sluice_analysis_metric_value",
    "The value the latest analysis check read for each metric (base units: ratios, seconds, requests); "
    "absent while a metric had no data",
    ["namespace", "name", "metric"],
)
BREACH_TO_ROLLBACK = Histogram(
    "sluice_breach_to_rollback_seconds",
    "From the analysis check or validation run that triggered a rollback to the canary's weight 0 being applied",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
NOTIFICATIONS = Counter(
    "sluice_notifications_total",
    "Rollout notifications by receiver and how their delivery ended: delivered, failed (refused, or still failing "
    "after the retries), dropped (the receiver's queue was full)",
    ["receiver", "outcome"],
)
NOTIFICATION_ATTEMPTS = Counter(
    "sluice_notification_attempts_total",
    "Webhook requests sent to notification receivers, by receiver and result: 2xx, 3xx (not followed), 4xx, 408, "
    "429, 5xx, error (no answer in time)",
    ["receiver", "result"],
)
NOTIFICATION_QUEUE = Gauge(
    "sluice_notification_queue_length", "Notifications waiting to be sent, per receiver", ["receiver"]
)

_PER_OBJECT = (ROLLOUTS_STARTED, ROLLOUTS_FINISHED, CANARY_WEIGHT, PHASE, ROLLOUT_STEP, CONDITION, CHECKS, METRIC_VALUE)
_CONDITION_STATUSES = ("True", "False", "Unknown")


def record(namespace: str, name: str, previous: ModelDeploymentStatus, plan: Plan, applied_at: datetime) -> None:
    """Count what the plan changed against the status read, after it was applied (children, weight, status) at
    `applied_at`, on the same clock as the plan's `now`."""
    status = plan.status
    last_finished = max((entry.finished_at for entry in previous.history), default=None)
    finished = [entry for entry in status.history if last_finished is None or entry.finished_at > last_finished]
    if status.rollout_started_at is not None and (
        finished
        or status.rollout_started_at != previous.rollout_started_at
        or status.canary_version != previous.canary_version
    ):
        ROLLOUTS_STARTED.labels(namespace, name).inc()
    for entry in finished:
        ROLLOUTS_FINISHED.labels(namespace, name, str(entry.outcome)).inc()
        breach = _breach_time(previous, status)
        rolled_back = entry.outcome in (Outcome.ROLLED_BACK, Outcome.ROLLED_BACK_AFTER_PROMOTION)
        if rolled_back and breach is not None and plan.canary_weight == 0:
            BREACH_TO_ROLLBACK.observe(max((applied_at - breach).total_seconds(), 0.0))
    check = status.last_check
    if check is not None and status.last_check_time != previous.last_check_time:
        CHECKS.labels(namespace, name, str(check.verdict)).inc()
        for metric in check.metrics:
            if metric.value is None:
                _remove(METRIC_VALUE, namespace, name, metric.name)
            else:
                METRIC_VALUE.labels(namespace, name, metric.name).set(metric.value)
    observe_state(namespace, name, status)


def _breach_time(previous: ModelDeploymentStatus, status: ModelDeploymentStatus) -> datetime | None:
    """When the judgement behind this decision's rollback was made: an analysis check (canary or shadow) or a
    validation run new in this decision; None for other rollbacks (progress deadline, promotion failure)."""
    if status.last_check is not None and status.last_check_time != previous.last_check_time:
        return status.last_check.time
    if status.validation is not None and status.validation != previous.validation:
        return status.validation.time
    return None


def observe_state(namespace: str, name: str, status: ModelDeploymentStatus) -> None:
    """Set the per-object gauges from a status (also for an invalid spec, whose status has no plan)."""
    CANARY_WEIGHT.labels(namespace, name).set(status.canary_weight / 100)
    ROLLOUT_STEP.labels(namespace, name).set(0 if status.current_step is None else status.current_step + 1)
    for phase in Phase:
        PHASE.labels(namespace, name, str(phase)).set(1 if status.phase is phase else 0)
    for condition in status.conditions:
        for value in _CONDITION_STATUSES:
            CONDITION.labels(namespace, name, condition.type, value).set(1 if condition.status == value else 0)


def forget(namespace: str, name: str) -> None:
    """Remove every per-object series of a deleted ModelDeployment."""
    for metric in _PER_OBJECT:
        for labels in _label_sets(metric):
            if labels[:2] == (namespace, name):
                _remove(metric, *labels)


def _label_sets(metric: Counter | Gauge) -> list[tuple[str, ...]]:
    return [tuple(labels) for labels in metric._metrics]  # prometheus_client exposes no listing


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def metric_names(registry: CollectorRegistry = REGISTRY) -> set[str]:
    """The sample names this process exposes (with _total, _bucket, _sum, _count suffixes), for tests and docs."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    names: set[str] = set()
    for family in registry.collect():
        if family.name.startswith("sluice_"):
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def serve(port: int) -> None:
    """Serve /metrics on all interfaces at `port` (0: not at all)."""
    if port:
        start_http_server(port)
