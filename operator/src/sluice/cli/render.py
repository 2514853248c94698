"""Pure text rendering for the plugin: ModelDeployments and Events in, text out (no cluster, no clock: `now` is
a parameter), so every view is unit-tested."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sluice.api.v1alpha1 import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    PAUSED_ANNOTATION,
    CheckResult,
    Condition,
    MetricResult,
    ModelDeployment,
    ModelStatus,
)
from sluice.core.analysis import ERROR_RATE, LATENCY_P99, REQUEST_COUNT
from sluice.core.conditions import PROGRESSING

BAR_WIDTH = 20
LABEL_WIDTH = 15
NONE = "-"


@dataclass(frozen=True)
class EventLine:
    """One Event about a ModelDeployment, as shown."""

    type: str
    reason: str
    message: str
    time: datetime | None
    count: int = 1


def age(delta: timedelta) -> str:
    """A duration the way kubectl prints ages: 45s, 3m12s, 25m, 5h10m, 30h, 4d."""
    seconds = max(int(delta.total_seconds()), 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{days}d"


def since(time: datetime | None, now: datetime) -> str:
    return NONE if time is None else age(now - time)


def weight_bar(weight: int, width: int = BAR_WIDTH) -> str:
    """`[#####...............] 25%`: the canary's share of traffic."""
    weight = min(max(weight, 0), 100)
    filled = round(width * weight / 100)
    return f"[{'#' * filled}{'.' * (width - filled)}] {weight}%"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "") -> str:
    """Left-aligned columns three spaces apart, as kubectl prints them; the last column is not padded."""
    all_rows = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[column]) for row in all_rows) for column in range(len(headers))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append(indent + "   ".join(cells).rstrip())
    return "\n".join(lines)


def _name(md: ModelDeployment) -> str:
    return str(md.metadata.get("name", "?"))


def _namespace(md: ModelDeployment) -> str:
    return str(md.metadata.get("namespace", "?"))


def _created(md: ModelDeployment) -> datetime | None:
    stamp = md.metadata.get("creationTimestamp")
    if isinstance(stamp, datetime):
        return stamp
    if isinstance(stamp, str):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return None


def annotations_of(md: ModelDeployment) -> dict[str, str]:
    return dict(md.metadata.get("annotations") or {})


def step_text(md: ModelDeployment) -> str:
    """`2/3`, or `-` between rollouts and while the canary starts."""
    step = md.status.current_step
    return NONE if step is None else f"{step + 1}/{len(md.spec.rollout.steps)}"


def render_list(items: Sequence[ModelDeployment], now: datetime, *, all_namespaces: bool) -> str:
    if not items:
        return "No ModelDeployments found."
    headers = ["NAME", "PHASE", "STABLE", "CANARY", "STEP", "WEIGHT", "READY", "AGE"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for md in sorted(items, key=lambda md: (_namespace(md), _name(md))):
        status = md.status
        row = [
            _name(md),
            str(status.phase or "Pending"),
            status.stable_version or NONE,
            status.canary_version or NONE,
            step_text(md),
            f"{status.canary_weight}%" if status.canary_version else NONE,
            f"{status.ready_replicas}/{md.spec.replicas}",
            since(_created(md), now),
        ]
        if all_namespaces:
            row.insert(0, _namespace(md))
        rows.append(row)
    return table(headers, rows)


def _model_text(model: ModelStatus | None) -> str:
    if model is None:
        return NONE
    digest = f" {model.digest[:19]}" if model.digest else ""
    return f"{model.uri} ({model.format}{digest})"


def render_history(md: ModelDeployment, now: datetime) -> str:
    history = md.status.history
    if not history:
        return f"No finished rollouts of {_name(md)} yet (stable: {md.status.stable_version or NONE})."
    rows = []
    for number, entry in enumerate(history, start=1):
        rows.append(
            [
                str(number),
                entry.version,
                str(entry.outcome),
                since(entry.finished_at, now) + " ago",
                age(entry.finished_at - entry.started_at),
                entry.reason,
                _model_text(entry.model),
                entry.message,
            ]
        )
    headers = ["#", "VERSION", "OUTCOME", "FINISHED", "TOOK", "REASON", "MODEL", "MESSAGE"]
    return table(headers, rows) + f"\n\nstable now: {md.status.stable_version or NONE}"


def _number(value: float) -> str:
    return f"{value:.4g}"


def _metric_value(name: str, value: float | None) -> str:
    if value is None:
        return NONE
    if name == LATENCY_P99:
        return f"{value:.4g}s" if value >= 1 else f"{value * 1000:.4g}ms"
    if name == REQUEST_COUNT:
        return f"{value:.0f}"
    if name == ERROR_RATE:
        return f"{value * 100:.3g}%"
    return _number(value)


def _metric_row(metric: MetricResult) -> list[str]:
    return [
        metric.name,
        _metric_value(metric.name, metric.value),
        _metric_value(metric.name, metric.min),
        _metric_value(metric.name, metric.max),
        str(metric.verdict),
    ]


def render_check(check: CheckResult, md: ModelDeployment, now: datetime) -> str:
    steps = len(md.spec.rollout.steps)
    head = f"{check.verdict} at step {check.step + 1}/{steps} ({check.weight}%), {age(now - check.time)} ago"
    if not check.metrics:
        return head
    rows = [_metric_row(metric) for metric in check.metrics]
    return head + "\n" + table(["METRIC", "VALUE", "MIN", "MAX", "VERDICT"], rows, indent="  ")


def _conditions(conditions: Sequence[Condition], now: datetime) -> str:
    rows = [[c.type, c.status, c.reason, age(now - c.last_transition_time), c.message] for c in conditions]
    return table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows, indent="  ")


