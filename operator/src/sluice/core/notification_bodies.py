"""The two webhook body formats of a rollout notice: Slack-compatible JSON (`text` and Block Kit `blocks`; Slack
incoming webhooks, Mattermost, Rocket.Chat, Teams workflows that take Slack payloads) and a CloudEvents 1.0 event
in structured mode (`application/cloudevents+json`). docs/notifications.md shows both."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sluice.api.v1alpha1 import API_VERSION, PLURAL, RolloutEvent
from sluice.core.notifications import CheckValue, RolloutNotice

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
SLACK_CONTENT_TYPE = "application/json"
EVENT_TYPE_PREFIX = "dev.sluice.rollout."
_EVENT_TYPE_NAMES = {
    RolloutEvent.STARTED: "started",
    RolloutEvent.STEP_PASSED: "steppassed",
    RolloutEvent.PAUSED: "paused",
    RolloutEvent.PROMOTED: "promoted",
    RolloutEvent.ROLLED_BACK: "rolledback",
}
_EMOJI = {
    RolloutEvent.STARTED: ":rocket:",
    RolloutEvent.STEP_PASSED: ":white_check_mark:",
    RolloutEvent.PAUSED: ":double_vertical_bar:",
    RolloutEvent.PROMOTED: ":tada:",
    RolloutEvent.ROLLED_BACK: ":rewind:",
}


class BodyFormat(StrEnum):
    """A receiver's body format (the `<receiver>.format` key of the notification Secret)."""

    CLOUDEVENTS = "cloudevents"
    SLACK = "slack"


def event_type(event: RolloutEvent) -> str:
    """The CloudEvents `type`: `dev.sluice.rollout.promoted`."""
    return EVENT_TYPE_PREFIX + _EVENT_TYPE_NAMES[event]


def body(notice: RolloutNotice, body_format: BodyFormat) -> tuple[dict[str, Any], str]:
    """The JSON body of `notice` in `body_format`, and its content type."""
    if body_format is BodyFormat.SLACK:
        return slack_body(notice), SLACK_CONTENT_TYPE
    return cloudevent(notice), CLOUDEVENTS_CONTENT_TYPE


def data(notice: RolloutNotice) -> dict[str, Any]:
    """The event's fields (the CloudEvent's `data`)."""
    subject = notice.subject
    return {
        "event": str(notice.event),
        "namespace": subject.namespace,
        "name": subject.name,
        "version": notice.version,
        "revision": notice.revision,
        "stableVersion": notice.stable_version,
        "step": notice.step,
        "steps": subject.steps,
        "weight": notice.weight,
        "reason": notice.reason,
        "summary": notice.summary,
        "checks": [_check(check) for check in notice.checks],
    }


def _check(check: CheckValue) -> dict[str, Any]:
    return {"name": check.name, "value": check.value, "min": check.min, "max": check.max, "verdict": check.verdict}


def cloudevent(notice: RolloutNotice) -> dict[str, Any]:
    """A CloudEvents 1.0 event, structured mode: `id` is stable per event, so receivers can dedupe."""
    subject = notice.subject
    return {
        "specversion": "1.0",
        "id": notice.id,
        "source": f"/apis/{API_VERSION}/namespaces/{subject.namespace}/{PLURAL}/{subject.name}",
        "type": event_type(notice.event),
        "subject": f"{subject.namespace}/{subject.name}",
        "time": notice.time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data(notice),
    }


def slack_body(notice: RolloutNotice) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (the notification's fallback) and a section per part."""
    text = f"{_EMOJI[notice.event]} {notice.summary}"
    fields = [
        f"*Version*\n{notice.version}" + (f" (revision {notice.revision})" if notice.revision is not None else ""),
        f"*Stable*\n{notice.stable_version or '-'}",
        f"*Reason*\n{notice.reason}",
        f"*Event id*\n{notice.id}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": field} for field in fields]},
    ]
    if notice.checks:
        lines = "\n".join(_check_line(check) for check in notice.checks)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Checks*\n{lines}"}})
    return {"text": text, "blocks": blocks}


def _check_line(check: CheckValue) -> str:
    value = "no data" if check.value is None else f"{check.value:.6g}"
    bounds = [
        f">= {check.min:.6g}" if check.min is not None else "",
        f"<= {check.max:.6g}" if check.max is not None else "",
    ]
    bound = " and ".join(part for part in bounds if part)
    return f"{check.verdict}: {check.name} = {value}" + (f" (bound {bound})" if bound else "")
