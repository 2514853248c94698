"""The `history` view: one row per finished rollout, with its revision, what it changed and its model."""

from __future__ import annotations

from datetime import datetime

from sluice.api.v1alpha1 import ModelDeployment, ModelStatus
from sluice.cli.render import NONE, name_of, previous_text, since, table
from sluice.cli.times import age


def _model_text(model: ModelStatus | None) -> str:
    if model is None:
        return NONE
    digest = f" {model.digest[:19]}" if model.digest else ""
    return f"{model.uri} ({model.format}{digest})"


def render_history(md: ModelDeployment, now: datetime) -> str:
    history = md.status.history
    if not history:
        return f"No finished rollouts of {name_of(md)} yet (stable: {md.status.stable_version or NONE})."
    rows = []
    for number, entry in enumerate(history, start=1):
        rows.append(
            [
                str(number),
                str(entry.revision.number) if entry.revision else NONE,
                entry.version,
                str(entry.outcome),
                since(entry.finished_at, now) + " ago",
                age(entry.finished_at - entry.started_at),
                entry.reason,
                entry.revision.changes if entry.revision else NONE,
                _model_text(entry.model),
                entry.message,
            ]
        )
    headers = ["#", "REVISION", "VERSION", "OUTCOME", "FINISHED", "TOOK", "REASON", "CHANGES", "MODEL", "MESSAGE"]
    stable = md.status.stable_revision
    revision = f" (revision {stable.number})" if stable else ""
    kept = f"\nprevious: {previous_text(md.status, now)}" if md.status.previous is not None else ""
    return table(headers, rows) + f"\n\nstable now: {md.status.stable_version or NONE}{revision}{kept}"