def _events(events: Sequence[EventLine], now: datetime) -> str:
    rows = [
        [
            since(event.time, now),
            event.type,
            event.reason,
            event.message + (f" (x{event.count})" if event.count > 1 else ""),
        ]
        for event in events
    ]
    return table(["AGE", "TYPE", "REASON", "MESSAGE"], rows, indent="  ")


def paused_by(md: ModelDeployment) -> str | None:
    """What pauses it: `spec.paused`, the annotation, both, or None."""
    by = []
    if md.spec.paused:
        by.append("spec.paused")
    if annotations_of(md).get(PAUSED_ANNOTATION) == "true":
        by.append(f"annotation {PAUSED_ANNOTATION}")
    return " and ".join(by) or None


def pending_action(md: ModelDeployment) -> tuple[str, str] | None:
    """(action, id) of a request in the annotations that the operator has not handled yet."""
    found = annotations_of(md)
    action, request_id = found.get(ACTION_ANNOTATION), found.get(ACTION_ID_ANNOTATION)
    if action and request_id and request_id != md.status.last_handled_action_id:
        return action, request_id
    return None


def render_status(md: ModelDeployment, events: Sequence[EventLine], now: datetime, *, state: str = "") -> str:
    """The `kubectl sluice status` view: versions, step and weight, the last check against its bounds,
    conditions and recent Events."""
    spec, status = md.spec, md.status
    fields: list[tuple[str, str]] = [("Name", _name(md)), ("Namespace", _namespace(md))]
    phase = str(status.phase or "Pending (not reconciled yet)")
    fields.append(("Phase", f"{phase}   [{state}]" if state else phase))
    progressing = next((c for c in status.conditions if c.type == PROGRESSING), None)
    if progressing is not None and progressing.message:
        fields.append(("Message", progressing.message))
    fields.append(("Spec model", f"{spec.model.version}   {spec.model.uri} ({spec.model.format})"))
    fields.append(("Stable", f"{status.stable_version or NONE}   {status.ready_replicas}/{spec.replicas} ready"))
    if status.canary_version is not None:
        fields.append(("Canary", status.canary_version))
        steps = ", ".join(f"{weight}%" for weight in spec.rollout.steps)
        step = step_text(md) if status.current_step is not None else "waiting for the canary to become ready"
        fields.append(("Step", f"{step}   (steps {steps}; interval {spec.rollout.interval})"))
        fields.append(("Weight", weight_bar(status.canary_weight)))
        fields.append(
            (
                "Checks",
                f"{status.passed_checks} passed, {status.failed_checks} failed, "
                f"{status.inconclusive_checks} inconclusive, {status.consecutive_errors} errored in a row",
            )
        )
    if (by := paused_by(md)) is not None:
        fields.append(("Paused", f"yes, by {by}"))
    if (pending := pending_action(md)) is not None:
        fields.append(("Pending", f"{pending[0]} (id {pending[1]}) not handled by the operator yet"))
    if status.history:
        last = status.history[-1]
        fields.append(
            ("Last rollout", f"{last.version} {last.outcome} {age(now - last.finished_at)} ago: {last.reason}")
        )
    lines = [f"{label + ':':<{LABEL_WIDTH}}{value}" for label, value in fields]
    if status.last_check is not None:
        lines.append(f"{'Last check:':<{LABEL_WIDTH}}" + render_check(status.last_check, md, now))
    lines.append("Conditions:")
    lines.append(_conditions(status.conditions, now) if status.conditions else "  <none>")
    lines.append("Events:")
    lines.append(_events(events, now) if events else "  <none>")
    return "\n".join(lines)
