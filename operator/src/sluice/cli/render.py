"""Pure text rendering for the plugin: ModelDeployments and Events in, text out (no cluster, no clock: `now` is
a parameter), so every view is unit-tested."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import yaml

from sluice.api.v1alpha1 import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    PAUSED_ANNOTATION,
    CheckResult,
    Condition,
    MetricResult,
    ModelDeployment,
    ModelStatus,
    Outcome,
    Phase,
    Verdict,
)
from sluice.core.analysis import shown
from sluice.core.children import ChildNames, Track
from sluice.core.conditions import PROGRESSING, READY
from sluice.core.gates import bound_text

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


_TIMESTAMP = re.compile(r"\b(at )?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))")


def relative_times(message: str, now: datetime) -> str:
    """`next check at 2026-01-01T12:00:48+00:00` as `next check in 48s` (and past times as `12s ago`)."""

    def relative(found: re.Match[str]) -> str:
        moment = datetime.fromisoformat(found.group(2).replace("Z", "+00:00"))
        return f"in {age(moment - now)}" if moment > now else f"{age(now - moment)} ago"

    return _TIMESTAMP.sub(relative, message)


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
    headers = ["NAME", "PHASE", "STABLE", "CANARY", "STEP", "WEIGHT", "READY", "AGE"]
    if wide:
        headers += ["SPEC", "PAUSED", "LAST CHECK", "MESSAGE"]
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
        if wide:
            check = status.last_check
            row += [
                md.spec.model.version,
                paused_by(md) or NONE,
                f"{check.verdict} {age(now - check.time)} ago" if check else NONE,
                relative_times(message_of(md), now) or NONE,
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


def metric_value(name: str, value: float | None) -> str:
    """A metric in the unit people read: percent for rates, ms or s for latency, whole requests."""
    return NONE if value is None else shown(name, value)


def _metric_row(metric: MetricResult) -> list[str]:
    return [
        metric.name,
        metric_value(metric.name, metric.value),
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
    fields: list[tuple[str, str]] = [("Name", _name(md)), ("Namespace", _namespace(md))]
    phase = str(status.phase or "Pending (not reconciled yet)")
    fields.append(("Phase", f"{phase}   [{state}]" if state else phase))
    progressing = next((c for c in status.conditions if c.type == PROGRESSING), None)
    if progressing is not None and progressing.message:
        fields.append(("Message", relative_times(progressing.message, now)))
    fields.append(("Spec model", f"{spec.model.version}   {spec.model.uri} ({spec.model.format})"))
    fields.append(("Stable", f"{status.stable_version or NONE}   {status.ready_replicas}/{spec.replicas} ready"))
    if status.canary_version is not None:
        fields.append(("Canary", status.canary_version))
        steps = ", ".join(f"{weight}%" for weight in spec.rollout.steps)
        fields.append(("Step", f"{step_line(md)}   (steps {steps}; interval {spec.rollout.interval})"))
        fields.append(("Weight", weight_bar(status.canary_weight)))
        fields.append(
            (
                "Checks",
                f"{status.passed_checks} passed, {status.failed_checks} failed, "
                f"{status.inconclusive_checks} inconclusive, {status.consecutive_errors} errored in a row",
            )
        )
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
    lines.append(_events(events, now) if events else f"  {events_placeholder(events, _namespace(md))}")
    return "\n".join(lines)


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
            how = "aborted" if last is not None and last.outcome is Outcome.ABORTED else "rolled back"
            return f"{how}; stable {status.stable_version or NONE} serves"
        case Phase.VALIDATING:
            return "validation gate: scoring the canary on the labelled dataset before any traffic"
        case Phase.SHADOWING:
            return "shadowing: the canary gets a copy of the traffic, its answers are compared"
        case Phase.PROMOTING:
            return f"promoting {status.canary_version}: the stable pods move to it"
    if status.current_step is not None:
        return f"{step_text(md)} at {status.canary_weight}%"
    if canary_ready is not None:
        return f"starting the canary ({canary_ready}/{md.spec.replicas} pods ready); step 1/{steps} follows"
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


def route_text(md: ModelDeployment, parents: Sequence[RouteParent] | None, *, found: bool = True) -> str:
    """Whether a Gateway accepted the HTTPRoute: weights on a route no parent accepted move no traffic."""
    if parents is None:
        return f"<forbidden: you may not get httproutes in namespace {_namespace(md)}>"
    name = ChildNames.of(_name(md)).route
    if not found:
        return f"HTTPRoute {name} not created yet"
    accepted = [parent.name for parent in parents if parent.accepted == "True"]
    if accepted:
        return f"✔ HTTPRoute {name} accepted by {', '.join(accepted)}"
    gateway = md.spec.traffic.gateway if md.spec.traffic is not None else None
    wanted = ", ".join(ref.name for ref in gateway.parent_refs) if gateway is not None else NONE
    refused = [f"{p.name}: {p.reason or p.accepted}" for p in parents if p.accepted is not None]
    why = f" ({'; '.join(refused)})" if refused else " (no status from any parent: is there such a Gateway?)"
    return f"✖ HTTPRoute {name} not accepted by {wanted}{why}: its weights move no traffic"


def message_of(md: ModelDeployment) -> str:
    """The one sentence that says what is happening: Progressing's message, else Ready's."""
    for kind in (PROGRESSING, READY):
        condition = next((c for c in md.status.conditions if c.type == kind and c.message), None)
        if condition is not None:
            return condition.message
    return ""


LIVE_WIDTH, LIVE_HEIGHT = 80, 24
"""The smallest terminal the live view is drawn for."""
MARKS = {Verdict.PASSED: "✔", Verdict.FAILED: "✖", Verdict.INCONCLUSIVE: "?", Verdict.ERRORED: "!"}
"""One character per verdict."""
MAX_POD_LINES = 4


def clip(line: str, width: int) -> str:
    """`line` cut to `width` characters, with `…` where it was cut."""
    return line if len(line) <= width else line[: width - 1] + "…"


def _step_marks(md: ModelDeployment) -> str:
    """`✔ 10%  ▸ 25%  · 50%`: steps done, the current one (or ✖ where a check failed it), steps to come."""
    status, check = md.status, md.status.last_check
    current = status.current_step
    failed_at = check.step if check is not None and check.verdict is Verdict.FAILED else None
    if status.phase is Phase.ROLLED_BACK and failed_at is None and check is not None:
        failed_at = check.step
    reached = current if current is not None else failed_at
    marks = []
    for index, weight in enumerate(md.spec.rollout.steps):
        if index == failed_at and status.phase is Phase.ROLLED_BACK:
            mark = "✖"
        elif status.phase is Phase.PROMOTING or (reached is not None and index < reached):
            mark = "✔"
        elif index == current:
            mark = "▸"
        else:
            mark = "·"
        marks.append(f"{mark} {weight}%")
    return "  ".join(marks)


def _bound(metric: MetricResult) -> str:
    """`≥ 20`, `≤ 1%`, or both, in the metric's unit."""
    limits = (("≥", metric.min), ("≤", metric.max))
    return " ".join(f"{sign} {metric_value(metric.name, limit)}" for sign, limit in limits if limit is not None)


