"""rollout.keepPrevious and rollout.postPromotionAnalysis: a promotion keeps the previous revision's pods, an undo
within the window moves all traffic back to them at once, and the post-promotion analysis does so on its own."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import Action, ModelDeploymentSpec, Outcome, Phase
from sluice.core import validation
from sluice.core.conditions import PROGRESSING, find_condition
from sluice.core.rollout import analysed_versions, check_window, decide
from unit.core.support import ERRORING, HEALTHY, QUIET, Simulation, at_first_step, deployed, make_spec

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}


def keeping_spec(**rollout: Any) -> ModelDeploymentSpec:
    settings = {"steps": [50], "interval": "1m", "progressDeadline": "10m", "keepPrevious": "10m", **rollout}
    return make_spec("1.0.0", replicas=3, traffic=GATEWAY, rollout=settings)


def phase(simulation: Simulation) -> Phase | None:
    return simulation.status.phase


def neutral_at_first_step() -> Simulation:
    """Capacity Neutral: 2.0.0's canary ready at its one step (its pods taken from stable one at a time)."""
    simulation = deployed(keeping_spec(capacity="Neutral"))
    simulation.set_version("2.0.0")
    for _ in range(6):
        simulation.reconcile()
    assert simulation.status.current_step == 0
    return simulation


def promoted(spec: ModelDeploymentSpec) -> Simulation:
    """2.0.0 promoted through its one step, the pods of 1.0.0 kept."""
    simulation = at_first_step(spec)
    simulation.check(HEALTHY)
    simulation.reconcile()
    assert phase(simulation) is Phase.PROMOTED
    simulation.events.clear()
    return simulation


def test_a_promotion_moves_all_traffic_to_the_canary_pods_and_keeps_the_previous_revision_pods_ready() -> None:
    simulation = promoted(keeping_spec())
    plan, status = simulation.plan, simulation.status
    assert plan is not None
    assert plan.canary_weight == 100
    assert (plan.stable.model.version, plan.stable.replicas) == ("1.0.0", 3)
    assert plan.canary is not None
    assert (plan.canary.model.version, plan.canary.replicas) == ("2.0.0", 3)
    assert status.stable_version == "2.0.0"
    assert status.previous is not None
    assert (status.previous.version, status.previous.until) == ("1.0.0", status.previous.since + timedelta(minutes=10))
    assert status.history[-1].outcome is Outcome.PROMOTED
    assert status.ready_replicas == 3


def test_the_promotion_waits_for_every_canary_pod_before_it_moves_the_traffic() -> None:
    simulation = neutral_at_first_step()
    simulation.canary_starts = False
    simulation.check(HEALTHY)
    plan = simulation.reconcile()
    assert phase(simulation) is Phase.PROMOTING
    assert plan.canary_weight == 50
    assert plan.stable.model.version == "1.0.0", "the stable Deployment is not rolled while keeping the previous"


def test_when_the_window_ends_the_stable_deployment_takes_the_promoted_revision_back_then_the_canary_goes() -> None:
    simulation = promoted(keeping_spec())
    simulation.wait("10m")
    plan = simulation.reconcile()
    assert plan.canary_weight == 100, "the canary's pods serve while the stable Deployment rolls"
    assert plan.stable.model.version == "2.0.0"
    plan = simulation.reconcile()
    assert phase(simulation) is Phase.STABLE
    assert simulation.status.previous is None
    assert plan.canary_weight == 0
    assert plan.canary is not None
    assert plan.canary.replicas == 0
    assert simulation.event_reasons() == ["PreviousReleased", "HandedBack"]


def test_the_window_end_is_when_the_operator_looks_again() -> None:
    simulation = promoted(keeping_spec())
    assert simulation.plan is not None
    assert simulation.plan.requeue_after == timedelta(minutes=10)


