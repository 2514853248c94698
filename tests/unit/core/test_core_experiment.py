"""spec.experiment through `decide`: the experiment replaces the steps, starts once the stable track assigns the
arms, and ends by its rule (promote, keep, roll back); the rule itself on shares."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sluice.api.v1alpha1 import Comparison, ExperimentDecision, ExperimentMetric, Goal, Outcome, Phase
from sluice.core.children import Owner, ServingDefaults
from sluice.core.experiment import compare, experiment_window
from sluice.core.plan import ExperimentReading, Plan
from sluice.core.rollout import decide
from sluice.core.validation import problems
from sluice.core.workloads import EXPERIMENT_ANNOTATION, workloads
from unit.core.support import Simulation, deployed, make_spec

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}
ERRORS = "sum(errors{arm='{{arm}}'})"


def experiment(**overrides: Any) -> dict[str, Any]:
    return {
        "minSamples": 400,
        "split": 50,
        "stickyBy": {"header": "X-User"},
        "metrics": [{"name": "errors", "query": ERRORS}],
        **overrides,
    }


def started(**overrides: Any) -> Simulation:
    simulation = deployed(make_spec(traffic=GATEWAY, experiment=experiment(**overrides)))
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.reconcile()
    simulation.reconcile()
    assert simulation.status.experiment is not None
    assert simulation.status.experiment.started_at is not None
    return simulation


def check(simulation: Simulation, reading: ExperimentReading) -> Plan:
    """Wait one interval, then decide with `reading` when the experiment's check is due."""
    simulation.wait("1m")
    due = experiment_window(simulation.spec, simulation.status, simulation.now) is not None
    observations = replace(simulation.observe(), experiment=reading if due else None)
    return simulation.follow(decide(simulation.spec, simulation.status, observations, simulation.now))


def errors(a: tuple[float, float], b: tuple[float, float]) -> ExperimentReading:
    """(requests, errors) of A, then of B."""
    return ExperimentReading(samples_a=a[0], samples_b=b[0], hits={"errors": (a[1], b[1])})


def test_an_experiment_replaces_the_steps_and_starts_once_the_stable_track_assigns_the_arms() -> None:
    simulation = deployed(make_spec(traffic=GATEWAY, experiment=experiment()))
    simulation.set_version("2.0.0")
    plan = simulation.reconcile()
    assert simulation.status.phase is Phase.EXPERIMENTING
    assert plan.canary_weight == 0, "the route sends everything to stable, whose server assigns the arms"
    assert plan.stable.assignment is not None
    assert plan.stable.assignment.header == "x-user"
    assert plan.stable.assignment.candidate_version == "2.0.0"
    assert simulation.status.experiment is not None
    assert simulation.status.experiment.decision is ExperimentDecision.STARTING
    running = simulation.reconcile().status.experiment
    assert running is not None
    assert running.decision is ExperimentDecision.RUNNING
    assert simulation.event_reasons() == ["RolloutStarted", "ExperimentStarted"]
    assert "an experiment, 50% of entity keys (header X-User) on it" in simulation.events[0].message


def test_a_better_candidate_is_promoted_once_both_arms_have_their_samples() -> None:
    simulation = started()
    check(simulation, errors((250, 50), (250, 0)))
    assert simulation.status.experiment is not None
    assert simulation.status.experiment.decision is ExperimentDecision.RUNNING, "not over below minSamples"
    assert (simulation.status.experiment.samples_a, simulation.status.experiment.samples_b) == (250, 250)
    plan = check(simulation, errors((500, 100), (500, 1)))
    assert simulation.status.phase is Phase.PROMOTING
    assert plan.stable.assignment is None, "the assignment ends with the experiment"
    promoted = simulation.reconcile()
    assert promoted.status.phase is Phase.STABLE
    assert simulation.status.stable_version == "2.0.0"
    assert simulation.status.history[-1].outcome is Outcome.PROMOTED


def test_a_worse_candidate_is_rolled_back() -> None:
    simulation = started()
    check(simulation, errors((500, 2), (500, 80)))
    assert simulation.status.phase is Phase.ROLLED_BACK
    assert simulation.status.history[-1].outcome is Outcome.ROLLED_BACK
    assert simulation.status.history[-1].reason == "ExperimentLost"


