"""Pure state checks the plugin runs before it writes anything, and the state `status` reports.

They mirror the operator's own rules (core/rollout.py, docs/rollouts.md "Manual actions"), so a request the
operator would ignore is refused here with a clear message instead of becoming an `ActionIgnored` Event.
"""

from __future__ import annotations

from enum import StrEnum

from sluice.api.v1alpha1 import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    PAUSED_ANNOTATION,
    Action,
    ModelDeployment,
    ModelStatus,
    Outcome,
    Phase,
)
from sluice.cli.base import CliError, ExitCode
from sluice.cli.render import annotations_of, paused_by, pending_action
from sluice.core.conditions import READY, STALLED
from sluice.core.rollout import ROLLOUT_PHASES
from sluice.core.validation import INVALID_SPEC


class RolloutState(StrEnum):
    """What `status` reports, and its exit code."""

    HEALTHY = "Healthy"
    """Stable, and the operator has acted on the latest spec and request."""
    DEGRADED = "Degraded"
    """The last rollout was rolled back or aborted, or the spec is invalid."""
    PROGRESSING = "Progressing"
    """A rollout (or the first deploy) is under way, or the operator has not acted on the latest change yet."""
    PAUSED = "Paused"
    """A rollout holds until someone resumes it."""


STATE_EXIT_CODES = {
    RolloutState.HEALTHY: ExitCode.OK,
    RolloutState.DEGRADED: ExitCode.FAILED,
    RolloutState.PROGRESSING: ExitCode.NOT_FINISHED,
    RolloutState.PAUSED: ExitCode.NOT_FINISHED,
}


def settled(md: ModelDeployment) -> bool:
    """The status describes the latest spec (observedGeneration) and no request waits for the operator."""
    generation = md.metadata.get("generation")
    return (
        md.status.phase is not None
        and (generation is None or md.status.observed_generation == generation)
        and pending_action(md) is None
    )


def rollout_state(md: ModelDeployment) -> RolloutState:
    ready = next((c for c in md.status.conditions if c.type == READY), None)
    if (
        ready is not None
        and ready.reason == INVALID_SPEC
        and md.status.observed_generation == md.metadata.get("generation")
    ):
        return RolloutState.DEGRADED
    if not settled(md):
        return RolloutState.PROGRESSING
    stalled = next((c for c in md.status.conditions if c.type == STALLED), None)
    if stalled is not None and stalled.status == "True":  # e.g. a first deploy past its progress deadline
        return RolloutState.DEGRADED
    match md.status.phase:
        case Phase.STABLE | Phase.PROMOTED:  # Promoted: the new revision serves, the previous one kept for undo
            return RolloutState.HEALTHY
        case Phase.ROLLED_BACK:
            return RolloutState.DEGRADED
        case Phase.PAUSED:
            return RolloutState.PAUSED
        case _:
            return RolloutState.PROGRESSING


def _refuse(message: str) -> CliError:
    return CliError(ExitCode.WRONG_STATE, message)


def _where(md: ModelDeployment) -> str:
    return f"{md.metadata.get('name')} -n {md.metadata.get('namespace')}"


def clear_request_hint(md: ModelDeployment) -> str:
    """How to drop an unhandled request by hand."""
    return (
        f"`kubectl sluice abort {_where(md)}` replaces it, or drop it with "
        f"`kubectl annotate modeldeployment {_where(md)} {ACTION_ANNOTATION}- {ACTION_ID_ANNOTATION}-`"
    )


def resume_hint(md: ModelDeployment) -> str:
    """The command that lifts what pauses the rollout: the annotation is the plugin's, spec.paused the manifest's."""
    if md.spec.paused:
        return (
            "set spec.paused to false where the manifest is kept (for a try-out: "
            f'`kubectl patch modeldeployment {_where(md)} --type merge -p \'{{"spec":{{"paused":false}}}}\'`)'
        )
    return f"`kubectl sluice resume {_where(md)}`"


def check_can_request(md: ModelDeployment, action: Action) -> None:
    """Any request: the operator has reconciled the object and handled the previous request. An abort replaces
    an unhandled request (an emergency must not wait for a stale promote)."""
    name = md.metadata.get("name")
    if md.status.phase is None:
        raise _refuse(f"{name} has no status yet: the operator has not reconciled it (is the operator running?)")
    if (pending := pending_action(md)) is not None and action is not Action.ABORT:
        raise _refuse(
            f"the previous request {pending[0]} (id {pending[1]}) is not handled yet (is the operator running?); "
            f"nothing was written. {clear_request_hint(md)}"
        )