def test_undo_within_the_window_moves_all_traffic_back_in_one_decision_to_the_untouched_previous_pods() -> None:
    simulation = promoted(keeping_spec())
    kept = simulation.plan.stable if simulation.plan is not None else None
    previous = simulation.status.previous
    simulation.wait("3m")
    simulation.set_version("1.0.0")  # what `kubectl sluice undo` writes
    plan = simulation.reconcile()
    status = simulation.status
    assert plan.canary_weight == 0
    assert plan.stable == kept, "the kept Deployment is not touched: its Ready pods take the traffic"
    assert plan.canary is not None
    assert plan.canary.replicas == 0
    assert status.phase is Phase.STABLE
    assert previous is not None
    assert status.stable_revision == previous.revision
    assert (status.stable_model, status.stable_serving) == (previous.model, previous.serving)
    assert status.previous is None
    entry = status.history[-1]
    assert (entry.outcome, entry.reason, entry.version) == (Outcome.ROLLED_BACK_AFTER_PROMOTION, "Undone", "2.0.0")
    assert entry.stable_revision == previous.revision
    assert "RolledBackAfterPromotion" in simulation.event_reasons()


def test_undo_after_the_window_is_a_new_canary_of_the_old_revision() -> None:
    simulation = promoted(keeping_spec())
    simulation.wait("10m")
    simulation.reconcile()
    simulation.reconcile()
    simulation.set_version("1.0.0")
    plan = simulation.reconcile()
    assert phase(simulation) is Phase.PROGRESSING
    assert simulation.status.canary_version == "1.0.0"
    assert plan.stable.model.version == "2.0.0"
    assert "RolloutStarted" in simulation.event_reasons()


def test_a_spec_naming_another_revision_within_the_window_ends_it_and_rolls_out_after_the_hand_back() -> None:
    simulation = promoted(keeping_spec())
    simulation.set_version("3.0.0")
    simulation.reconcile()
    assert phase(simulation) is Phase.PROMOTED
    assert "PreviousReleased" in simulation.event_reasons()
    simulation.reconcile()
    assert phase(simulation) is Phase.PROGRESSING
    assert simulation.status.canary_version == "3.0.0"
    assert simulation.status.stable_version == "2.0.0"


def test_a_post_promotion_breach_moves_all_traffic_back_on_its_own_with_a_condition_an_event_and_history() -> None:
    simulation = promoted(keeping_spec(postPromotionAnalysis=True))
    previous = simulation.status.previous
    simulation.check(HEALTHY)
    assert phase(simulation) is Phase.PROMOTED
    plan = simulation.check(ERRORING)
    status = simulation.status
    assert plan.canary_weight == 0
    assert status.phase is Phase.ROLLED_BACK
    assert previous is not None
    assert status.stable_revision == previous.revision
    assert status.canary_version == "2.0.0"
    entry = status.history[-1]
    assert (entry.outcome, entry.reason) == (Outcome.ROLLED_BACK_AFTER_PROMOTION, "PostPromotionAnalysisFailed")
    progressing = find_condition(status.conditions, PROGRESSING)
    assert progressing is not None
    assert (progressing.status, progressing.reason) == ("False", "PostPromotionAnalysisFailed")
    assert "RolledBackAfterPromotion" in simulation.event_reasons()


def test_a_promoted_revision_rolled_back_after_its_promotion_can_be_retried() -> None:
    simulation = promoted(keeping_spec(postPromotionAnalysis=True))
    simulation.check(ERRORING)
    simulation.reconcile(action=Action.RETRY)
    assert phase(simulation) is Phase.PROGRESSING
    assert simulation.status.canary_version == "2.0.0"


def test_post_promotion_checks_read_the_promoted_version_on_the_canary_track() -> None:
    simulation = promoted(keeping_spec(postPromotionAnalysis=True))
    assert analysed_versions(simulation.status) == ("2.0.0", "1.0.0")
    assert simulation.plan is not None
    assert simulation.plan.requeue_after == timedelta(minutes=1)


