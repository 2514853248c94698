"""Pure text rendering for the plugin: ModelDeployments and Events in, text out (no cluster, no clock: `now` is
a parameter), so every view is unit-tested."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import yaml

from sluice.api.v1alpha1 import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    PAUSED_ANNOTATION,
    CheckResult,
    Condition,
    MetricResult,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Outcome,
    Phase,
)
from sluice.cli.experiment import experiment_fields
from sluice.cli.times import age, relative_times
from sluice.core.analysis import shown
from sluice.core.conditions import PROGRESSING, READY
from sluice.core.gates import bound_text
from sluice.core.rollout.workloads import canary_matches

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


@dataclass(frozen=True)
class PodLine:
    """One serving pod, as the live view shows it."""

    name: str
    track: str
    phase: str
    """Running, Pending, Terminating, or why it waits (ImagePullBackOff, Unschedulable...)."""
    ready: bool
    created: datetime | None = None


@dataclass(frozen=True)
class RouteParent:
    """One parent (Gateway) of the HTTPRoute and whether it accepted the route, from the route's status."""

    name: str
    accepted: str | None
    """The Accepted condition's status (True, False, Unknown); None when the parent wrote no status."""
    reason: str = ""


def wanted_replicas(spec: ModelDeploymentSpec) -> str:
    """The stable replicas the spec asks for: spec.replicas, or its HPA's bounds (`2..10`) with spec.autoscaling."""
    autoscaling = spec.autoscaling
    return str(spec.replicas) if autoscaling is None else f"{autoscaling.min_replicas}..{autoscaling.max_replicas}"


def since(time: datetime | None, now: datetime) -> str:
    return NONE if time is None else age(now - time)


def matched_text(md: ModelDeployment) -> str:
    """`   + the requests of 2 matches`: what the route sends to the canary beside its weight (spec.rollout.match)."""
    matched = len(canary_matches(md.spec, md.status))
    return f"   + the requests of {matched} match{'es' if matched != 1 else ''}" if matched else ""


def actual_text(status: ModelDeploymentStatus) -> str:
    """` (actual 50%)` beside the requested weight when the share observed (status.actualWeight) differs from it,
    ` (actual unknown)` when it is not known (a route no Gateway accepted yet, no ready pod)."""
    if status.actual_weight is None:
        return " (actual unknown)"
    return f" (actual {status.actual_weight}%)" if status.actual_weight != status.canary_weight else ""


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


def name_of(md: ModelDeployment) -> str:
    return str(md.metadata.get("name", "?"))


def namespace_of(md: ModelDeployment) -> str:
    return str(md.metadata.get("namespace", "?"))


def _created(md: ModelDeployment) -> datetime | None:
    stamp = md.metadata.get("creationTimestamp")
    if isinstance(stamp, datetime):
        return stamp
    if isinstance(stamp, str):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return None


def object_text(body: object, output: str) -> str:
    """An API object (or a list of them) as `-o json` or `-o yaml` prints it."""
    if output == "yaml":
        return yaml.safe_dump(body, sort_keys=False, default_flow_style=False).rstrip("\n")
    return json.dumps(body, indent=2, default=str)


