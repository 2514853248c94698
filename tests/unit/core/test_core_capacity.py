"""rollout.capacity Neutral: the canary's pods are taken from stable one at a time, each stable pod leaving only
once a canary pod is Ready, and given back the same way."""

from __future__ import annotations

from dataclasses import replace

from sluice.api.v1alpha1 import Phase
from sluice.core.plan import WorkloadState
from sluice.core.rollout.capacity import track_replicas
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

    # stable gives up a pod, and only once it is gone does the canary grow into its room: never 6 pods
    assert [tracks(simulation) for _ in range(4)] == [(4, 1), (3, 1), (3, 2), (2, 2)]
    assert simulation.status.current_step == 0


def test_a_canary_pod_that_never_becomes_ready_takes_no_stable_pod() -> None:
    simulation = neutral(4)
    simulation.canary_starts = False
    simulation.set_version("2.0.0")

    assert [tracks(simulation) for _ in range(3)] == [(4, 1), (4, 1), (4, 1)]


def test_on_rollback_the_stable_pods_come_back_before_the_canary_pods_go() -> None:
    simulation = neutral(4)
    simulation.set_version("2.0.0")
    for _ in range(4):
        simulation.reconcile()
    rolled_back = simulation.check(ERRORING)
    assert simulation.status.phase is Phase.ROLLED_BACK
    assert rolled_back.canary_weight == 0
    assert rolled_back.canary is not None

    assert [(rolled_back.stable.replicas, rolled_back.canary.replicas)] + [tracks(simulation) for _ in range(3)] == [
        (3, 2),
        (3, 1),
        (4, 1),
        (4, 0),
    ]


def test_after_promotion_the_stable_track_grows_back_before_the_canary_pods_go() -> None:
    simulation = neutral(4)
    simulation.set_version("2.0.0")
    for _ in range(4):
        simulation.reconcile()
    assert simulation.check(HEALTHY).status.phase is Phase.PROMOTING
    promoted = simulation.reconcile()
    assert promoted.status.phase is Phase.STABLE
    assert promoted.canary is not None
    assert (promoted.stable.replicas, promoted.canary.replicas) == (3, 2)

    assert [tracks(simulation) for _ in range(3)] == [(3, 1), (4, 1), (4, 0)]


def test_the_canary_share_is_the_weights_share_of_replicas_leaving_stable_at_least_one() -> None:
    assert [neutral_canary_replicas(weight, 4) for weight in (1, 25, 50, 60, 100)] == [1, 1, 2, 2, 3]
    assert [neutral_canary_replicas(50, replicas) for replicas in (0, 1, 2, 3)] == [0, 1, 1, 2]


def test_a_track_grows_only_once_the_other_tracks_pods_are_gone_not_when_its_spec_says_fewer() -> None:
    simulation = neutral(3)
    simulation.set_version("2.0.0")
    spec, status = simulation.spec, simulation.status
    stable = WorkloadState(exists=True, replicas=1, pods=1, ready_replicas=1, updated_replicas=1, available=True)
    # the canary's Deployment already says 1 and 2 is what its ReplicaSet still runs: stable may not grow yet
    draining = WorkloadState(exists=True, replicas=1, pods=2, ready_replicas=2, updated_replicas=1)
    drained = replace(draining, pods=1, ready_replicas=1, available=True)

    grown_while_draining, _ = track_replicas(spec, status.model_copy(update={"phase": Phase.STABLE}), stable, draining)
    grown_once_drained, _ = track_replicas(spec, status.model_copy(update={"phase": Phase.STABLE}), stable, drained)

    assert (grown_while_draining, grown_once_drained) == (2, 3)
