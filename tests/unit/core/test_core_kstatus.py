"""The kstatus conditions (Reconciling, Stalled, each with observedGeneration) through a ModelDeployment's life,
and the status kstatus would compute from them (its rules for custom resources, cli-utils pkg/kstatus)."""

from __future__ import annotations

from datetime import UTC, datetime

from sluice.api.v1alpha1 import Action, ModelDeploymentStatus, Phase
from sluice.core.conditions import READY, RECONCILING, STALLED, find_condition
from sluice.core.validation import invalid_spec_status
from unit.core.support import ERRORING, HEALTHY, Simulation, at_first_step, deployed, make_spec


def kstatus(status: ModelDeploymentStatus, generation: int) -> str:
    """kstatus' generic rules for a resource with conditions: Failed when Stalled, InProgress when Reconciling or
    when status.observedGeneration lags metadata.generation, else Current."""
    if status.observed_generation != generation:
        return "InProgress"
    stalled, reconciling = find_condition(status.conditions, STALLED), find_condition(status.conditions, RECONCILING)
    if stalled is not None and stalled.status == "True":
        return "Failed"
    if reconciling is not None and reconciling.status == "True":
        return "InProgress"
    return "Current"


def reasons(status: ModelDeploymentStatus) -> tuple[tuple[str, str], tuple[str, str]]:
    found = [find_condition(status.conditions, kind) for kind in (RECONCILING, STALLED)]
    assert all(found), status.conditions
    return tuple((c.status, c.reason) for c in found if c is not None)  # type: ignore[return-value]


def test_a_first_deploy_is_in_progress_until_the_stable_deployment_is_available() -> None:
    simulation = Simulation(make_spec("1.0.0"))
    first = simulation.reconcile()
    assert reasons(first.status) == (("True", "Initializing"), ("False", "NotStalled"))
    assert kstatus(first.status, simulation.generation) == "InProgress"

    second = simulation.reconcile()

    assert reasons(second.status) == (("False", "Reconciled"), ("False", "NotStalled"))
    assert kstatus(second.status, simulation.generation) == "Current"


def test_every_condition_carries_the_observed_generation() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    assert simulation.status.observed_generation == simulation.generation == 2
    assert {c.type: c.observed_generation for c in simulation.status.conditions} == {
        "Ready": 2,
        "Progressing": 2,
        "Reconciling": 2,
        "Stalled": 2,
        "PodsCanStart": 2,
    }


def test_a_long_canary_is_in_progress_at_every_step_then_current_once_promoted() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    seen = {kstatus(simulation.status, simulation.generation)}
    while simulation.status.phase is Phase.PROGRESSING:
        status = simulation.check(HEALTHY).status
        seen.add(kstatus(status, simulation.generation))
        expected = "Promoting" if status.phase is Phase.PROMOTING else "Analysing"
        assert reasons(status) == (("True", expected), ("False", "NotStalled"))
    assert seen == {"InProgress"}
    promoted = simulation.reconcile()

    assert promoted.status.phase is Phase.STABLE
    assert reasons(promoted.status) == (("False", "Reconciled"), ("False", "NotStalled"))
    assert kstatus(promoted.status, simulation.generation) == "Current"


def test_a_paused_rollout_stays_in_progress() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.paused = True

    plan = simulation.reconcile()

    assert reasons(plan.status) == (("True", "Paused"), ("False", "NotStalled"))


def test_a_rolled_back_version_is_stalled_until_retried() -> None:
    simulation = at_first_step(make_spec("1.0.0"))

    rolled_back = simulation.check(ERRORING)

    assert reasons(rolled_back.status) == (("False", "Reconciled"), ("True", "AnalysisFailed"))
    assert kstatus(rolled_back.status, simulation.generation) == "Failed"
    ready = find_condition(rolled_back.status.conditions, READY)
    assert ready is not None
    assert ready.status == "True"  # the stable version keeps serving

    retried = simulation.reconcile(action=Action.RETRY)

    assert reasons(retried.status) == (("True", "WaitingForCanary"), ("False", "NotStalled"))


def test_a_new_version_after_a_rollback_is_no_longer_stalled() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(ERRORING)
    simulation.set_version("3.0.0")

    plan = simulation.reconcile()

    assert kstatus(plan.status, simulation.generation) == "InProgress"
    assert reasons(plan.status)[1] == ("False", "NotStalled")


def test_an_invalid_spec_is_stalled_with_its_message() -> None:
    simulation = deployed(make_spec("1.0.0"))
    now = datetime(2026, 1, 1, tzinfo=UTC)

    rejected = invalid_spec_status(simulation.status, "spec.x: bad", 7, now)

    assert reasons(rejected) == (("False", "Reconciled"), ("True", "InvalidSpec"))
    stalled = find_condition(rejected.conditions, STALLED)
    assert stalled is not None
    assert (stalled.message, stalled.observed_generation, stalled.last_transition_time) == ("spec.x: bad", 7, now)
    assert kstatus(rejected, 7) == "Failed"


def test_a_stable_deployment_past_its_progress_deadline_is_stalled() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.stable = type(simulation.stable)(
        exists=True, version="1.0.0", replicas=2, progress_deadline_exceeded=True
    )

    plan = simulation.reconcile()

    assert reasons(plan.status) == (("False", "Reconciled"), ("True", "ProgressDeadlineExceeded"))


def test_an_updating_stable_deployment_is_reconciling() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.stable = type(simulation.stable)(
        exists=True, version="1.0.0", replicas=2, updated_replicas=1, ready_replicas=1
    )

    plan = simulation.reconcile()

    assert reasons(plan.status) == (("True", "StableUpdating"), ("False", "NotStalled"))


def test_deciding_again_changes_no_kstatus_condition() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    simulation.check(ERRORING)
    before = simulation.status

    assert simulation.reconcile().status.conditions == before.conditions
