"""`undo --to-revision N`: the revisions the status records (history entries and the stable one), and the merge
patch that sets spec.model and spec.serving back to one of them.

A revision's spec.serving lives in its history entry as compact JSON of at most REVISION_SPEC_LIMIT characters
(`HistoryEntry.serving`, `stableServing`): the status is the operator's only memory, it needs no other object or
permission, and 20 entries of two such records stay far below the object size limit. A revision whose serving
spec was longer than that, or whose rollout the spec had already moved on from, cannot be returned to by number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluice.api.v1alpha1 import ModelDeployment, ModelStatus, Outcome, RevisionRef, ServingSpec
from sluice.cli.base import CliError, ExitCode
from sluice.core.rollout.revisions import spec_revision_hash


@dataclass(frozen=True)
class Revision:
    """A revision the status records in full."""

    ref: RevisionRef
    model: ModelStatus
    serving: ServingSpec | None


def _parsed(serving: str | None) -> ServingSpec | None:
    parsed = ServingSpec.model_validate_json(serving) if serving else None
    return parsed if parsed is not None and parsed.to_wire() else None


def known_revisions(md: ModelDeployment) -> dict[int, Revision]:
    """Every revision whose model and serving spec the status records, by number."""
    found: dict[int, Revision] = {}
    for entry in md.status.history:
        records = (
            (entry.stable_revision, entry.stable_model, entry.stable_serving),
            (entry.revision, entry.model, entry.serving),
        )
        for ref, model, serving in records:
            if ref is not None and model is not None and serving is not None:
                found[ref.number] = Revision(ref, model, _parsed(serving))
    status = md.status
    if status.stable_revision is not None and status.stable_model is not None:
        found[status.stable_revision.number] = Revision(
            status.stable_revision, status.stable_model, status.stable_serving
        )
    return found


def revision_target(md: ModelDeployment, number: int) -> Revision:
    """The revision `undo --to-revision` returns to; CliError when the status does not record it in full."""
    revisions = known_revisions(md)
    if number not in revisions:
        listed = ", ".join(str(known) for known in sorted(revisions)) or "none"
        raise CliError(
            ExitCode.WRONG_STATE,
            f"revision {number} is not recorded in full in the history of {md.metadata.get('name')} "
            f"(revisions that are: {listed})",
        )
    return revisions[number]


def default_revision(md: ModelDeployment) -> Revision | None:
    """The revision a plain `undo` returns to, when the status records it in full: while the spec names another
    revision than the stable one (a rollout, or after a rollback), the stable revision; between rollouts, the
    revision the last promotion replaced. None for statuses written before revisions (undo then falls back to
    the stable model, `checks.undo_target`)."""
    status = md.status
    if status.stable_revision is None or status.stable_model is None:
        return None
    if spec_revision_hash(md.spec) != status.stable_revision.hash:
        return Revision(status.stable_revision, status.stable_model, status.stable_serving)
    for entry in reversed(status.history):
        if (
            entry.outcome is Outcome.PROMOTED
            and entry.revision
            and entry.revision.number == status.stable_revision.number
        ):
            if entry.stable_revision and entry.stable_model and entry.stable_serving is not None:
                return Revision(entry.stable_revision, entry.stable_model, _parsed(entry.stable_serving))
            return None
    return None


def kept_effect(md: ModelDeployment, revision_hash: str) -> str | None:
    """What an undo to `revision_hash` does when its pods are kept (rollout.keepPrevious): all traffic moves back to
    them at once. None when they are not (the window is over, or another revision)."""
    previous = md.status.previous
    if previous is None or previous.released or previous.revision.hash != revision_hash:
        return None
    return (
        f"all traffic moves back at once to the kept pods of revision {previous.revision.number} "
        f"({previous.version}, kept until {previous.until.isoformat()})"
    )


def replacing(current: Any, target: Any) -> Any:
    """A JSON merge patch turning `current` into `target`: keys only `current` has are set to null."""
    if not isinstance(current, dict) or not isinstance(target, dict):
        return target
    patch = {key: None for key in current if key not in target}
    patch.update({key: replacing(current.get(key), value) for key, value in target.items()})
    return patch


def revision_patch(md: ModelDeployment, revision: Revision) -> dict[str, Any]:
    """The merge patch setting spec.model and spec.serving to `revision`'s."""
    model = revision.model
    wire_model = {"version": model.version, "uri": model.uri, "format": str(model.format), "digest": model.digest}
    current = md.spec.serving.to_wire() if md.spec.serving else None
    target = revision.serving.to_wire() if revision.serving else None
    return {"spec": {"model": wire_model, "serving": replacing(current, target) if target else None}}
