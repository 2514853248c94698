"""Rollout metrics derived from (status read, plan applied): what moves on each transition, exactly once."""

from __future__ import annotations

import itertools
from datetime import timedelta

from prometheus_client import REGISTRY

from sluice.adapters import telemetry
from sluice.api.v1alpha1 import Action, Phase
from sluice.core.plan import Plan
from unit.core.support import ERRORING, HEALTHY, Simulation, at_first_step, deployed, make_spec

_names = itertools.count()


class Recorder:
    """A simulated ModelDeployment whose every reconcile is recorded as the reconciler does, under its own name."""

    def __init__(self, simulation: Simulation) -> None:
        self.simulation = simulation
        self.namespace, self.name = "telemetry", f"md-{next(_names)}"

    def apply(self, plan_of: Plan | None = None, *, delay: timedelta = timedelta(0), **kwargs: object) -> Plan:
        previous = self.simulation.status
        plan = plan_of or self.simulation.reconcile(**kwargs)  # type: ignore[arg-type]
        telemetry.record(self.namespace, self.name, previous, plan, self.simulation.now + delay)
        return plan

    def check(self, reading: object, delay: timedelta = timedelta(0)) -> Plan:
        self.simulation.until_next_check()
        return self.apply(reading=reading, delay=delay)

    def value(self, series: str, **labels: str) -> float:
        found = REGISTRY.get_sample_value(series, {"namespace": self.namespace, "name": self.name, **labels})
        return 0.0 if found is None else found


def breaches() -> float:
    return REGISTRY.get_sample_value("sluice_breach_to_rollback_seconds_count") or 0.0


def test_a_promoted_rollout_moves_started_checks_weight_step_phase_and_finished() -> None:
    recorder = Recorder(deployed(make_spec("1.0.0")))
    recorder.simulation.set_version("2.0.0")
    recorder.apply()
    assert recorder.value("sluice_rollouts_started_total") == 1
    assert recorder.value("sluice_modeldeployment_phase", phase="Progressing") == 1
    assert recorder.value("sluice_modeldeployment_phase", phase="Stable") == 0
    recorder.apply()  # canary ready: first step
    assert recorder.value("sluice_canary_weight_ratio") == 0.1
    assert recorder.value("sluice_rollout_step") == 1

    recorder.check(HEALTHY)

    assert recorder.value("sluice_analysis_checks_total", verdict="Passed") == 1
    assert recorder.value("sluice_canary_weight_ratio") == 0.25
    assert recorder.value("sluice_analysis_metric_value", metric="errorRate") == HEALTHY.error_rate
    while recorder.simulation.status.phase is Phase.PROGRESSING:
        recorder.check(HEALTHY)
    recorder.apply()  # the stable Deployment rolled to 2.0.0: promoted
    assert recorder.value("sluice_rollouts_finished_total", outcome="Promoted") == 1
    assert recorder.value("sluice_rollouts_started_total") == 1
    assert recorder.value("sluice_analysis_checks_total", verdict="Passed") == 3
    assert recorder.value("sluice_canary_weight_ratio") == 0
    assert recorder.value("sluice_modeldeployment_condition", condition="Reconciling", status="False") == 1


def test_a_rollback_observes_the_time_from_the_failed_check_to_weight_zero() -> None:
    recorder = Recorder(at_first_step(make_spec("1.0.0")))
    before = breaches()
    before_sum = REGISTRY.get_sample_value("sluice_breach_to_rollback_seconds_sum") or 0.0

    recorder.check(ERRORING, delay=timedelta(seconds=1.5))

    assert recorder.value("sluice_analysis_checks_total", verdict="Failed") == 1
    assert recorder.value("sluice_rollouts_finished_total", outcome="RolledBack") == 1
    assert recorder.value("sluice_canary_weight_ratio") == 0
    assert recorder.value("sluice_modeldeployment_phase", phase="RolledBack") == 1
    assert recorder.value("sluice_modeldeployment_condition", condition="Stalled", status="True") == 1
    assert breaches() == before + 1
    after_sum = REGISTRY.get_sample_value("sluice_breach_to_rollback_seconds_sum") or 0.0
    assert abs(after_sum - before_sum - 1.5) < 1e-9


def test_an_aborted_rollout_observes_no_breach() -> None:
    recorder = Recorder(at_first_step(make_spec("1.0.0")))
    before = breaches()

    recorder.apply(action=Action.ABORT)

    assert recorder.value("sluice_rollouts_finished_total", outcome="Aborted") == 1
    assert breaches() == before


def test_a_canary_never_ready_is_rolled_back_without_a_breach() -> None:
    recorder = Recorder(deployed(make_spec("1.0.0")))
    recorder.simulation.canary_starts = False
    recorder.simulation.set_version("2.0.0")
    recorder.apply()
    before = breaches()
    recorder.simulation.wait("10m")

    recorder.apply()

    assert recorder.value("sluice_rollouts_finished_total", outcome="RolledBack") == 1
    assert breaches() == before


def test_a_status_decided_again_counts_nothing_twice() -> None:
    recorder = Recorder(at_first_step(make_spec("1.0.0")))
    recorder.check(ERRORING)
    counted = (
        recorder.value("sluice_rollouts_finished_total", outcome="RolledBack"),
        recorder.value("sluice_analysis_checks_total", verdict="Failed"),
        breaches(),
    )

    recorder.apply()  # e.g. a restarted operator reading the status it wrote
    recorder.apply()

    assert (
        recorder.value("sluice_rollouts_finished_total", outcome="RolledBack"),
        recorder.value("sluice_analysis_checks_total", verdict="Failed"),
        breaches(),
    ) == counted


def test_a_superseded_rollout_finishes_one_and_starts_another() -> None:
    recorder = Recorder(at_first_step(make_spec("1.0.0")))
    recorder.simulation.set_version("3.0.0")

    recorder.apply()

    assert recorder.value("sluice_rollouts_finished_total", outcome="Superseded") == 1
    assert recorder.value("sluice_rollouts_started_total") == 1  # the recorder saw only the second start


def test_forget_removes_every_series_of_the_object_and_no_other() -> None:
    first, second = Recorder(at_first_step(make_spec("1.0.0"))), Recorder(at_first_step(make_spec("1.0.0")))
    for recorder in (first, second):
        recorder.check(HEALTHY)

    telemetry.forget(first.namespace, first.name)

    samples = [
        sample
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("namespace") == "telemetry"
    ]
    assert not [sample for sample in samples if sample.labels.get("name") == first.name]
    assert [sample for sample in samples if sample.labels.get("name") == second.name]


def test_metric_names_lists_the_exposed_sample_names() -> None:
    names = telemetry.metric_names()

    assert {
        "sluice_rollouts_started_total",
        "sluice_breach_to_rollback_seconds_bucket",
        "sluice_canary_weight_ratio",
        "sluice_operator_kube_requests_total",
    } <= names
    assert "sluice_rollouts_started" not in names
