"""One decision in progress: a private working copy of the status, and the transitions every phase shares.

Every write of `status.phase` goes through `Decision.enter`, so leaving a phase also leaves a pause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sluice.api.v1alpha1 import (
    HISTORY_LIMIT,
    CheckResult,
    HistoryEntry,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Outcome,
    Phase,
)
from sluice.core.conditions import PROGRESSING, ConditionStatus, set_condition
from sluice.core.plan import EventRecord, EventType, Observations
from sluice.core.rollout import texts
from sluice.core.rollout.order import next_phase
from sluice.core.rollout.revisions import serving_record, spec_revision, spec_revision_hash
from sluice.core.rollout.schedule import canary_deadline
from sluice.core.rollout.workloads import canary_ready, model_status, runs


@dataclass
class Decision:
    """The inputs of one `decide` call, the status it is changing, and the events it has emitted so far."""

    spec: ModelDeploymentSpec
    observations: Observations
    now: datetime
    status: ModelDeploymentStatus
    events: list[EventRecord] = field(default_factory=list)

    # --- the phase ----------------------------------------------------------------------------------------------

    def enter(self, phase: Phase) -> None:
        """The only write of `status.phase`: entering a phase ends any pause."""
        self.status.phase = phase
        self.status.paused_in = None

    def pause(self) -> None:
        """Freeze the current phase: phase Paused, the frozen phase kept in status.pausedIn."""
        frozen = self.status.phase
        self.enter(Phase.PAUSED)
        self.status.paused_in = frozen

    def start_rollout(self, why: str) -> None:
        status = self.status
        self.enter(next_phase(self.spec, None))
        status.validation = None
        status.canary_version = self.spec.model.version
        status.canary_revision = spec_revision(self.spec, status)
        status.canary_weight = 0
        status.current_step = None
        status.rollout_started_at = self.now
        status.step_started_at = status.step_traffic_at = None
        status.last_check_time = None
        status.last_check = None
        status.passed_checks = status.failed_checks = status.inconclusive_checks = status.consecutive_errors = 0
        self.event(EventType.NORMAL, "RolloutStarted", texts.rollout_started(self.spec, status, why))

    def pass_gate(self, gate: Phase) -> None:
        """On to the gate after `gate`: the live steps start from the first (entered once the canary is ready)."""
        self.status.step_started_at = self.status.step_traffic_at = None
        self.enter(next_phase(self.spec, gate))

    def start_promoting(self, why: str) -> None:
        self.enter(Phase.PROMOTING)
        self.event(
            EventType.NORMAL,
            "Promoting",
            f"{why}: rolling the stable Deployment to {self.status.canary_version} at {self.status.canary_weight}%",
        )

    def roll_back(self, outcome: Outcome, reason: str, message: str) -> None:
        """Canary to weight 0 and no replicas at once; the stable version keeps serving."""
        self.end_rollout(outcome, reason, message)
        self.enter(Phase.ROLLED_BACK)
        self.clear_rollout_position()
        self.set_progressing(ConditionStatus.FALSE, reason, message)
        event_reason = "RolledBack" if outcome is Outcome.ROLLED_BACK else "RolloutAborted"
        self.event(EventType.WARNING, event_reason, f"{self.status.canary_version} rolled back: {message}")

    def end_rollout(self, outcome: Outcome, reason: str, message: str) -> None:
        """Record the rollout's outcome in the history, dropping the oldest entries beyond HISTORY_LIMIT.

        The entry keeps the rolled-out revision's model and serving spec while the spec still names it (not when
        it has moved on to another revision: Superseded, RevertedToStable) and the stable revision it ran beside,
        so `kubectl sluice undo` can return to either."""
        status = self.status
        version = status.canary_version or self.spec.model.version
        revision = status.canary_revision
        named = revision is not None and revision.hash == spec_revision_hash(self.spec)
        entry = HistoryEntry(
            version=version,
            outcome=outcome,
            started_at=status.rollout_started_at or self.now,
            finished_at=self.now,
            reason=reason,
            message=message,
            model=model_status(self.spec.model) if named else None,
            stable_model=status.stable_model,
            revision=revision,
            stable_revision=status.stable_revision,
            serving=serving_record(self.spec.serving) if named else None,
            stable_serving=serving_record(status.stable_serving) if status.stable_revision is not None else None,
        )
        status.history = [*status.history, entry][-HISTORY_LIMIT:]

    def become_stable(self) -> None:
        self.enter(Phase.STABLE)
        self.status.canary_version = None
        self.status.canary_revision = None
        self.clear_rollout_position()

    def clear_rollout_position(self) -> None:
        status = self.status
        status.canary_weight = 0
        status.current_step = None
        status.rollout_started_at = None
        status.step_started_at = status.step_traffic_at = None

    def enter_step(self, step: int) -> None:
        self.status.current_step = step
        self.status.canary_weight = self.spec.rollout.steps[step]
        self.status.step_started_at = self.now
        self.status.step_traffic_at = None

    # --- the canary ---------------------------------------------------------------------------------------------

    def canary_available(self) -> bool:
        return canary_ready(self.spec, self.status, self.observations.canary)

    def canary_stuck(self) -> str | None:
        """Why the canary Deployment counts as failed to progress, if it does."""
        canary, version = self.observations.canary, self.status.canary_version
        if runs(canary, self.status.canary_revision) and canary.progress_deadline_exceeded:
            return f"canary {version} Deployment exceeded its progress deadline {self.where()}"
        deadline = canary_deadline(self.spec, self.status)
        starting = self.status.current_step is None and not (
            self.status.phase is Phase.SHADOWING and self.status.step_started_at is not None
        )
        if starting and deadline is not None and self.now >= deadline and not self.canary_available():
            return f"canary {version} not available within progressDeadline {self.spec.rollout.progress_deadline}"
        return None

    def roll_back_if_stuck(self) -> bool:
        """Roll back a canary that failed to progress; whether it did."""
        stuck = self.canary_stuck()
        if stuck is not None:
            self.roll_back(Outcome.ROLLED_BACK, "ProgressDeadlineExceeded", stuck)
        return stuck is not None

    # --- conditions and events ----------------------------------------------------------------------------------

    def where(self) -> str:
        return texts.where(self.spec, self.status)

    def set_progressing(self, condition_status: ConditionStatus, reason: str, message: str) -> None:
        self.set_condition(PROGRESSING, condition_status, reason, message)

    def set_condition(self, condition_type: str, condition_status: ConditionStatus, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions,
            condition_type,
            condition_status,
            reason=reason,
            message=message,
            now=self.now,
            observed_generation=self.observations.generation,
        )

    def check_event(self, event_type: EventType, reason: str, check: CheckResult) -> None:
        self.event(event_type, reason, texts.check_message(self.spec, self.status, check))

    def event(self, event_type: EventType, reason: str, message: str) -> None:
        self.events.append(EventRecord(type=event_type, reason=reason, message=message))