def test_no_difference_keeps_the_stable_version_and_removes_the_candidate() -> None:
    simulation = started()
    plan = check(simulation, errors((500, 5), (500, 6)))
    assert simulation.status.phase is Phase.ROLLED_BACK
    assert simulation.status.history[-1].outcome is Outcome.KEPT
    assert plan.canary is not None
    assert plan.canary.replicas == 0
    assert simulation.status.stable_version == "1.0.0"
    assert "ExperimentKept" in simulation.event_reasons()


def test_an_experiment_with_a_duration_ends_when_it_has_run_it_even_without_data() -> None:
    simulation = started(minSamples=None, duration="3m")
    for _ in range(2):
        check(simulation, ExperimentReading())
        assert simulation.status.phase is Phase.EXPERIMENTING
    check(simulation, ExperimentReading())
    assert simulation.status.history[-1].outcome is Outcome.KEPT


def test_an_errored_reading_decides_nothing() -> None:
    simulation = started()
    check(simulation, ExperimentReading(error="connection refused"))
    assert simulation.status.phase is Phase.EXPERIMENTING
    assert "ExperimentCheckErrored" in simulation.event_reasons()


def test_the_goal_decides_which_way_is_better() -> None:
    conversions = ExperimentMetric(name="conversions", query="q", goal=Goal.INCREASE)
    errs = ExperimentMetric(name="errors", query="q")
    more = compare(conversions, (1000, 1000), (100, 200), 0.95)
    assert more.comparison is Comparison.BETTER
    assert more.lower is not None
    assert more.lower > 0
    assert compare(errs, (1000, 1000), (100, 200), 0.95).comparison is Comparison.WORSE
    assert compare(errs, (1000, 1000), (100, 104), 0.95).comparison is Comparison.UNDECIDED
    assert compare(errs, (0, 1000), (0, 0), 0.95).comparison is Comparison.UNDECIDED


def test_the_stable_pods_get_the_assignment_and_the_candidates_url_from_the_operators_naming() -> None:
    simulation = deployed(make_spec(traffic=GATEWAY, experiment=experiment(exposureLog=True)))
    simulation.set_version("2.0.0")
    plan = simulation.reconcile()
    defaults = ServingDefaults(
        image="example.com/serving:1", service_url_template="http://{service}.{namespace}:{port}"
    )
    children = workloads(Owner("fraud", "ml", "u"), simulation.spec, plan, defaults)
    stable, canary = children[0], children[1]
    env = {e["name"]: e["value"] for e in stable["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SLUICE_EXPERIMENT_CANDIDATE_URL"] == "http://fraud-canary.ml:80"
    assert (env["SLUICE_EXPERIMENT_HEADER"], env["SLUICE_EXPERIMENT_SPLIT"], env["SLUICE_EXPOSURE_LOG"]) == (
        "x-user",
        "50",
        "true",
    )
    assert env["SLUICE_EXPERIMENT_ID"] == stable["metadata"]["annotations"][EXPERIMENT_ANNOTATION]
    canary_env = {e["name"] for e in canary["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SLUICE_EXPERIMENT_ID" not in canary_env, "the candidate answers what it is sent"


def test_an_experiment_without_a_gateway_or_beside_a_match_is_an_invalid_spec() -> None:
    alone = make_spec(experiment=experiment())
    matched = make_spec(
        traffic=GATEWAY,
        experiment=experiment(metrics=[{"name": "errors", "query": "{{step}}"}]),
        rollout={"steps": [10], "match": [{"headers": [{"name": "x-tester", "value": "yes"}]}]},
    )
    assert any("needs spec.traffic.gateway" in p for p in problems("fraud", alone, "img"))
    found = problems("fraud", matched, "img")
    assert any("cannot be combined with rollout.match" in p for p in found)
    assert any("unknown placeholders" in p for p in found)
    assert problems("fraud", make_spec(traffic=GATEWAY, experiment=experiment()), "img") == []


def test_an_autoscaled_candidate_is_sized_for_the_experiments_split() -> None:
    autoscaling = {"minReplicas": 2, "maxReplicas": 10, "metrics": [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}  # fmt: skip
    simulation = deployed(make_spec(traffic=GATEWAY, experiment=experiment(split=40), autoscaling=autoscaling))
    simulation.set_version("2.0.0")
    plan = simulation.reconcile()
    assert plan.canary is not None
    assert plan.canary.autoscaling is not None
    assert (plan.canary.autoscaling.min_replicas, plan.canary.autoscaling.max_replicas) == (1, 4)