def test_inconclusive_or_errored_post_promotion_checks_never_move_the_traffic() -> None:
    spec = keeping_spec(postPromotionAnalysis=True)
    spec = spec.model_copy(update={"analysis": spec.analysis.model_copy(update={"max_inconclusive_checks": 1})})
    simulation = promoted(spec)
    for _ in range(3):
        plan = simulation.check(QUIET)
    assert phase(simulation) is Phase.PROMOTED
    assert plan.canary_weight == 100


def test_a_breach_after_the_window_is_ignored() -> None:
    simulation = promoted(keeping_spec(postPromotionAnalysis=True))
    simulation.wait("10m")
    assert check_window(simulation.spec, simulation.status, simulation.now) is None
    observations = replace(simulation.observe(), analysis=ERRORING)
    plan = simulation.follow(decide(simulation.spec, simulation.status, observations, simulation.now))
    assert phase(simulation) is Phase.PROMOTED
    assert simulation.status.history[-1].outcome is Outcome.PROMOTED
    assert plan.canary_weight == 100


def test_without_post_promotion_analysis_no_check_runs_in_the_window() -> None:
    simulation = promoted(keeping_spec())
    simulation.wait("1m")
    assert check_window(simulation.spec, simulation.status, simulation.now) is None


def test_capacity_neutral_keeps_the_previous_revision_at_full_replicas_before_the_traffic_moves() -> None:
    simulation = neutral_at_first_step()
    assert simulation.plan is not None
    assert simulation.plan.stable.replicas < 3
    plan = simulation.check(HEALTHY)
    assert phase(simulation) is Phase.PROMOTING
    assert (plan.stable.replicas, plan.canary.replicas if plan.canary else 0) == (3, 3)
    plan = simulation.reconcile()
    assert phase(simulation) is Phase.PROMOTED
    assert plan.stable.replicas == 3
    assert plan.canary is not None
    assert plan.canary.replicas == 3


def test_a_promotion_whose_canary_never_fills_up_rolls_back() -> None:
    simulation = neutral_at_first_step()
    simulation.canary_starts = False
    simulation.check(HEALTHY)
    simulation.canary = replace(simulation.canary, progress_deadline_exceeded=True)
    simulation.reconcile()
    assert phase(simulation) is Phase.ROLLED_BACK
    assert simulation.status.history[-1].reason == "PromotionFailed"


def test_keep_previous_is_the_duration_the_kept_pods_live() -> None:
    simulation = promoted(keeping_spec(keepPrevious="90s"))
    assert simulation.status.previous is not None
    assert simulation.status.previous.until - simulation.now == parse_duration("90s")


def test_keep_previous_without_a_gateway_is_an_invalid_spec() -> None:
    spec = make_spec("1.0.0", rollout={"keepPrevious": "10m"})
    assert validation.problems("iris", spec, "image") == [
        "spec.rollout.keepPrevious needs spec.traffic.gateway: only an HTTPRoute keeps Ready pods at weight 0"
    ]


def test_keep_previous_with_autoscaling_is_an_invalid_spec_rather_than_a_capacity_drop() -> None:
    rollout = {"steps": [50], "keepPrevious": "10m"}
    spec = make_spec("1.0.0", traffic=GATEWAY, rollout=rollout, autoscaling={"minReplicas": 2, "maxReplicas": 10})
    assert validation.problems("iris", spec, "image") == [validation.KEEP_PREVIOUS_WITH_AUTOSCALING]


def test_removing_keep_previous_within_the_window_ends_it_with_the_traffic_where_it_is() -> None:
    simulation = promoted(keeping_spec())
    wire = simulation.spec.to_wire()
    del wire["rollout"]["keepPrevious"]
    simulation.spec = ModelDeploymentSpec.model_validate(wire)
    plan = simulation.reconcile()
    assert plan.canary_weight == 100
    assert plan.canary is not None
    assert plan.canary.replicas == 3, "the pods that serve stay until the stable Deployment has the revision"
    assert plan.stable.model.version == "2.0.0"
    plan = simulation.reconcile()
    assert phase(simulation) is Phase.STABLE
    assert plan.canary_weight == 0