def list_object(items: Sequence[object]) -> dict[str, object]:
    """Several objects the way `kubectl get -o json` wraps them."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items), "metadata": {"resourceVersion": ""}}


def annotations_of(md: ModelDeployment) -> dict[str, str]:
    return dict(md.metadata.get("annotations") or {})


def step_text(md: ModelDeployment) -> str:
    """`2/3`, or `-` between rollouts and while the canary starts."""
    step = md.status.current_step
    return NONE if step is None else f"{step + 1}/{len(md.spec.rollout.steps)}"


def render_list(items: Sequence[ModelDeployment], now: datetime, *, namespace: str | None, wide: bool = False) -> str:
    """The `list` table; `namespace` None means every namespace (a NAMESPACE column). `wide` adds the spec's
    version, what pauses it, the last check and the one-line message."""
    all_namespaces = namespace is None
    if not items:
        return (
            "No ModelDeployments found in any namespace."
            if all_namespaces
            else (f"No ModelDeployments found in namespace {namespace}.")
        )
    headers = ["NAME", "PHASE", "STABLE", "CANARY", "STEP", "WEIGHT", "ACTUAL", "READY", "AGE"]
    if wide:
        headers += ["SPEC", "PAUSED", "LAST CHECK", "MESSAGE"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for md in sorted(items, key=lambda md: (namespace_of(md), name_of(md))):
        status = md.status
        row = [
            name_of(md),
            str(status.phase or "Pending"),
            status.stable_version or NONE,
            status.canary_version or NONE,
            step_text(md),
            f"{status.canary_weight}%" if status.canary_version else NONE,
            f"{status.actual_weight}%" if status.canary_version and status.actual_weight is not None else NONE,
            f"{status.ready_replicas}/{wanted_replicas(md.spec)}",
            since(_created(md), now),
        ]
        if wide:
            check = status.last_check
            row += [
                md.spec.model.version,
                paused_by(md) or NONE,
                f"{check.verdict} {age(now - check.time)} ago" if check else NONE,
                relative_times(message_of(md), now) or NONE,
            ]
        if all_namespaces:
            row.insert(0, namespace_of(md))
        rows.append(row)
    return table(headers, rows)


def metric_value(name: str, value: float | None) -> str:
    """A metric in the unit people read: percent for rates, ms or s for latency, whole requests."""
    return NONE if value is None else shown(name, value)


def _metric_row(metric: MetricResult) -> list[str]:
    value = metric_value(metric.name, metric.value)
    if metric.lower is not None and metric.upper is not None:  # compareToStable: the estimate and its interval
        value = f"{value} ({shown(metric.name, metric.lower)} to {shown(metric.name, metric.upper)})"
    return [
        metric.name,
        value,
        metric_value(metric.name, metric.min),
        metric_value(metric.name, metric.max),
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


def render_status(
    md: ModelDeployment, events: Sequence[EventLine] | None, now: datetime, *, state: str = "", route: str | None = None
) -> str:
    """The `kubectl sluice status` view: versions, step and weight, the last check against its bounds, whether a
    Gateway accepted the route (`route`), conditions and recent Events."""
    spec, status = md.spec, md.status
    fields: list[tuple[str, str]] = [("Name", name_of(md)), ("Namespace", namespace_of(md))]
    phase = str(status.phase or "Pending (not reconciled yet)")
    fields.append(("Phase", f"{phase}   [{state}]" if state else phase))
    progressing = next((c for c in status.conditions if c.type == PROGRESSING), None)
    if progressing is not None and progressing.message:
        fields.append(("Message", relative_times(progressing.message, now)))
    resolved = status.resolved_model if spec.model.uri.startswith("models:/") else None
    if resolved is None:
        fmt = spec.model.format or "format from the registry"
        fields.append(("Spec model", f"{spec.model.version}   {spec.model.uri} ({fmt})"))
    else:
        pinned = f"registered version {resolved.version}, {resolved.format}, {resolved.digest}"
        fields.append(("Spec model", f"{spec.model.version}   {spec.model.uri} ({pinned})"))
    fields.append(
        ("Stable", f"{status.stable_version or NONE}   {status.ready_replicas}/{wanted_replicas(spec)} ready")
    )
    if status.previous is not None:
        fields.append(("Previous", previous_text(status, now)))
    if status.canary_version is not None:
        revision = status.canary_revision
        changed = f"   revision {revision.number}: {revision.changes}" if revision is not None else ""
        fields.append(("Canary", f"{status.canary_version}{changed}"))
        steps = ", ".join(f"{weight}%" for weight in spec.rollout.steps)
        fields.append(("Step", f"{step_line(md)}   (steps {steps}; interval {spec.rollout.interval})"))
        fields.append(("Weight", weight_bar(status.canary_weight) + actual_text(status) + matched_text(md)))
        fields.append(
            (
                "Checks",
                f"{status.passed_checks} passed, {status.failed_checks} failed, "
                f"{status.inconclusive_checks} inconclusive, {status.consecutive_errors} errored in a row",
            )
        )
    fields += experiment_fields(md, now)
    if route is not None:
        fields.append(("Route", route))
    if (gate := gate_text(md)) is not None:
        fields.append(("Validation", gate))
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
    lines.append(_events(events, now) if events else f"  {events_placeholder(events, namespace_of(md))}")
    return "\n".join(lines)


def previous_text(status: ModelDeploymentStatus, now: datetime) -> str:
    """rollout.keepPrevious: the kept revision and until when `undo` moves all traffic back to it at once."""
    previous = status.previous
    if previous is None:
        return NONE
    kept = f"revision {previous.revision.number} ({previous.version})"
    if previous.released:
        return f"{kept} released: the stable Deployment takes {status.stable_version} back"
    left = age(previous.until - now)
    return f"{kept} kept for {left} more (until {previous.until.isoformat()}): `undo` moves all traffic back at once"


def events_placeholder(events: Sequence[EventLine] | None, namespace: str) -> str:
    """What stands for no Event lines: none recorded, or not allowed to read them."""
    return f"<forbidden: you may not list events in namespace {namespace}>" if events is None else "<none>"


def step_line(md: ModelDeployment, canary_ready: int | None = None) -> str:
    """Where the rollout is, in words that match the phase (never "waiting for the canary" after it ended)."""
    status = md.status
    steps = len(md.spec.rollout.steps)
    match status.phase:
        case Phase.ROLLED_BACK:
            last = status.history[-1] if status.history else None
            outcome = last.outcome if last is not None else Outcome.ROLLED_BACK
            how = {Outcome.ABORTED: "aborted", Outcome.KEPT: "kept by the experiment"}.get(outcome, "rolled back")
            return f"{how}; stable {status.stable_version or NONE} serves"
        case Phase.VALIDATING:
            return "validation gate: scoring the canary on the labelled dataset before any traffic"
        case Phase.SHADOWING:
            return "shadowing: the canary gets a copy of the traffic, its answers are compared"
        case Phase.PROMOTING:
            return f"promoting {status.canary_version}: the stable pods move to it"
        case Phase.EXPERIMENTING:
            return f"experimenting: {status.canary_version} (B) beside {status.stable_version} (A), each key on one"
        case Phase.PROMOTED:
            return f"promoted {status.stable_version}: it serves all traffic from the canary's pods"
    if status.current_step is not None:
        return f"{step_text(md)} at {status.canary_weight}%"
    if canary_ready is not None:
        return f"starting the canary ({canary_ready}/{wanted_replicas(md.spec)} pods ready); step 1/{steps} follows"
    return f"starting the canary; step 1/{steps} follows once it is ready"


def gate_text(md: ModelDeployment) -> str | None:
    """The validation gate's result against its bound: `accuracy 0.93 on 200 samples, needs accuracy >= 0.9:
    passed`."""
    result, gate = md.status.validation, md.spec.validation
    if result is None or result.version != md.status.canary_version:
        return None
    if result.score is None:
        return f"{result.metric}: no score ({result.message or 'the run failed'})"
    needs = f", needs {bound_text(gate)}" if gate is not None else ""
    verdict = "passed" if result.passed else "FAILED"
    return f"{result.metric} {result.score:.4g} on {result.samples} samples{needs}: {verdict}"


def message_of(md: ModelDeployment) -> str:
    """The one sentence that says what is happening: Progressing's message, else Ready's."""
    for kind in (PROGRESSING, READY):
        condition = next((c for c in md.status.conditions if c.type == kind and c.message), None)
        if condition is not None:
            return condition.message
    return ""