def check_action(md: ModelDeployment, action: Action) -> None:
    """Raise CliError(WRONG_STATE) when the operator would ignore `action` in the current state."""
    check_can_request(md, action)
    status = md.status
    phase, canary = status.phase, status.canary_version
    if action in (Action.PROMOTE, Action.PROMOTE_FULL):
        if phase is Phase.PAUSED or (phase is Phase.PROGRESSING and paused_by(md) is not None):
            by = f" by {paused_by(md)}" if paused_by(md) else ""
            raise _refuse(f"the rollout of {canary} is paused{by}; to promote: {resume_hint(md)}")
        if phase is Phase.PROMOTING:
            raise _refuse(f"{canary} is already being promoted")
        if phase is not Phase.PROGRESSING:
            raise _refuse(f"no rollout in progress (phase {phase}); nothing to promote")
        if action is Action.PROMOTE and status.current_step is None:
            raise _refuse(
                f"canary {canary} is not ready yet, so there is no step to skip; "
                "promote --full promotes without the remaining steps"
            )
    elif action is Action.ABORT:
        if phase not in ROLLOUT_PHASES:
            raise _refuse(f"no rollout to abort (phase {phase})")
    elif action is Action.RETRY:
        last = status.history[-1] if status.history else None
        retryable = (Outcome.ROLLED_BACK, Outcome.ABORTED, Outcome.ROLLED_BACK_AFTER_PROMOTION, Outcome.KEPT)
        if phase is not Phase.ROLLED_BACK or last is None or last.outcome not in retryable:
            raise _refuse(f"nothing to retry: the last rollout was not rolled back or aborted (phase {phase})")
        if md.spec.model.version != canary:
            raise _refuse(f"spec.model.version is {md.spec.model.version}, not the rolled-back {canary}")


def check_pause(md: ModelDeployment) -> bool:
    """Whether `pause` has anything to write (False: already paused, which is not an error)."""
    if paused_by(md) is not None:
        return False
    if md.status.phase is Phase.PROMOTING:
        raise _refuse(f"{md.status.canary_version} is being promoted; a promotion under way is not paused")
    return True


def check_resume(md: ModelDeployment) -> bool:
    """Whether `resume` has anything to write (False: not paused, which is not an error). Refuses when only the
    manifest's spec.paused holds it: that belongs to the manifest's owner, and the refusal says how to lift it."""
    annotated = annotations_of(md).get(PAUSED_ANNOTATION) == "true"
    if md.spec.paused and not annotated:
        raise _refuse(f"paused by spec.paused, which resume leaves to the manifest's owner: {resume_hint(md)}")
    return annotated


def known_models(md: ModelDeployment) -> dict[str, ModelStatus]:
    """Every version whose model the status records, newest record winning: rolled-out models of history
    entries, the stable models they ran beside, and the current stable model."""
    models: dict[str, ModelStatus] = {}
    for entry in md.status.history:
        for model in (entry.stable_model, entry.model):
            if model is not None:
                models[model.version] = model
    if md.status.stable_model is not None:
        models[md.status.stable_model.version] = md.status.stable_model
    return models


def undo_target(md: ModelDeployment, to_version: str | None) -> ModelStatus:
    """The model `undo` sets spec.model to.

    By default: during a rollout or after a rollback (spec names another version than the stable one), the stable
    model, which ends the rollout; otherwise the stable version's predecessor (the model the last promotion of
    the stable version replaced). `--to-version V`: any version whose model the status records."""
    status, current = md.status, md.spec.model.version
    if status.phase is None:
        raise _refuse(f"{md.metadata.get('name')} has no status yet: the operator has not reconciled it")
    if to_version is None:
        if status.stable_model is not None and current != status.stable_version:
            return status.stable_model
        promoted = [
            entry
            for entry in status.history
            if entry.outcome is Outcome.PROMOTED and entry.version == status.stable_version and entry.stable_model
        ]
        if not promoted or promoted[-1].stable_model is None:
            raise _refuse(
                f"no previous stable version recorded in the history of {md.metadata.get('name')} "
                f"(stable {status.stable_version}); use --to-version"
            )
        return promoted[-1].stable_model
    if to_version == current:
        raise _refuse(f"spec.model.version is already {to_version}")
    models = known_models(md)
    if to_version not in models:
        listed = ", ".join(sorted(v for v in models if v != current)) or "none"
        raise _refuse(f"version {to_version} is not in the history (versions with a recorded model: {listed})")
    return models[to_version]
