"""Properties of rollout.keepPrevious over random sequences of time, readings, actions, spec changes and undos."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sluice.api.v1alpha1 import ModelDeploymentSpec, Phase
from sluice.core.rollout.revisions import revision_hash
from unit.core.support import HEALTHY, make_spec
from unit.core.test_core_rollout_properties import (
    FAST,
    VERSIONS,
    Check,
    Undo,
    assert_deciding_again_changes_nothing,
    drive,
    other_moves,
    readings,
    stable_revision,
)


@st.composite
def keeping_specs(draw: st.DrawFn) -> ModelDeploymentSpec:
    steps = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=2)))
    wire: dict[str, Any] = {
        "replicas": draw(st.integers(1, 4)),
        "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
        "rollout": {
            "steps": steps,
            "interval": "1m",
            "progressDeadline": "5m",
            "capacity": draw(st.sampled_from([None, "Surge", "Neutral"])),
            "keepPrevious": draw(st.sampled_from(["1m", "3m", "10m"])),
            "postPromotionAnalysis": draw(st.booleans()),
        },
        "analysis": {"maxFailedChecks": draw(st.integers(1, 2)), "onInconclusive": "Rollback"},
    }
    return make_spec(VERSIONS[0], **wire)


healthy_check = st.just(Check(HEALTHY))
keeping_moves = st.lists(
    st.one_of(healthy_check, healthy_check, healthy_check, st.builds(Check, readings), st.just(Undo()), other_moves),
    min_size=3,
    max_size=30,
)
"""Mostly passing checks, so that rollouts get promoted; undos at any time."""


@FAST
@given(keeping_specs(), keeping_moves)
def test_an_undo_within_the_window_always_restores_the_exact_previous_revision_on_its_untouched_pods(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    for before, decision in pairwise(drive(spec, sequence)):
        previous, plan = before.plan.status.previous, decision.plan
        if "RolledBackAfterPromotion" not in [event.reason for event in plan.events]:
            continue
        assert previous is not None
        assert not previous.released
        assert plan.canary_weight == 0
        assert plan.status.stable_revision == previous.revision
        assert stable_revision(plan) == previous.revision.hash
        assert plan.stable == before.plan.stable, "the kept Deployment takes the traffic as it is"
        assert decision.observations.stable.available
        assert decision.observations.stable.ready_replicas == decision.spec.replicas


@FAST
@given(keeping_specs(), keeping_moves)
def test_nothing_takes_traffic_from_the_promoted_revision_or_touches_the_kept_pods_outside_an_undo(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    for before, decision in pairwise(drive(spec, sequence)):
        previous, plan = before.plan.status.previous, decision.plan
        reasons = [event.reason for event in plan.events]
        if plan.status.phase is Phase.PROMOTED and plan.status.previous is not None:
            kept = plan.status.previous
            assert plan.canary_weight == 100
            if not kept.released:
                assert revision_hash(plan.stable.model, plan.stable.serving) == kept.revision.hash
                assert plan.stable.replicas == decision.spec.replicas
        if previous is not None and before.plan.status.phase is Phase.PROMOTED and plan.canary_weight < 100:
            assert "RolledBackAfterPromotion" in reasons or "HandedBack" in reasons


@FAST
@given(keeping_specs(), keeping_moves)
def test_a_kept_promotion_moves_all_traffic_only_onto_a_track_whose_every_pod_is_ready(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    for before, decision in pairwise(drive(spec, sequence)):
        was, now = before.plan.canary_weight, decision.plan.canary_weight
        observed, replicas = decision.observations, decision.spec.replicas
        flipped = decision.plan.status.phase is Phase.PROMOTED and before.plan.status.phase is not Phase.PROMOTED
        if flipped:  # (a step of 100% moves the weight as a step does, before promotion)
            assert observed.canary.available
            assert observed.canary.ready_replicas == replicas
        if was == 100 and now == 0 and before.plan.status.phase is Phase.PROMOTED:
            assert observed.stable.available
            assert observed.stable.ready_replicas == replicas


@FAST
@given(keeping_specs(), keeping_moves)
def test_deciding_again_on_a_kept_promotion_changes_nothing(spec: ModelDeploymentSpec, sequence: list[Any]) -> None:
    assert_deciding_again_changes_nothing(drive(spec, sequence))
