"""Experimenting (spec.experiment): wait until the candidate is ready and the stable track assigns the arms, then
check every interval and, once the experiment is over, promote, keep the stable version, or roll back
(`sluice.core.experiment` holds the rule)."""

from __future__ import annotations

from sluice.api.v1alpha1 import Comparison, ExperimentDecision, ExperimentSpec, ExperimentStatus, Outcome, Phase
from sluice.core.conditions import ConditionStatus
from sluice.core.experiment import experiment_id, experiment_window, judge_experiment, over, verdict
from sluice.core.plan import EventType
from sluice.core.rollout.state import Decision


def handle(decision: Decision) -> None:
    status, experiment = decision.status, decision.spec.experiment
    if experiment is None:
        decision.roll_back(Outcome.ABORTED, "ExperimentRemoved", "spec.experiment was removed during the experiment")
        return
    if decision.roll_back_if_stuck():
        return
    identifier = experiment_id(status) or ""
    current = status.experiment
    if current is None or current.id != identifier:
        status.experiment = ExperimentStatus(
            id=identifier, split=experiment.split, decision=ExperimentDecision.STARTING
        )
        status.last_check_time = None
    elif current.started_at is None:
        stable = decision.observations.stable
        if decision.canary_available() and stable.available and stable.experiment == identifier:
            current.started_at = decision.now
            current.decision = ExperimentDecision.RUNNING
            decision.event(EventType.NORMAL, "ExperimentStarted", _started(status.canary_version, experiment))
    else:
        _check(decision, experiment, current)


def _started(version: str | None, experiment: ExperimentSpec) -> str:
    ends = [f"after {experiment.duration}"] if experiment.duration else []
    ends += [f"at {experiment.min_samples} requests per arm"] if experiment.min_samples else []
    return f"experiment started: {version} (B) serves {experiment.split}% of entity keys; it ends {' or '.join(ends)}"


def _check(decision: Decision, experiment: ExperimentSpec, current: ExperimentStatus) -> None:
    status, reading = decision.status, decision.observations.experiment
    if reading is None or current.started_at is None:
        return
    if experiment_window(decision.spec, status, decision.now) is None:
        return
    status.last_check_time = decision.now
    if reading.error is not None:
        decision.event(EventType.WARNING, "ExperimentCheckErrored", "the experiment's metrics could not be read")
        return
    samples, results = judge_experiment(experiment, reading)
    current.samples_a, current.samples_b = samples
    current.metrics = results
    if over(experiment, current.started_at, samples, decision.now):
        _end(decision, current, verdict(results))


def _end(decision: Decision, current: ExperimentStatus, outcome: ExperimentDecision) -> None:
    current.decision = outcome
    better = [r.name for r in current.metrics if r.comparison is Comparison.BETTER]
    worse = [r.name for r in current.metrics if r.comparison is Comparison.WORSE]
    message = (
        f"experiment over with {current.samples_a} requests on A and {current.samples_b} on B: B better on "
        f"{', '.join(better) or 'none'}, worse on {', '.join(worse) or 'none'}"
    )
    if outcome is ExperimentDecision.PROMOTE:
        decision.start_promoting(message)
    elif outcome is ExperimentDecision.ROLL_BACK:
        decision.roll_back(Outcome.ROLLED_BACK, "ExperimentLost", message)
    else:
        decision.end_rollout(Outcome.KEPT, "ExperimentKept", message)
        decision.enter(Phase.ROLLED_BACK)
        decision.clear_rollout_position()
        decision.set_progressing(ConditionStatus.FALSE, "ExperimentKept", message)
        decision.event(EventType.NORMAL, "ExperimentKept", f"{decision.status.stable_version} kept: {message}")
