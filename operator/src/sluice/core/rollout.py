"""The rollout state machine: `decide` turns (spec, status, observations, now) into a `Plan`.

Pure: the clock is the `now` parameter and all memory (phase, step, counters, check times) lives in the status,
so a restarted operator continues where the last one stopped. `check_window` tells the adapter when to read
Prometheus. docs/rollouts.md describes the states, limits and timing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import (
    HISTORY_LIMIT,
    Action,
    CheckResult,
    HistoryEntry,
    InconclusivePolicy,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelSpec,
    ModelStatus,
    Outcome,
    Phase,
    Verdict,
)
from sluice.core.analysis import evaluate, summary
from sluice.core.conditions import PROGRESSING, READY, ConditionStatus, kstatus_conditions, set_condition
from sluice.core.gates import judge_validation, shadow_check
from sluice.core.plan import EventRecord, EventType, Observations, Plan, WorkloadPlan, WorkloadState

ROLLOUT_PHASES = frozenset({Phase.VALIDATING, Phase.SHADOWING, Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING})
"""Phases in which a canary version is being rolled out."""

MAX_REPLICA_RATIO = 9
"""Replica-ratio routing runs at most this many canary replicas per stable replica (a 90% share)."""

_MAX_TRANSITIONS_PER_DECISION = 8
"""Bound on chained transitions in one decision (the longest chain, e.g. supersede, start, canary ready, is 4)."""


def check_window(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> timedelta | None:
    """The window to read the canary's metrics over when an analysis check is due at `now`, else None.

    A check is due one interval after the later of the step's start and the last check, while a step is running
    (phase Progressing, canary ready). The window is the interval. Call it with the same `now` as `decide`.
    """
    due = next_check_at(spec, status)
    if due is None or now < due:
        return None
    return parse_duration(spec.rollout.interval)


def next_check_at(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """When the current step's (or the shadow phase's) next check is due; None when no step or shadow runs."""
    if status.step_started_at is None:
        return None
    stepping = status.phase is Phase.PROGRESSING and status.current_step is not None
    if not stepping and status.phase is not Phase.SHADOWING:
        return None
    last = status.step_started_at
    if status.last_check_time is not None:
        last = max(last, status.last_check_time)
    return last + parse_duration(spec.rollout.interval)


def validation_due(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, canary: WorkloadState, now: datetime
) -> bool:
    """Whether the adapter should run the validation gate against the canary at `now` (and pass the reading in
    `Observations.validation`): phase Validating, the canary ready, and no result for this rollout yet, or an
    errored run one rollout.interval ago. Call it with the same `now` as `decide`."""
    if spec.validation is None or status.phase is not Phase.VALIDATING or not _canary_ready(spec, status, canary):
        return False
    retry_at = _validation_retry_at(spec, status)
    return retry_at is not None and now >= retry_at


def _validation_retry_at(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """When the gate may run (again): at once without a result of this rollout, one interval after an errored
    run, never after a scored one (the gate has decided)."""
    result = status.validation
    started = status.rollout_started_at
    if result is None or result.version != status.canary_version or (started is not None and result.time < started):
        return started
    if result.score is not None:
        return None
    return result.time + parse_duration(spec.rollout.interval)


def mirror_percent(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> int:
    """Requests copied to the canary: shadow.percent once the shadow phase has started (its canary ready)."""
    shadow = spec.rollout.shadow
    if shadow is None or status.phase is not Phase.SHADOWING or status.step_started_at is None:
        return 0
    return shadow.percent


def canary_replicas_for_weight(weight: int, stable_replicas: int) -> int:
    """Canary replicas giving the canary about `weight` percent of requests when one Service spreads requests
    evenly over stable and canary pods (routing without a gateway).

    canary = round(weight * stable / (100 - weight)), halves rounded up, then at least 1 and at most
    `MAX_REPLICA_RATIO` * stable (weights above 90, 100 included, get a 90% share: the stable pods stay behind
    the Service). 0 when the weight is 0, or when stable runs no replicas (nothing is served, so no canary runs).
    """
    if weight <= 0 or stable_replicas <= 0:
        return 0
    ceiling = MAX_REPLICA_RATIO * stable_replicas
    if weight >= 100:
        return ceiling
    rounded_half_up = (2 * weight * stable_replicas + (100 - weight)) // (2 * (100 - weight))
    return min(max(1, rounded_half_up), ceiling)


def decide(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, observations: Observations, now: datetime) -> Plan:
    """The next status, the workloads and traffic split to run, the events to emit, and when to look again.

    Transitions chain within one call until the status settles (a first deploy whose Deployment is already
    available becomes Stable at once), so decide is idempotent: deciding again on the returned status with the
    same observations and `now` gives the same plan and no events.
    """
    rollout = _Rollout(spec, observations, now, status.model_copy(deep=True))
    for _ in range(_MAX_TRANSITIONS_PER_DECISION):
        before = rollout.status.model_copy(deep=True)
        rollout.step()
        if rollout.status == before:
            break
    rollout.refresh_observed_state()
    settled = rollout.status
    return Plan(
        status=settled,
        stable=WorkloadPlan(model=_stable_model(spec, settled), replicas=spec.replicas),
        canary=_canary_plan(spec, settled, observations.canary),
        canary_weight=settled.canary_weight,
        mirror_percent=mirror_percent(spec, settled),
        events=tuple(rollout.events),
        requeue_after=_requeue_after(spec, settled, now),
    )


def model_status(model: ModelSpec) -> ModelStatus:
    return ModelStatus(version=model.version, uri=model.uri, format=model.format, digest=model.digest)


def _stable_model(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> ModelStatus:
    """While promoting, the stable Deployment rolls to the canary's model (spec.model)."""
    if status.phase is Phase.PROMOTING or status.stable_model is None:
        return model_status(spec.model)
    return status.stable_model


