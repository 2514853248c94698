"""spec.autoscaling: each track's HPA bounds (the canary's sized by its weight, per capacity mode), the counts
sluice sets itself (a new Deployment's, the promotion's hand-over), and the HPA's counts left alone."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus, Phase
from sluice.core.plan import Plan, ReplicaBounds, WorkloadState
from sluice.core.rollout import ROLLOUT_PHASES, decide
from sluice.core.rollout.autoscaling import canary_bounds, stable_bounds
from unit.core.support import ERRORING, HEALTHY, Simulation, deployed, make_spec
from unit.core.test_core_rollout_properties import FAST, drive, moves, specs

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}
AUTOSCALING = {"minReplicas": 2, "maxReplicas": 10}


def autoscaled(capacity: str = "Surge", traffic: dict[str, Any] | None = GATEWAY, replicas: int = 3) -> Simulation:
    rollout = {"steps": [20, 50], "interval": "1m", "capacity": capacity}
    overrides: dict[str, Any] = {"replicas": replicas, "rollout": rollout, "autoscaling": AUTOSCALING}
    if traffic is not None:
        overrides["traffic"] = traffic
    return deployed(make_spec("1.0.0", **overrides))


def at_weight(weight: int) -> ModelDeploymentStatus:
    return ModelDeploymentStatus(phase=Phase.PROGRESSING, current_step=0, canary_weight=weight)


def bounds(low: int, high: int) -> ReplicaBounds:
    return ReplicaBounds(min_replicas=low, max_replicas=high)


def hpa_scales_stable(simulation: Simulation, replicas: int) -> None:
    """What the HPA controller does: the stable Deployment's replicas, through the scale subresource."""
    simulation.stable = dataclasses.replace(
        simulation.stable, replicas=replicas, updated_replicas=replicas, ready_replicas=replicas
    )


@pytest.mark.parametrize(
    ("weight", "expected"),
    [(0, bounds(1, 1)), (20, bounds(1, 2)), (50, bounds(1, 5)), (100, bounds(2, 10))],
)
def test_behind_a_gateway_the_canary_hpa_bounds_are_its_weights_share_of_the_bounds_and_at_least_one(
    weight: int, expected: ReplicaBounds
) -> None:
    spec = autoscaled().spec

    assert canary_bounds(spec, at_weight(weight)) == expected
    assert stable_bounds(spec, at_weight(weight), WorkloadState()) == bounds(2, 10)


@pytest.mark.parametrize(("weight", "expected"), [(20, bounds(1, 3)), (50, bounds(2, 10)), (100, bounds(18, 90))])
def test_by_replica_ratio_the_canary_hpa_bounds_keep_the_weights_ratio_to_the_stable_bounds(
    weight: int, expected: ReplicaBounds
) -> None:
    spec = autoscaled(traffic=None).spec

    assert canary_bounds(spec, at_weight(weight)) == expected
    assert canary_bounds(spec, at_weight(0)) is None  # by replica ratio, weight 0 runs no canary


@pytest.mark.parametrize(
    ("weight", "canary", "stable"),
    [(0, bounds(1, 1), bounds(1, 9)), (20, bounds(1, 2), bounds(1, 8)), (50, bounds(1, 5), bounds(1, 5)),
     (100, bounds(1, 9), bounds(1, 1))],
)  # fmt: skip
def test_with_capacity_neutral_the_stable_hpa_gives_up_what_the_canarys_ready_pods_took(
    weight: int, canary: ReplicaBounds, stable: ReplicaBounds
) -> None:
    spec = autoscaled("Neutral").spec
    ready = WorkloadState(exists=True, replicas=10, ready_replicas=10, available=True)

    assert canary_bounds(spec, at_weight(weight)) == canary
    assert stable_bounds(spec, at_weight(weight), ready) == stable
    assert stable_bounds(spec, at_weight(weight), WorkloadState()) == bounds(2, 10)  # no canary pod ready yet


def test_without_a_canary_only_the_stable_track_has_an_hpa_started_at_spec_replicas() -> None:
    simulation = autoscaled(replicas=3)
    plan = simulation.reconcile()

    assert plan.stable.autoscaling == bounds(2, 10)
    assert plan.canary is None
    assert simulation.stable.replicas == 3


def test_spec_replicas_outside_the_bounds_starts_the_stable_deployment_within_them() -> None:
    assert autoscaled(replicas=1).stable.replicas == 2
    assert autoscaled(replicas=50).stable.replicas == 10


def test_replicas_the_hpa_set_are_never_lowered_or_repaired() -> None:
    simulation = autoscaled(replicas=3)
    hpa_scales_stable(simulation, 7)
    plan = simulation.reconcile()

    assert plan.stable.replicas == 0  # no floor: the Deployment's replicas stay the HPA's
    assert simulation.stable.replicas == 7


def rollout_at_last_step(simulation: Simulation) -> Plan:
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.reconcile()
    return simulation.check(HEALTHY)


def test_the_canary_hpa_runs_while_the_canary_does_and_starts_at_its_share_of_stables_count() -> None:
    simulation = autoscaled()
    hpa_scales_stable(simulation, 8)
    simulation.set_version("2.0.0")
    started = simulation.reconcile()

    assert started.canary is not None
    assert started.canary.autoscaling == bounds(1, 2)  # step 1: 20%
    assert simulation.canary.replicas == 2  # 20% of stable's 8, within the canary's bounds
    simulation.reconcile()
    next_step = simulation.check(HEALTHY).canary
    assert next_step is not None
    assert next_step.autoscaling == bounds(1, 5)