def _ready(pods: Sequence[PodLine], track: Track) -> tuple[int, int]:
    mine = [pod for pod in pods if pod.track == track]
    return sum(pod.ready for pod in mine), len(mine)


def pod_share(md: ModelDeployment, pods: Sequence[PodLine] | None) -> int | None:
    """The canary's real share of traffic without a Gateway, in percent: its ready pods among all ready pods behind
    the one Service (the requested weight is only approximated by the replica ratio); None with a Gateway."""
    traffic = md.spec.traffic
    if pods is None or (traffic is not None and traffic.gateway is not None):
        return None
    canary, stable = _ready(pods, Track.CANARY)[0], _ready(pods, Track.STABLE)[0]
    return round(100 * canary / (canary + stable)) if canary + stable else None


def render_live(
    md: ModelDeployment,
    events: Sequence[EventLine] | None,
    pods: Sequence[PodLine] | None,
    now: datetime,
    *,
    state: str,
    route: str | None = None,
    width: int = LIVE_WIDTH,
    height: int = LIVE_HEIGHT,
    footer: str = "",
) -> str:
    """The `status --watch` screen: at most `height` lines of at most `width` characters. A compact header,
    the steps with a mark per step, the last check with a mark per metric against its bound, whether a Gateway
    accepted the route (`route`, from `route_text`), canary and stable ready counts and their pods, one message,
    then as many recent Events as fit."""
    spec, status = md.spec, md.status
    phase = str(status.phase or "Pending")
    head = f"{_name(md)} · {_namespace(md)} · {phase} ({state})"
    lines = [head + f"{footer:>{max(width - len(head), 0)}}" if footer else head]
    if pods is None:
        counts = f"stable {status.stable_version or NONE}   {status.ready_replicas}/{spec.replicas} ready"
    else:
        stable_ready, stable_pods = _ready(pods, Track.STABLE)
        counts = f"stable {status.stable_version or NONE} {stable_ready}/{stable_pods} ready"
        if status.canary_version is not None:
            canary_ready, canary_pods = _ready(pods, Track.CANARY)
            counts += f"   canary {status.canary_version} {canary_ready}/{canary_pods} ready"
    lines.append(f"{'model':<8}{spec.model.version} (spec)   {counts}")
    if status.canary_version is not None:
        starting = _ready(pods, Track.CANARY)[0] if pods is not None else None
        share = pod_share(md, pods)
        real = f" (≈{share}% by pods)" if share is not None and share != status.canary_weight else ""
        lines.append(f"{'traffic':<8}{weight_bar(status.canary_weight)}{real}   {step_line(md, starting)}")
        lines.append(f"{'steps':<8}{_step_marks(md)}   every {spec.rollout.interval}")
    check = status.last_check
    if check is not None and status.canary_version is not None:
        lines.append(
            f"{'check':<8}{MARKS[check.verdict]} {check.verdict} {age(now - check.time)} ago at step "
            f"{check.step + 1} ({check.weight}%)   {status.passed_checks} passed, {status.failed_checks} failed"
        )
        for metric in check.metrics:
            lines.append(
                f"  {MARKS[metric.verdict]} {metric.name:<16}{metric_value(metric.name, metric.value):>9}   "
                f"{_bound(metric)}"
            )
    if route is not None:
        lines.append(f"{'route':<8}{route}")
    if (gate := gate_text(md)) is not None:
        lines.append(f"{'gate':<8}{gate}")
    if (by := paused_by(md)) is not None:
        lines.append(f"{'paused':<8}by {by}")
    if (pending := pending_action(md)) is not None:
        lines.append(f"{'pending':<8}{pending[0]} (id {pending[1]}) not handled by the operator yet")
    if pods is None:
        lines.append(f"{'pods':<8}<forbidden: you may not list pods in namespace {_namespace(md)}>")
    for index, pod in enumerate(pods[:MAX_POD_LINES] if pods is not None else []):
        mark = "✔" if pod.ready else "✖"
        lines.append(
            f"{'pods' if index == 0 else '':<8}{mark} {pod.name}  {pod.track}  {pod.phase}  {since(pod.created, now)}"
        )
    if pods is not None and len(pods) > MAX_POD_LINES:
        lines.append(f"{'':<8}and {len(pods) - MAX_POD_LINES} more")
    if message := message_of(md):
        lines.append(f"{'message':<8}{relative_times(message, now)}")
    room = height - len(lines) - 1
    if room > 0:
        lines.append("events" if events else f"events  {events_placeholder(events, _namespace(md))}")
        for event in (events or [])[-(room - 1) :] if room > 1 else []:
            mark = "!" if event.type == "Warning" else " "
            lines.append(f"  {since(event.time, now):>5} {mark} {event.reason}: {relative_times(event.message, now)}")
    return "\n".join(clip(line, width) for line in lines[:height])
