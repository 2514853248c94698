"""rollout.capacity Neutral: the canary's pods are taken from stable one at a time, each stable pod leaving only
once a canary pod is Ready, and given back the same way."""

from __future__ import annotations

from sluice.api.v1alpha1 import Phase
from sluice.core.rollout.workloads import neutral_canary_replicas
from unit.core.support import ERRORING, HEALTHY, Simulation, deployed, make_spec

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}


def neutral(replicas: int = 4) -> Simulation:
    spec = make_spec("1.0.0", replicas=replicas, traffic=GATEWAY, rollout={"steps": [50], "capacity": "Neutral"})
    return deployed(spec)


def tracks(simulation: Simulation) -> tuple[int, int]:
    plan = simulation.reconcile()
    return plan.stable.replicas, plan.canary.replicas if plan.canary is not None else 0


def test_the_canary_takes_stable_pods_one_at_a_time_and_only_once_its_own_are_ready() -> None:
    simulation = neutral(4)
    simulation.set_version("2.0.0")

    assert [tracks(simulation) for _ in range(3)] == [(4, 1), (3, 2), (2, 2)]
    assert simulation.status.current_step == 0


def test_a_canary_pod_that_never_becomes_ready_takes_no_stable_pod() -> None:
    simulation = neutral(4)
    simulation.canary_starts = False
    simulation.set_version("2.0.0")

    assert [tracks(simulation) for _ in range(3)] == [(4, 1), (4, 1), (4, 1)]


def test_on_rollback_the_stable_pods_come_back_before_the_canary_pods_go() -> None:
    simulation = neutral(4)
    simulation.set_version("2.0.0")
    for _ in range(3):
        simulation.reconcile()
    rolled_back = simulation.check(ERRORING)
    assert simulation.status.phase is Phase.ROLLED_BACK
    assert rolled_back.canary_weight == 0
    assert rolled_back.canary is not None

    assert [(rolled_back.stable.replicas, rolled_back.canary.replicas)] + [tracks(simulation) for _ in range(2)] == [
        (3, 2),
        (4, 1),
        (4, 0),
    ]


def test_after_promotion_the_stable_track_grows_back_before_the_canary_pods_go() -> None:
    simulation = neutral(4)
    simulation.set_version("2.0.0")
    for _ in range(3):
        simulation.reconcile()
    assert simulation.check(HEALTHY).status.phase is Phase.PROMOTING
    promoted = simulation.reconcile()
    assert promoted.status.phase is Phase.STABLE
    assert promoted.canary is not None
    assert (promoted.stable.replicas, promoted.canary.replicas) == (3, 2)

    assert [tracks(simulation) for _ in range(2)] == [(4, 1), (4, 0)]


def test_the_canary_share_is_the_weights_share_of_replicas_leaving_stable_at_least_one() -> None:
    assert [neutral_canary_replicas(weight, 4) for weight in (1, 25, 50, 60, 100)] == [1, 1, 2, 2, 3]
    assert [neutral_canary_replicas(50, replicas) for replicas in (0, 1, 2, 3)] == [0, 1, 1, 2]