def _canary_plan(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, canary: WorkloadState
) -> WorkloadPlan | None:
    if status.canary_version is None and not status.history and not canary.exists:
        return None
    reference = status.stable_model if spec.rollout.shadow is not None else None
    return WorkloadPlan(model=model_status(spec.model), replicas=_canary_replicas(spec, status), reference=reference)


def _canary_replicas(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> int:
    """Gateway routing: the canary runs spec.replicas. Replica ratio: replicas approximate the weight; while the
    canary starts they are the first step's, which take their share as soon as they are ready (so a rollout paused
    before its canary was ready runs none)."""
    if status.phase not in ROLLOUT_PHASES:
        return 0
    if spec.traffic is not None and spec.traffic.gateway is not None:
        return spec.replicas
    starting = status.current_step is None and status.phase is Phase.PROGRESSING
    weight = spec.rollout.steps[0] if starting else status.canary_weight
    return canary_replicas_for_weight(weight, spec.replicas)


def _requeue_after(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> timedelta | None:
    """Until the next check, or until the canary's progress deadline while it starts (or the validation gate's
    retry after an errored run); zero when already due."""
    if status.phase is Phase.VALIDATING:
        retry_at = _validation_retry_at(spec, status)
        due = retry_at if retry_at is not None and status.validation is not None else _canary_deadline(spec, status)
    elif status.phase in (Phase.PROGRESSING, Phase.SHADOWING):
        due = next_check_at(spec, status) if status.step_started_at is not None else _canary_deadline(spec, status)
    else:
        return None
    if due is None:
        return None
    return max(due - now, timedelta(0))


def _canary_ready(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, canary: WorkloadState) -> bool:
    """The canary Deployment runs this version at the planned replicas, all available (a Deployment left at
    0 replicas by an earlier rollout of the same version does not count)."""
    return (
        canary.available
        and canary.version == status.canary_version
        and canary.replicas == _canary_replicas(spec, status)
    )


def _canary_deadline(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    if status.rollout_started_at is None:
        return None
    return status.rollout_started_at + parse_duration(spec.rollout.progress_deadline)


@dataclass
class _Rollout:
    """One decision in progress: a private working copy of the status, changed by the transitions below."""

    spec: ModelDeploymentSpec
    observations: Observations
    now: datetime
    status: ModelDeploymentStatus
    events: list[EventRecord] = field(default_factory=list)

    def step(self) -> None:
        """One round: follow spec.model.version, handle a new manual action, then act on the phase."""
        self.follow_spec_version()
        self.handle_action()
        match self.status.phase:
            case Phase.INITIALIZING:
                self.initializing()
            case Phase.VALIDATING:
                self.validating()
            case Phase.SHADOWING:
                self.shadowing()
            case Phase.PROGRESSING:
                self.progressing()
            case Phase.PAUSED:
                self.paused()
            case Phase.PROMOTING:
                self.promoting()
            case _:
                pass  # Stable and RolledBack wait for a new version (follow_spec_version) or an action.

    # --- spec.model.version -------------------------------------------------------------------------------------

    def follow_spec_version(self) -> None:
        status, version = self.status, self.spec.model.version
        if status.stable_model is None or status.phase in (None, Phase.INITIALIZING):
            # First deploy: nothing serves yet, so the stable track simply follows spec.model.
            status.phase = Phase.INITIALIZING
            status.stable_model = model_status(self.spec.model)
            status.stable_version = version
        elif status.phase in ROLLOUT_PHASES and version != status.canary_version:
            if version == status.stable_version:
                self.revert_to_stable()
            else:
                self.supersede()
        elif status.phase is Phase.STABLE and version != status.stable_version:
            self.start_rollout(f"rolling out {version}")
        elif status.phase is Phase.ROLLED_BACK and version != status.canary_version:
            # The rolled-back version stays rolled back until retried; another version starts afresh.
            if version == status.stable_version:
                self.become_stable()
            else:
                self.start_rollout(f"rolling out {version}")

    def revert_to_stable(self) -> None:
        """spec.model.version set back to the stable version: the rollout ends as Aborted, the stable stays."""
        version = self.status.canary_version
        message = f"rollout of {version} ended: spec.model.version set back to {self.status.stable_version}"
        self.end_rollout(Outcome.ABORTED, "RevertedToStable", message)
        self.become_stable()
        self.set_progressing(ConditionStatus.FALSE, "RevertedToStable", message)
        self.event(EventType.NORMAL, "RevertedToStable", message)

    def supersede(self) -> None:
        """A new version mid-rollout replaces the canary; its rollout starts from the current stable."""
        old, new = self.status.canary_version, self.spec.model.version
        message = f"rollout of {old} superseded by {new} {self.where()}"
        self.end_rollout(Outcome.SUPERSEDED, "Superseded", message)
        self.event(EventType.NORMAL, "Superseded", message)
        self.start_rollout(f"rolling out {new}")

    # --- phases -------------------------------------------------------------------------------------------------

    def initializing(self) -> None:
        stable = self.observations.stable
        if stable.available and stable.version == self.status.stable_version:
            self.status.phase = Phase.STABLE
            message = f"{self.status.stable_version} deployed at {self.spec.replicas} replicas"
            self.set_progressing(ConditionStatus.FALSE, "Deployed", message)
            self.event(EventType.NORMAL, "Deployed", message)

    def progressing(self) -> None:
        status = self.status
        if self.observations.paused:
            status.phase = Phase.PAUSED
            self.event(EventType.NORMAL, "Paused", f"rollout of {status.canary_version} paused {self.where()}")
        elif (stuck := self.canary_stuck()) is not None:
            self.roll_back(Outcome.ROLLED_BACK, "ProgressDeadlineExceeded", stuck)
        elif status.current_step is None:
            if self.canary_available():
                self.enter_step(0)
                self.event(EventType.NORMAL, "CanaryReady", f"canary {status.canary_version} ready; {self.where()}")
        else:
            self.run_step(status.current_step)

    def paused(self) -> None:
        if not self.observations.paused:
            self.status.phase = self.resumed_phase()
            self.event(EventType.NORMAL, "Resumed", f"rollout of {self.status.canary_version} resumed {self.where()}")

    def validating(self) -> None:
        """The validation gate: wait for the canary, take the adapter's run, pass on or roll back."""
        status, reading = self.status, self.observations.validation
        if self.observations.paused:
            status.phase = Phase.PAUSED
            self.event(EventType.NORMAL, "Paused", f"rollout of {status.canary_version} paused {self.where()}")
        elif self.spec.validation is None:
            message = f"spec.validation removed; {status.canary_version} goes on"
            self.event(EventType.NORMAL, "ValidationSkipped", message)
            self.after_validation()
        elif (stuck := self.canary_stuck()) is not None:
            self.roll_back(Outcome.ROLLED_BACK, "ProgressDeadlineExceeded", stuck)
        elif reading is not None and self.canary_available():
            previous = status.validation
            if previous is not None and previous.time == self.now and previous.version == status.canary_version:
                return  # this reading was taken into account in an earlier round of this decision
            version = status.canary_version or self.spec.model.version
            result = judge_validation(self.spec.validation, reading, version=version, time=self.now)
            status.validation = result
            if result.passed:
                status.consecutive_errors = 0
                self.event(EventType.NORMAL, "ValidationPassed", f"canary {version}: {result.message}")
                self.after_validation()
            elif result.score is not None:
                self.roll_back(Outcome.ROLLED_BACK, "ValidationFailed", f"{result.message} {self.where()}")
            else:
                status.consecutive_errors += 1
                limit = self.spec.analysis.max_consecutive_errors
                self.event(EventType.WARNING, "ValidationErrored", f"canary {version}: {result.message}")
                if status.consecutive_errors >= limit:
                    self.roll_back(
                        Outcome.ROLLED_BACK,
                        "ValidationErrored",
                        f"{status.consecutive_errors} validation runs without a score {self.where()}: {result.message}",
                    )

    def after_validation(self) -> None:
        self.status.consecutive_errors = 0
        self.status.phase = Phase.SHADOWING if self.spec.rollout.shadow is not None else Phase.PROGRESSING

    def shadowing(self) -> None:
        """The shadow phase: once the canary is ready, mirror requests to it and check every interval."""
        status, shadow = self.status, self.spec.rollout.shadow
        if self.observations.paused:
            status.phase = Phase.PAUSED
            self.event(EventType.NORMAL, "Paused", f"rollout of {status.canary_version} paused {self.where()}")
        elif shadow is None:
            self.end_shadow("spec.rollout.shadow removed")
        elif (stuck := self.canary_stuck()) is not None:
            self.roll_back(Outcome.ROLLED_BACK, "ProgressDeadlineExceeded", stuck)
        elif status.step_started_at is None:
            if self.canary_available():
                status.step_started_at = self.now
                self.event(
                    EventType.NORMAL,
                    "ShadowStarted",
                    f"canary {status.canary_version} ready; mirroring {shadow.percent}% of requests to it, "
                    f"answers discarded; {shadow.checks} passed checks needed before live traffic",
                )
        else:
            reading, comparisons = self.observations.analysis, self.observations.shadow
            if reading is None or comparisons is None or check_window(self.spec, status, self.now) is None:
                return
            check = shadow_check(self.spec.analysis, shadow, reading, comparisons, time=self.now)
            status.last_check = check
            status.last_check_time = self.now
            match check.verdict:
                case Verdict.PASSED:
                    status.passed_checks += 1
                    status.inconclusive_checks = 0
                    status.consecutive_errors = 0
                    self.check_event(EventType.NORMAL, "CheckPassed", check)
                    if status.passed_checks >= shadow.checks:
                        self.end_shadow(f"{status.passed_checks} shadow checks passed")
                case Verdict.FAILED:
                    self.check_failed(check, reason="ShadowAnalysisFailed")
                case Verdict.INCONCLUSIVE:
                    self.check_inconclusive(check)
                case Verdict.ERRORED:
                    self.check_errored(check)

    def end_shadow(self, why: str) -> None:
        """On to the first live step (entered at once: the canary is ready)."""
        self.status.phase = Phase.PROGRESSING
        self.status.step_started_at = None
        self.event(EventType.NORMAL, "ShadowPassed", f"canary {self.status.canary_version}: {why}; going live")

    def resumed_phase(self) -> Phase:
        """Where a resumed rollout continues: its step, or the gate it had not passed yet."""
        status, shadow = self.status, self.spec.rollout.shadow
        if status.current_step is not None:
            return Phase.PROGRESSING
        validated = status.validation is not None and status.validation.passed
        if self.spec.validation is not None and not validated:
            return Phase.VALIDATING
        if shadow is not None and status.passed_checks < shadow.checks:
            return Phase.SHADOWING
        return Phase.PROGRESSING

    def promoting(self) -> None:
        stable, version = self.observations.stable, self.status.canary_version
        if stable.version != version:
            return
        if stable.available:
            message = f"{version} promoted after {self.status.passed_checks} passed checks; it is now stable"
            self.end_rollout(Outcome.PROMOTED, "Promoted", message)
            self.status.stable_model = model_status(self.spec.model)
            self.status.stable_version = version
            self.become_stable()
            self.set_progressing(ConditionStatus.FALSE, "Promoted", message)
            self.event(EventType.NORMAL, "Promoted", message)
        elif stable.progress_deadline_exceeded:
            self.roll_back(
                Outcome.ROLLED_BACK,
                "PromotionFailed",
                f"stable Deployment did not become available with {version}; back to {self.stable_name()}",
            )

    # --- steps and checks ---------------------------------------------------------------------------------------

    def run_step(self, step: int) -> None:
        steps = self.spec.rollout.steps
        step = min(step, len(steps) - 1)  # steps edited mid-rollout apply at once, to the same step index
        self.status.current_step = step
        self.status.canary_weight = steps[step]
        reading = self.observations.analysis
        if reading is None or check_window(self.spec, self.status, self.now) is None:
            return
        check = evaluate(self.spec.analysis, reading, time=self.now, step=step, weight=steps[step])
        self.status.last_check = check
        self.status.last_check_time = self.now
        match check.verdict:
            case Verdict.PASSED:
                self.check_passed(check)
            case Verdict.FAILED:
                self.check_failed(check)
            case Verdict.INCONCLUSIVE:
                self.check_inconclusive(check)
            case Verdict.ERRORED:
                self.check_errored(check)

    def check_passed(self, check: CheckResult) -> None:
        status = self.status
        status.passed_checks += 1
        status.inconclusive_checks = 0
        status.consecutive_errors = 0
        self.check_event(EventType.NORMAL, "CheckPassed", check)
        self.advance()

    def check_failed(self, check: CheckResult, reason: str = "AnalysisFailed") -> None:
        status, limit = self.status, self.spec.analysis.max_failed_checks
        status.failed_checks += 1
        status.inconclusive_checks = 0
        status.consecutive_errors = 0
        self.check_event(EventType.WARNING, "CheckFailed", check)
        if status.failed_checks >= limit:
            count = f" (failed check {status.failed_checks} of maxFailedChecks {limit})" if limit > 1 else ""
            self.roll_back(Outcome.ROLLED_BACK, reason, f"{summary(check)} {self.where()}{count}")

    def check_inconclusive(self, check: CheckResult) -> None:
        status, analysis = self.status, self.spec.analysis
        status.inconclusive_checks += 1
        status.consecutive_errors = 0
        self.check_event(EventType.WARNING, "CheckInconclusive", check)
        if status.inconclusive_checks < analysis.max_inconclusive_checks:
            return
        if analysis.on_inconclusive is InconclusivePolicy.ROLLBACK:
            self.roll_back(
                Outcome.ROLLED_BACK,
                "AnalysisInconclusive",
                f"{status.inconclusive_checks} consecutive inconclusive checks {self.where()}: {summary(check)}",
            )

    def check_errored(self, check: CheckResult) -> None:
        status, limit = self.status, self.spec.analysis.max_consecutive_errors
        status.consecutive_errors += 1
        self.check_event(EventType.WARNING, "CheckErrored", check)
        if status.consecutive_errors >= limit:
            self.roll_back(
                Outcome.ROLLED_BACK,
                "AnalysisErrored",
                f"{status.consecutive_errors} consecutive checks without metrics {self.where()}: {summary(check)}",
            )

    def advance(self) -> None:
        """To the next step, or to promotion after the last one."""
        step, steps = self.status.current_step, self.spec.rollout.steps
        if step is not None and step + 1 < len(steps):
            self.enter_step(step + 1)
            self.event(EventType.NORMAL, "StepAdvanced", f"canary {self.status.canary_version} {self.where()}")
        else:
            self.start_promoting(f"step {len(steps)}/{len(steps)} done")

    def enter_step(self, step: int) -> None:
        self.status.current_step = step
        self.status.canary_weight = self.spec.rollout.steps[step]
        self.status.step_started_at = self.now

    # --- manual actions -----------------------------------------------------------------------------------------

    def handle_action(self) -> None:
        request = self.observations.action
        if request is None or request.request_id == self.status.last_handled_action_id:
            return
        self.status.last_handled_action_id = request.request_id
        handlers = {
            Action.PROMOTE: self.manual_promote,
            Action.PROMOTE_FULL: self.manual_promote_full,
            Action.ABORT: self.manual_abort,
            Action.RETRY: self.manual_retry,
        }
        refusal = handlers[request.action](request.request_id)
        if refusal is not None:
            self.event(
                EventType.WARNING, "ActionIgnored", f"{request.action} ({request.request_id}) ignored: {refusal}"
            )

    def manual_promote(self, request_id: str) -> str | None:
        refusal = self.promotion_refusal()
        if refusal is not None:
            return refusal
        if self.status.phase is Phase.SHADOWING:
            self.event(EventType.NORMAL, "ManualPromotion", f"{request_id}: skipping the rest of the shadow phase")
            self.end_shadow(f"shadow skipped ({request_id})")
            return None
        if self.status.current_step is None:
            return f"canary {self.status.canary_version} is not ready yet (promote-full promotes without steps)"
        self.event(EventType.NORMAL, "ManualPromotion", f"{request_id}: skipping the rest of {self.where()}")
        self.advance()
        return None

    def manual_promote_full(self, request_id: str) -> str | None:
        refusal = self.promotion_refusal()
        if refusal is not None:
            return refusal
        self.event(EventType.NORMAL, "ManualPromotion", f"{request_id}: promoting now, {self.where()}")
        self.start_promoting(f"promote-full requested ({request_id})")
        return None

    def promotion_refusal(self) -> str | None:
        phase = self.status.phase
        if phase is Phase.PAUSED:
            return "the rollout is paused; resume it first (spec.paused, annotation sluice.dev/paused)"
        if phase is Phase.PROMOTING:
            return f"{self.status.canary_version} is already being promoted"
        if phase is Phase.VALIDATING:
            return f"{self.status.canary_version} has not passed the validation gate (abort, or fix spec.validation)"
        if phase not in (Phase.PROGRESSING, Phase.SHADOWING):
            return f"no rollout in progress (phase {phase})"
        return None

    def manual_abort(self, request_id: str) -> str | None:
        if self.status.phase not in ROLLOUT_PHASES:
            return f"no rollout to abort (phase {self.status.phase})"
        self.roll_back(Outcome.ABORTED, "Aborted", f"aborted by request {request_id} {self.where()}")
        return None

    def manual_retry(self, request_id: str) -> str | None:
        status = self.status
        if status.phase is not Phase.ROLLED_BACK:
            return f"nothing was rolled back (phase {status.phase})"
        self.start_rollout(f"retrying {status.canary_version} ({request_id})")
        return None

    # --- transitions --------------------------------------------------------------------------------------------

    def start_rollout(self, message: str) -> None:
        status = self.status
        status.phase = Phase.PROGRESSING
        if self.spec.validation is not None:
            status.phase = Phase.VALIDATING
        elif self.spec.rollout.shadow is not None:
            status.phase = Phase.SHADOWING
        status.validation = None
        status.canary_version = self.spec.model.version
        status.canary_weight = 0
        status.current_step = None
        status.rollout_started_at = self.now
        status.step_started_at = None
        status.last_check_time = None
        status.last_check = None
        status.passed_checks = status.failed_checks = status.inconclusive_checks = status.consecutive_errors = 0
        steps = ", ".join(f"{weight}%" for weight in self.spec.rollout.steps)
        gates = [
            *(["validation gate"] if self.spec.validation is not None else []),
            *(["shadow phase"] if self.spec.rollout.shadow is not None else []),
        ]
        first = f"{' then '.join(gates)}, then " if gates else ""
        self.event(
            EventType.NORMAL,
            "RolloutStarted",
            f"{message}: {first}steps {steps} every {self.spec.rollout.interval}; {self.stable_name()} keeps serving",
        )

    def start_promoting(self, why: str) -> None:
        self.status.phase = Phase.PROMOTING
        self.event(
            EventType.NORMAL,
            "Promoting",
            f"{why}: rolling the stable Deployment to {self.status.canary_version} at {self.status.canary_weight}%",
        )

    def roll_back(self, outcome: Outcome, reason: str, message: str) -> None:
        """Canary to weight 0 and no replicas at once; the stable version keeps serving."""
        self.end_rollout(outcome, reason, message)
        self.status.phase = Phase.ROLLED_BACK
        self.clear_rollout_position()
        self.set_progressing(ConditionStatus.FALSE, reason, message)
        event_reason = "RolledBack" if outcome is Outcome.ROLLED_BACK else "RolloutAborted"
        self.event(EventType.WARNING, event_reason, f"{self.status.canary_version} rolled back: {message}")

    def end_rollout(self, outcome: Outcome, reason: str, message: str) -> None:
        """Record the rollout's outcome in the history, dropping the oldest entries beyond HISTORY_LIMIT.

        The entry keeps the rolled-out model while spec.model still names it (not when the spec has moved on to
        another version: Superseded, RevertedToStable) and the stable model it ran beside, so `kubectl sluice
        undo` can return to either."""
        status = self.status
        version = status.canary_version or self.spec.model.version
        entry = HistoryEntry(
            version=version,
            outcome=outcome,
            started_at=status.rollout_started_at or self.now,
            finished_at=self.now,
            reason=reason,
            message=message,
            model=model_status(self.spec.model) if self.spec.model.version == version else None,
            stable_model=status.stable_model,
        )
        status.history = [*status.history, entry][-HISTORY_LIMIT:]

    def become_stable(self) -> None:
        self.status.phase = Phase.STABLE
        self.status.canary_version = None
        self.clear_rollout_position()

    def clear_rollout_position(self) -> None:
        status = self.status
        status.canary_weight = 0
        status.current_step = None
        status.rollout_started_at = None
        status.step_started_at = None

    # --- observed state -----------------------------------------------------------------------------------------

    def refresh_observed_state(self) -> None:
        """observedGeneration, readyReplicas, the Ready condition, and Progressing while a rollout is live."""
        status = self.status
        status.observed_generation = self.observations.generation
        status.ready_replicas = self.observations.stable.ready_replicas
        ready, reason, message = self.stable_readiness()
        status.conditions = set_condition(
            status.conditions,
            READY,
            ready,
            reason=reason,
            message=message,
            now=self.now,
            observed_generation=self.observations.generation,
        )
        if status.phase in (*ROLLOUT_PHASES, Phase.INITIALIZING):
            self.set_progressing(*self.live_progress())
        status.conditions = kstatus_conditions(
            status.conditions,
            rolling_out=status.phase in (*ROLLOUT_PHASES, Phase.INITIALIZING),
            rolled_back=status.phase is Phase.ROLLED_BACK,
            now=self.now,
            observed_generation=self.observations.generation,
        )

    def stable_readiness(self) -> tuple[ConditionStatus, str, str]:
        stable = self.observations.stable
        counts = f"{stable.ready_replicas}/{stable.replicas} replicas ready"
        version = stable.version or self.status.stable_version
        if stable.exists and stable.available and stable.replicas == 0:
            return ConditionStatus.FALSE, "ScaledToZero", f"stable {version} runs no replicas"
        if stable.available:
            return ConditionStatus.TRUE, "StableAvailable", f"stable {version}: {counts}"
        if stable.ready_replicas > 0:
            return ConditionStatus.TRUE, "StableUpdating", f"stable {version} is updating: {counts}"
        if stable.progress_deadline_exceeded:
            return ConditionStatus.FALSE, "ProgressDeadlineExceeded", f"stable {version} is not progressing: {counts}"
        return ConditionStatus.FALSE, "StableUnavailable", f"stable {version}: {counts}"

    def live_progress(self) -> tuple[ConditionStatus, str, str]:
        status, analysis = self.status, self.spec.analysis
        version = status.canary_version
        match status.phase:
            case Phase.INITIALIZING:
                return ConditionStatus.TRUE, "Initializing", f"deploying {status.stable_version}"
            case Phase.PAUSED:
                return ConditionStatus.UNKNOWN, "Paused", f"rollout of {version} paused {self.where()}"
            case Phase.PROMOTING:
                return ConditionStatus.TRUE, "Promoting", f"rolling the stable Deployment to {version}"
            case Phase.VALIDATING:
                return ConditionStatus.TRUE, "Validating", f"canary {version} {self.where()}"
            case Phase.SHADOWING if status.step_started_at is not None:
                due = next_check_at(self.spec, status)
                shown = f"next check at {due.isoformat()}" if due is not None else "no check scheduled"
                return ConditionStatus.TRUE, "Shadowing", f"canary {version} {self.where()}; {shown}"
        if status.current_step is None:
            deadline = self.spec.rollout.progress_deadline
            return (
                ConditionStatus.TRUE,
                "WaitingForCanary",
                f"waiting for canary {version} (progressDeadline {deadline})",
            )
        holding = (
            analysis.on_inconclusive is InconclusivePolicy.HOLD
            and status.inconclusive_checks >= analysis.max_inconclusive_checks
        )
        due = next_check_at(self.spec, status)
        next_check = f"next check at {due.isoformat()}" if due is not None else "no check scheduled"
        if holding:
            message = (
                f"holding {self.where()} after {status.inconclusive_checks} inconclusive checks "
                f"(onInconclusive Hold); {next_check}"
            )
            return ConditionStatus.TRUE, "InconclusiveHold", message
        return ConditionStatus.TRUE, "Analysing", f"canary {version} {self.where()}; {next_check}"

    # --- helpers ------------------------------------------------------------------------------------------------

    def canary_available(self) -> bool:
        return _canary_ready(self.spec, self.status, self.observations.canary)

    def canary_stuck(self) -> str | None:
        """Why the canary Deployment counts as failed to progress, if it does."""
        canary, version = self.observations.canary, self.status.canary_version
        if canary.version == version and canary.progress_deadline_exceeded:
            return f"canary {version} Deployment exceeded its progress deadline {self.where()}"
        deadline = _canary_deadline(self.spec, self.status)
        starting = self.status.current_step is None and not (
            self.status.phase is Phase.SHADOWING and self.status.step_started_at is not None
        )
        if starting and deadline is not None and self.now >= deadline and not self.canary_available():
            return f"canary {version} not available within progressDeadline {self.spec.rollout.progress_deadline}"
        return None

    def stable_name(self) -> str:
        return f"stable {self.status.stable_version}"

    def where(self) -> str:
        """`at step 2/3 (25%)`, `in the shadow phase (weight 0)`, or `before the canary was ready`."""
        step = self.status.current_step
        if step is None and self.status.phase is Phase.VALIDATING:
            return "at the validation gate (weight 0)"
        if step is None and self.status.phase is Phase.SHADOWING and self.status.step_started_at is not None:
            return "in the shadow phase (weight 0)"
        if step is None:
            return "before the canary was ready"
        return f"at step {step + 1}/{len(self.spec.rollout.steps)} ({self.status.canary_weight}%)"

    def set_progressing(self, condition_status: ConditionStatus, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions,
            PROGRESSING,
            condition_status,
            reason=reason,
            message=message,
            now=self.now,
            observed_generation=self.observations.generation,
        )

    def check_event(self, event_type: EventType, reason: str, check: CheckResult) -> None:
        metrics = "; ".join(dict.fromkeys(metric.message for metric in check.metrics))  # an error once, not per metric
        self.event(event_type, reason, f"{check.verdict} {self.where()}: {metrics}")

    def event(self, event_type: EventType, reason: str, message: str) -> None:
        self.events.append(EventRecord(type=event_type, reason=reason, message=message))
