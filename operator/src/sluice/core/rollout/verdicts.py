"""One verdict dispatch for every kind of analysis check (a live step's, the shadow phase's): count it, say it, and
roll back when a limit of spec.analysis is reached; what a pass leads to is the caller's."""

from __future__ import annotations

from collections.abc import Callable

from sluice.api.v1alpha1 import CheckResult, InconclusivePolicy, Outcome, Verdict
from sluice.core.analysis import summary
from sluice.core.plan import EventType
from sluice.core.rollout.schedule import judging, step_expired
from sluice.core.rollout.state import Decision


def record_check(
    decision: Decision,
    check: CheckResult,
    *,
    on_pass: Callable[[], None],
    failed_reason: str,
    on_failed_limit: Callable[[str], None] | None = None,
) -> None:
    """Record `check` as the last one and act on its verdict; `on_pass` runs after a passed check is counted. At
    maxFailedChecks, `on_failed_limit(message)` runs instead of the canary's rollback when given (and then an
    inconclusive or errored check never rolls back: only a breach of the bounds does)."""
    decision.status.last_check = check
    decision.status.last_check_time = decision.now
    if on_failed_limit is not None and check.verdict is not Verdict.FAILED:
        _counted_only(decision, check)
        return
    match check.verdict:
        case Verdict.PASSED:
            _passed(decision, check)
            on_pass()
        case Verdict.FAILED:
            _failed(decision, check, failed_reason, on_failed_limit)
        case Verdict.INCONCLUSIVE if judging(decision.spec, decision.status):
            _undecided(decision, check)
        case Verdict.INCONCLUSIVE:
            _inconclusive(decision, check)
        case Verdict.ERRORED:
            _errored(decision, check)


def _passed(decision: Decision, check: CheckResult) -> None:
    status = decision.status
    status.passed_checks += 1
    status.inconclusive_checks = 0
    status.consecutive_errors = 0
    decision.check_event(EventType.NORMAL, "CheckPassed", check)


def _counted_only(decision: Decision, check: CheckResult) -> None:
    """A check that is not a breach, counted and said, never rolling anything back."""
    status = decision.status
    if check.verdict is Verdict.PASSED:
        _passed(decision, check)
    elif check.verdict is Verdict.INCONCLUSIVE:
        status.inconclusive_checks += 1
        decision.check_event(EventType.WARNING, "CheckInconclusive", check)
    else:
        status.consecutive_errors += 1
        decision.check_event(EventType.WARNING, "CheckErrored", check)


def _failed(decision: Decision, check: CheckResult, reason: str, on_limit: Callable[[str], None] | None = None) -> None:
    status, limit = decision.status, decision.spec.analysis.max_failed_checks
    status.failed_checks += 1
    status.inconclusive_checks = 0
    status.consecutive_errors = 0
    decision.check_event(EventType.WARNING, "CheckFailed", check)
    if status.failed_checks >= limit:
        count = f" (failed check {status.failed_checks} of maxFailedChecks {limit})" if limit > 1 else ""
        message = f"{summary(check)} {decision.where()}{count}"
        if on_limit is not None:
            on_limit(message)
        else:
            decision.roll_back(Outcome.ROLLED_BACK, reason, message)


def _inconclusive(decision: Decision, check: CheckResult) -> None:
    status, analysis = decision.status, decision.spec.analysis
    status.inconclusive_checks += 1
    status.consecutive_errors = 0
    decision.check_event(EventType.WARNING, "CheckInconclusive", check)
    if status.inconclusive_checks < analysis.max_inconclusive_checks:
        return
    if analysis.inconclusive_policy is InconclusivePolicy.ROLLBACK:
        decision.roll_back(
            Outcome.ROLLED_BACK,
            "AnalysisInconclusive",
            f"{status.inconclusive_checks} consecutive inconclusive checks {decision.where()}: {summary(check)}",
        )


def _undecided(decision: Decision, check: CheckResult) -> None:
    """compareToStable: too little evidence extends the step (said in an Event once the canary serves) until
    maxStepDuration; then onInconclusive applies (Hold: the step goes on, its window sliding)."""
    status, analysis = decision.status, decision.spec.analysis
    status.consecutive_errors = 0
    if not step_expired(decision.spec, status, decision.now):
        status.inconclusive_checks = 0
        if status.step_traffic_at is not None:
            decision.check_event(EventType.NORMAL, "StepExtended", check)
        return
    status.inconclusive_checks += 1
    decision.check_event(EventType.WARNING, "CheckInconclusive", check)
    if analysis.inconclusive_policy is InconclusivePolicy.ROLLBACK:
        decision.roll_back(
            Outcome.ROLLED_BACK,
            "AnalysisInconclusive",
            f"maxStepDuration {analysis.max_step_duration} without enough evidence {decision.where()}: "
            f"{summary(check)}",
        )


def _errored(decision: Decision, check: CheckResult) -> None:
    status, limit = decision.status, decision.spec.analysis.max_consecutive_errors
    status.consecutive_errors += 1
    decision.check_event(EventType.WARNING, "CheckErrored", check)
    if status.consecutive_errors >= limit:
        decision.roll_back(
            Outcome.ROLLED_BACK,
            "AnalysisErrored",
            f"{status.consecutive_errors} consecutive checks without metrics {decision.where()}: {summary(check)}",
        )
