"""The `status --watch` screen of kubectl-sluice: a compact live view that fits an 80x24 terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sluice.api.v1alpha1 import MetricResult, ModelDeployment, Phase, Verdict
from sluice.cli.render import (
    NONE,
    EventLine,
    PodLine,
    RouteParent,
    actual_text,
    events_placeholder,
    gate_text,
    message_of,
    metric_value,
    name_of,
    namespace_of,
    paused_by,
    pending_action,
    since,
    step_line,
    wanted_replicas,
    weight_bar,
)
from sluice.cli.times import age, relative_times
from sluice.core.children import ChildNames, Track

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
    phase = str(md.status.phase or "Pending")
    head = f"{name_of(md)} · {namespace_of(md)} · {phase} ({state})"
    lines = [head + f"{footer:>{max(width - len(head), 0)}}" if footer else head]
    lines += _rollout_lines(md, pods, now, route)
    lines += _pod_lines(md, pods, now)
    if message := message_of(md):
        lines.append(f"{'message':<8}{relative_times(message, now)}")
    room = height - len(lines) - 1
    if room > 0:
        lines.append("events" if events else f"events  {events_placeholder(events, namespace_of(md))}")
        for event in (events or [])[-(room - 1) :] if room > 1 else []:
            mark = "!" if event.type == "Warning" else " "
            lines.append(f"  {since(event.time, now):>5} {mark} {event.reason}: {relative_times(event.message, now)}")
    return "\n".join(clip(line, width) for line in lines[:height])


def _rollout_lines(md: ModelDeployment, pods: Sequence[PodLine] | None, now: datetime, route: str | None) -> list[str]:
    """Ready counts, traffic, steps, the last check with its metrics, the route, gate, pause and pending lines."""
    spec, status = md.spec, md.status
    lines: list[str] = []
    if pods is None:
        counts = f"stable {status.stable_version or NONE}   {status.ready_replicas}/{wanted_replicas(spec)} ready"
    else:
        stable_ready, stable_pods = _ready(pods, Track.STABLE)
        counts = f"stable {status.stable_version or NONE} {stable_ready}/{stable_pods} ready"
        if status.canary_version is not None:
            canary_ready, canary_pods = _ready(pods, Track.CANARY)
            counts += f"   canary {status.canary_version} {canary_ready}/{canary_pods} ready"
    lines.append(f"{'model':<8}{spec.model.version} (spec)   {counts}")
    if status.canary_version is not None:
        starting = _ready(pods, Track.CANARY)[0] if pods is not None else None
        lines.append(
            f"{'traffic':<8}{weight_bar(status.canary_weight)}{actual_text(status)}   {step_line(md, starting)}"
        )
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
    return lines


def _pod_lines(md: ModelDeployment, pods: Sequence[PodLine] | None, now: datetime) -> list[str]:
    """One line per pod (at most MAX_POD_LINES), or why they cannot be listed."""
    lines: list[str] = []
    if pods is None:
        lines.append(f"{'pods':<8}<forbidden: you may not list pods in namespace {namespace_of(md)}>")
    for index, pod in enumerate(pods[:MAX_POD_LINES] if pods is not None else []):
        mark = "✔" if pod.ready else "✖"
        lines.append(
            f"{'pods' if index == 0 else '':<8}{mark} {pod.name}  {pod.track}  {pod.phase}  {since(pod.created, now)}"
        )
    if pods is not None and len(pods) > MAX_POD_LINES:
        lines.append(f"{'':<8}and {len(pods) - MAX_POD_LINES} more")
    return lines


def route_text(md: ModelDeployment, parents: Sequence[RouteParent] | None, *, found: bool = True) -> str:
    """Whether a Gateway accepted the HTTPRoute: weights on a route no parent accepted move no traffic."""
    if parents is None:
        return f"<forbidden: you may not get httproutes in namespace {namespace_of(md)}>"
    name = ChildNames.of(name_of(md)).route
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
