"""Revisions: everything that shapes a serving pod (spec.model and spec.serving), hashed, numbered, and told apart
in words.

Replicas and the rollout's settings are not part of a revision: they change the Deployments in place. A revision's
hash is what the Deployments carry (annotation `sluice.dev/revision`) and what the phases compare, so an env-only
change is rolled out, analysed and rolled back exactly as a new model version is.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sluice.api.v1alpha1 import (
    REVISION_SPEC_LIMIT,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelStatus,
    Phase,
    RevisionRef,
    ServingSpec,
)
from sluice.core.rollout.workloads import model_status

HASH_LENGTH = 10
SUMMARY_LIMIT = 512


def revision_hash(model: ModelStatus, serving: ServingSpec | None) -> str:
    """The hash of a revision: its model and its serving spec, in a canonical form."""
    canonical = {"model": model.to_wire(), "serving": serving.to_wire() if serving else {}}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def spec_revision_hash(spec: ModelDeploymentSpec) -> str:
    return revision_hash(model_status(spec.model), spec.serving)


def next_number(status: ModelDeploymentStatus) -> int:
    """The number of a new revision: one more than every revision the status still knows."""
    known = [ref.number for ref in (status.stable_revision, status.canary_revision) if ref is not None]
    for entry in status.history:
        known += [ref.number for ref in (entry.revision, entry.stable_revision) if ref is not None]
    return max(known, default=0) + 1


def spec_revision(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> RevisionRef:
    """The revision spec names, as the next revision after the stable one (the canary's, when spec names it)."""
    spec_hash = spec_revision_hash(spec)
    for ref in (status.canary_revision, status.stable_revision):
        if ref is not None and ref.hash == spec_hash:
            return ref
    summary = changes(status.stable_model, status.stable_serving, model_status(spec.model), spec.serving)
    return RevisionRef(number=next_number(status), hash=spec_hash, version=spec.model.version, changes=summary)


def stable_track_serving(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> ServingSpec | None:
    """What the stable Deployment runs of spec.serving: the stable revision's; while promoting (and before the status
    records a stable revision) spec.serving."""
    if status.phase is Phase.PROMOTING or status.stable_revision is None:
        return spec.serving
    return status.stable_serving


def serving_record(serving: ServingSpec | None) -> str | None:
    """spec.serving as compact JSON for a history entry; None when longer than REVISION_SPEC_LIMIT."""
    text = json.dumps(serving.to_wire() if serving else {}, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= REVISION_SPEC_LIMIT else None


def _field_changes(name: str, old: Any, new: Any) -> list[str]:
    if old == new:
        return []
    if name == "env":
        return [_env_changes(old or [], new or [])]
    if name == "image":
        return [f"image {old or 'default'} → {new or 'default'}"]
    return [f"{name} changed"]


def _env_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str:
    """Which variables were added, removed or changed: names only (values may be secrets-adjacent)."""
    before, after = {env["name"]: env for env in old}, {env["name"]: env for env in new}
    parts = [f"env {name} added" for name in after if name not in before]
    parts += [f"env {name} removed" for name in before if name not in after]
    parts += [f"env {name} changed" for name in after if name in before and before[name] != after[name]]
    return ", ".join(parts) or "env reordered"


def changes(
    old_model: ModelStatus | None, old_serving: ServingSpec | None, model: ModelStatus, serving: ServingSpec | None
) -> str:
    """What a revision changes against another, in words: the model version (else whether the artifact changed),
    the image, env names and the other serving fields by name (never an env value)."""
    if old_model is None:
        return "first revision"
    parts = []
    if old_model.version != model.version:
        parts.append(f"model {old_model.version} → {model.version}")
    elif (old_model.uri, old_model.format, old_model.digest) != (model.uri, model.format, model.digest):
        parts.append("model artifact changed")
    before = old_serving.to_wire() if old_serving else {}
    after = serving.to_wire() if serving else {}
    for name in sorted(before.keys() | after.keys(), key=lambda key: (key != "image", key != "env", key)):
        parts += _field_changes(name, before.get(name), after.get(name))
    text = ", ".join(parts) or "no change"
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"