def test_surge_promotion_hands_the_stable_hpas_count_to_the_promoted_revision() -> None:
    simulation = autoscaled()
    rollout_at_last_step(simulation)
    hpa_scales_stable(simulation, 7)
    promoting = simulation.check(HEALTHY)
    assert promoting.status.phase is Phase.PROMOTING
    assert promoting.stable.replicas == 7

    promoted = simulation.reconcile()
    assert promoted.status.phase is Phase.STABLE
    assert simulation.stable.version == "2.0.0"
    assert simulation.stable.replicas == 7
    assert promoted.canary is not None
    assert (promoted.canary.autoscaling, promoted.canary.replicas) == (None, 0)


def test_neutral_promotion_gives_the_canarys_ready_pods_back_to_the_promoted_stable_track() -> None:
    simulation = autoscaled("Neutral")
    hpa_scales_stable(simulation, 8)
    rollout_at_last_step(simulation)
    canary_ready = simulation.canary.ready_replicas
    hpa_scales_stable(simulation, 8 - canary_ready)  # the stable HPA's max shrank by the canary's Ready pods
    promoting = simulation.check(HEALTHY)

    assert promoting.status.phase is Phase.PROMOTING
    assert promoting.stable.autoscaling == bounds(2, 10)
    assert promoting.stable.replicas == 8
    assert simulation.stable.replicas == 8


def test_the_hand_over_never_goes_past_max_replicas() -> None:
    simulation = autoscaled("Neutral")
    rollout_at_last_step(simulation)
    hpa_scales_stable(simulation, 9)

    assert simulation.check(HEALTHY).stable.replicas == 10


def test_a_rollback_removes_the_canary_hpa_and_leaves_the_stable_count_to_its_hpa() -> None:
    simulation = autoscaled()
    hpa_scales_stable(simulation, 6)
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.reconcile()
    rolled_back = simulation.check(ERRORING)

    assert rolled_back.status.phase is Phase.ROLLED_BACK
    assert rolled_back.canary is not None
    assert (rolled_back.canary.autoscaling, rolled_back.canary.replicas) == (None, 0)
    assert (rolled_back.stable.autoscaling, simulation.stable.replicas) == (bounds(2, 10), 6)


@pytest.mark.parametrize(("capacity", "traffic"), [("Surge", GATEWAY), ("Surge", None), ("Neutral", GATEWAY)])
def test_every_hpa_bound_is_at_least_one_and_ordered_at_every_weight(
    capacity: str, traffic: dict[str, Any] | None
) -> None:
    for low, high in [(1, 1), (1, 5), (2, 10), (3, 3), (10, 1000)]:
        rollout = {"steps": [20, 50], "capacity": capacity}
        overrides: dict[str, Any] = {"rollout": rollout, "autoscaling": {"minReplicas": low, "maxReplicas": high}}
        spec = make_spec("1.0.0", **overrides, **({"traffic": traffic} if traffic else {}))
        for weight in range(101):
            canary = canary_bounds(spec, at_weight(weight))
            assert canary is None or 1 <= canary.min_replicas <= canary.max_replicas, (low, high, weight)
            for ready in (0, 1, low, high):
                stable = stable_bounds(spec, at_weight(weight), WorkloadState(ready_replicas=ready))
                assert stable is not None
                assert 1 <= stable.min_replicas <= stable.max_replicas <= high, (low, high, weight, ready)
                if capacity == "Neutral" and canary is not None:  # together, never more than one pod over
                    assert stable.max_replicas + min(ready, canary.max_replicas) <= high + 1


@st.composite
def autoscaled_specs(draw: st.DrawFn) -> ModelDeploymentSpec:
    low = draw(st.integers(1, 6))
    bounds_wire = {"minReplicas": low, "maxReplicas": draw(st.integers(low, 12))}
    wire = draw(specs()).to_wire()
    return ModelDeploymentSpec.model_validate({**wire, "autoscaling": bounds_wire})


@FAST
@given(autoscaled_specs(), moves)
def test_every_decision_gives_each_track_ordered_hpa_bounds_and_never_sets_more_than_they_allow(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    assert spec.autoscaling is not None
    for decision in drive(spec, sequence):
        plan = decision.plan
        stable = plan.stable.autoscaling
        assert stable is not None
        assert 1 <= stable.min_replicas <= stable.max_replicas <= spec.autoscaling.max_replicas
        assert plan.stable.replicas <= stable.max_replicas
        canary = plan.canary.autoscaling if plan.canary is not None else None
        if canary is not None:
            assert plan.status.phase in ROLLOUT_PHASES
            assert 1 <= canary.min_replicas <= canary.max_replicas
            assert plan.canary is not None
            assert plan.canary.replicas <= canary.max_replicas
        if plan.status.phase is Phase.ROLLED_BACK:
            assert plan.canary is not None
            assert (canary, plan.canary.replicas) == (None, 0)
        again = decide(decision.spec, plan.status, decision.observations, decision.now)
        assert (again.status, again.stable, again.canary, again.events) == (plan.status, plan.stable, plan.canary, ())
