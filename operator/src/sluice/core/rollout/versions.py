"""Following the spec's revision (spec.model and spec.serving): the first deploy, a new rollout, a superseded
canary, a revert to stable. A change of spec.model.version is one kind of revision change; a change of the image,
env or any other pod field is another, rolled out the same way."""

from __future__ import annotations

from sluice.api.v1alpha1 import Outcome, Phase, RevisionRef
from sluice.core.conditions import ConditionStatus
from sluice.core.plan import EventType
from sluice.core.rollout.order import ROLLOUT_PHASES
from sluice.core.rollout.revisions import next_number, revision_hash, spec_revision, spec_revision_hash
from sluice.core.rollout.state import Decision
from sluice.core.rollout.workloads import model_status


def follow_spec_revision(decision: Decision) -> None:
    status = decision.status
    if status.stable_model is None or status.phase in (None, Phase.INITIALIZING):
        # First deploy: nothing serves yet, so the stable track simply follows the spec.
        decision.enter(Phase.INITIALIZING)
        status.stable_revision = spec_revision(decision.spec, status)
        status.stable_model = model_status(decision.spec.model)
        status.stable_version = decision.spec.model.version
        status.stable_serving = decision.spec.serving
        return
    _adopt_unrecorded_revisions(decision)
    spec_hash = spec_revision_hash(decision.spec)
    stable_hash = status.stable_revision.hash if status.stable_revision else None
    canary_hash = status.canary_revision.hash if status.canary_revision else None
    if status.phase in ROLLOUT_PHASES and spec_hash != canary_hash:
        if spec_hash == stable_hash:
            _revert_to_stable(decision)
        else:
            _supersede(decision)
    elif status.phase is Phase.STABLE and spec_hash != stable_hash:
        decision.start_rollout(f"rolling out {_label(decision)}")
    elif status.phase is Phase.ROLLED_BACK and spec_hash != canary_hash:
        # The rolled-back revision stays rolled back until retried; another revision starts afresh.
        if spec_hash == stable_hash:
            decision.become_stable()
        else:
            decision.start_rollout(f"rolling out {_label(decision)}")


def _adopt_unrecorded_revisions(decision: Decision) -> None:
    """A status written before revisions existed: its stable Deployment ran spec.serving with the stable model, and
    a running canary ran spec's revision."""
    status, spec = decision.status, decision.spec
    if status.stable_revision is None and status.stable_model is not None:
        status.stable_serving = spec.serving
        stable_hash = revision_hash(status.stable_model, spec.serving)
        status.stable_revision = RevisionRef(
            number=next_number(status), hash=stable_hash, version=status.stable_model.version
        )
    if status.canary_revision is None and status.canary_version == spec.model.version:
        status.canary_revision = spec_revision(spec, status)


def _label(decision: Decision) -> str:
    """`1.4.0` for a new model version (as before revisions); else the revision and what it changes."""
    spec, status = decision.spec, decision.status
    if spec.model.version not in (status.stable_version, status.canary_version):
        return spec.model.version
    revision = spec_revision(decision.spec, decision.status)
    return f"revision {revision.number} of {spec.model.version} ({revision.changes})"


def _revert_to_stable(decision: Decision) -> None:
    """The spec set back to the stable revision: the rollout ends as Aborted, the stable stays."""
    status = decision.status
    if status.canary_version != status.stable_version:
        what = f"spec.model.version set back to {status.stable_version}"
    else:
        what = f"the spec set back to stable revision {status.stable_revision.number if status.stable_revision else ''}"
    message = f"rollout of {status.canary_version} ended: {what}"
    decision.end_rollout(Outcome.ABORTED, "RevertedToStable", message)
    decision.become_stable()
    decision.set_progressing(ConditionStatus.FALSE, "RevertedToStable", message)
    decision.event(EventType.NORMAL, "RevertedToStable", message)


def _supersede(decision: Decision) -> None:
    """A new revision mid-rollout replaces the canary; its rollout starts from the current stable."""
    old, label = decision.status.canary_version, _label(decision)
    message = f"rollout of {old} superseded by {label} {decision.where()}"
    decision.end_rollout(Outcome.SUPERSEDED, "Superseded", message)
    decision.event(EventType.NORMAL, "Superseded", message)
    decision.start_rollout(f"rolling out {label}")
