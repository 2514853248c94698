"""Validating: the validation gate. Wait for the canary, take the adapter's run, pass on or roll back."""

from __future__ import annotations

from sluice.api.v1alpha1 import Outcome, Phase, ValidationResult
from sluice.core.gates import judge_validation
from sluice.core.plan import EventType
from sluice.core.rollout.state import Decision


def handle(decision: Decision) -> None:
    status, reading, spec = decision.status, decision.observations.validation, decision.spec
    if spec.validation is None:
        decision.event(
            EventType.NORMAL, "ValidationSkipped", f"spec.validation removed; {status.canary_version} goes on"
        )
        _passed(decision)
    elif decision.roll_back_if_stuck():
        return
    elif reading is not None and decision.canary_available():
        previous = status.validation
        if previous is not None and previous.time == decision.now and previous.version == status.canary_version:
            return  # this reading was taken into account in an earlier round of this decision
        version = status.canary_version or spec.model.version
        result = judge_validation(spec.validation, reading, version=version, time=decision.now)
        status.validation = result
        _judged(decision, result, version)


def _judged(decision: Decision, result: ValidationResult, version: str) -> None:
    status = decision.status
    if result.passed:
        decision.event(EventType.NORMAL, "ValidationPassed", f"canary {version}: {result.message}")
        _passed(decision)
    elif result.score is not None:
        decision.roll_back(Outcome.ROLLED_BACK, "ValidationFailed", f"{result.message} {decision.where()}")
    else:
        status.consecutive_errors += 1
        decision.event(EventType.WARNING, "ValidationErrored", f"canary {version}: {result.message}")
        if status.consecutive_errors >= decision.spec.analysis.max_consecutive_errors:
            decision.roll_back(
                Outcome.ROLLED_BACK,
                "ValidationErrored",
                f"{status.consecutive_errors} validation runs without a score {decision.where()}: {result.message}",
            )


def _passed(decision: Decision) -> None:
    decision.status.consecutive_errors = 0
    decision.pass_gate(Phase.VALIDATING)
