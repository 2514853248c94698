"""Properties of `decide` over random sequences of time, readings, actions, pauses, version and serving changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.api.v1alpha1 import (
    Action,
    Capacity,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Outcome,
    Phase,
)
from sluice.cli.revisions import default_revision, revision_patch
from sluice.core.plan import (
    AnalysisReading,
    MirrorSupport,
    Observations,
    ParentGateway,
    Plan,
    ShadowReading,
    ValidationReading,
)
from sluice.core.rollout import ROLLOUT_PHASES, decide
from sluice.core.rollout.mirror import mirror_allowed
from sluice.core.rollout.revisions import revision_hash
from unit.core.support import ERRORING, HEALTHY, MIRRORING_GATEWAY, QUIET, UNREACHABLE, Simulation, make_spec

VERSIONS = ("1.0.0", "2.0.0", "3.0.0")
SERVINGS = (
    None,
    {"env": [{"name": "SLUICE_FAULT_ERROR_RATE", "value": "0.5"}]},
    {"image": "example.com/serving:2"},
    {"image": "example.com/serving:2", "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
)

readings = st.one_of(
    st.sampled_from([HEALTHY, HEALTHY, ERRORING, QUIET, UNREACHABLE, AnalysisReading()]),
    st.builds(
        AnalysisReading,
        request_count=st.none() | st.integers(0, 200).map(float),
        error_rate=st.none() | st.floats(0, 0.1),
        latency_p99_seconds=st.none() | st.floats(0, 1),
        error=st.none() | st.just("timeout"),
    ),
)


@st.composite
def specs(draw: st.DrawFn) -> ModelDeploymentSpec:
    steps = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=4)))
    wire: dict[str, Any] = {
        "replicas": draw(st.integers(0, 4)),
        "rollout": {
            "steps": steps,
            "interval": "1m",
            "progressDeadline": "5m",
            "capacity": draw(st.sampled_from([None, "Surge", "Neutral"])),
        },
        "analysis": {
            "maxFailedChecks": draw(st.integers(1, 3)),
            "maxInconclusiveChecks": draw(st.integers(1, 3)),
            "onInconclusive": draw(st.sampled_from(["Rollback", "Hold"])),
            "maxConsecutiveErrors": draw(st.integers(1, 3)),
        },
    }
    if draw(st.booleans()):
        wire["traffic"] = {"gateway": {"parentRefs": [{"name": "public"}]}}
        if draw(st.booleans()):
            wire["validation"] = {"uri": "https://data.example.com/holdout.csv", "min": 0.85}
        if draw(st.booleans()):
            checks = draw(st.integers(1, 3))
            wire["rollout"]["shadow"] = {"percent": draw(st.integers(1, 100)), "checks": checks, "minAgreement": 0.9}
        if draw(st.booleans()):
            wire["rollout"]["match"] = [{"headers": [{"name": "x-tester", "value": "yes"}]}]
            if draw(st.booleans()):
                wire["rollout"]["steps"] = [0, *steps[-3:]]
    return make_spec(VERSIONS[0], **wire)


gate_readings = st.tuples(
    st.sampled_from(
        [
            ValidationReading(score=0.95, samples=100),
            ValidationReading(score=0.5, samples=100),
            ValidationReading(error="connection refused"),
        ]
    ),
    st.builds(
        ShadowReading,
        comparisons=st.none() | st.integers(0, 400).map(float),
        agreement=st.none() | st.floats(0, 1),
        error=st.none() | st.just("timeout"),
    ),
)


@dataclass(frozen=True)
class Wait:
    seconds: int


@dataclass(frozen=True)
class Check:
    """Wait until the next check is due (when one is scheduled), then reconcile with the reading."""

    reading: AnalysisReading


@dataclass(frozen=True)
class Request:
    action: Action


@dataclass(frozen=True)
class SetPaused:
    paused: bool


@dataclass(frozen=True)
class SetVersion:
    version: str


@dataclass(frozen=True)
class SetServing:
    serving: dict[str, Any] | None


@dataclass(frozen=True)
class Undo:
    """`kubectl sluice undo`: the spec set back to the revision it returns to (the stable one during a rollout,
    the one the last promotion replaced between rollouts)."""


@dataclass(frozen=True)
class SetCanaryStarts:
    starts: bool


@dataclass(frozen=True)
class SetGateReadings:
    """What the validation gate's runs and the shadow checks read from now on."""

    validation: ValidationReading
    shadow: ShadowReading


@dataclass(frozen=True)
class SetGateways:
    """What the adapter reads about the route's parent Gateways from now on (RequestMirror support)."""

    gateways: tuple[ParentGateway, ...] | None


gateway_readings = st.sampled_from(
    [
        MIRRORING_GATEWAY,
        MIRRORING_GATEWAY,
        None,
        (ParentGateway("default/public", "traefik", MirrorSupport.NOT_LISTED),),
        (ParentGateway("default/public", None, MirrorSupport.FORBIDDEN),),
        (*MIRRORING_GATEWAY, ParentGateway("edge/public", "silent", MirrorSupport.NOT_PUBLISHED)),
    ]
)

other_moves = st.one_of(
    st.builds(SetGateways, gateway_readings),
    st.builds(Wait, st.integers(0, 400)),
    st.builds(Request, st.sampled_from(list(Action))),
    st.builds(SetPaused, st.booleans()),
    st.builds(SetVersion, st.sampled_from([*VERSIONS, "2.0.0", "2.0.0"])),  # mostly re-applying the same
    st.builds(SetServing, st.sampled_from(SERVINGS)),
    st.builds(SetCanaryStarts, st.booleans()),
    gate_readings.map(lambda readings: SetGateReadings(*readings)),
)
moves = st.tuples(
    gate_readings.map(lambda readings: SetGateReadings(*readings)),
    st.lists(st.one_of(st.builds(Check, readings), other_moves), min_size=3, max_size=25),
).map(lambda drawn: [drawn[0], *drawn[1]])
"""Half of the moves are checks, so that rollouts get far. The first sets what the gates read (see `drive`)."""


@dataclass(frozen=True)
class Decision:
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    """The status decided on."""
    observations: Observations
    now: datetime
    plan: Plan


def drive(spec: ModelDeploymentSpec, sequence: list[Any]) -> list[Decision]:
    """Deploy, start a rollout of 2.0.0, then run the moves; each move ends with a decision whose plan the
    simulated cluster follows."""
    simulation = Simulation(spec)
    decisions = []
    first = sequence[:1] if sequence and isinstance(sequence[0], SetGateReadings) else []
    for move in [*first, Wait(0), Wait(0), SetVersion("2.0.0"), Wait(0), *sequence[len(first) :]]:
        reading, action = None, None
        match move:
            case Wait(seconds):
                simulation.wait(timedelta(seconds=seconds))
            case Check(reading_to_pass):
                if simulation.plan is not None and simulation.plan.requeue_after is not None:
                    simulation.wait(simulation.plan.requeue_after)
                reading = reading_to_pass
            case Request(requested):
                action = requested
            case SetPaused(paused):
                simulation.paused = paused
            case SetVersion(version):
                simulation.set_version(version)
            case SetServing(serving):
                simulation.set_serving(serving)
            case SetCanaryStarts(starts):
                simulation.canary_starts = starts
            case SetGateReadings(validation, shadow):
                simulation.validation, simulation.shadow = validation, shadow
            case SetGateways(gateways):
                simulation.gateways = gateways
            case Undo():
                undo(simulation)
        observations = simulation.observe(reading, action)
        plan = decide(simulation.spec, simulation.status, observations, simulation.now)
        decisions.append(Decision(simulation.spec, simulation.status, observations, simulation.now, plan))
        simulation.follow(plan)
    return decisions


def undo(simulation: Simulation) -> None:
    """What `kubectl sluice undo` writes, when the status records the revision it returns to."""
    md = ModelDeployment(spec=simulation.spec, status=simulation.status)
    target = default_revision(md)
    if target is not None:
        wire = {**simulation.spec.to_wire(), **revision_patch(md, target)["spec"]}
        wire["serving"] = target.serving.to_wire() if target.serving else None
        simulation.spec = ModelDeploymentSpec.model_validate(wire)
        simulation.generation += 1


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(specs(), moves)
def test_deciding_again_on_the_plan_changes_nothing(spec: ModelDeploymentSpec, sequence: list[Any]) -> None:
    assert_deciding_again_changes_nothing(drive(spec, sequence))


def assert_deciding_again_changes_nothing(decisions: list[Decision]) -> None:
    for decision in decisions:
        plan = decision.plan
        again = decide(decision.spec, plan.status, decision.observations, decision.now)
        assert again.status == plan.status
        assert (again.stable, again.canary, again.canary_weight, again.canary_matches, again.requeue_after) == (
            plan.stable,
            plan.canary,
            plan.canary_weight,
            plan.canary_matches,
            plan.requeue_after,
        )
        assert again.events == ()


@FAST
@given(specs(), moves)
def test_the_canary_weight_never_exceeds_the_current_step_and_never_rises_on_a_failed_check(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    steps = spec.rollout.steps
    for decision in drive(spec, sequence):
        status = decision.plan.status
        if status.current_step is None:
            assert decision.plan.canary_weight == 0
        else:
            assert decision.plan.canary_weight <= steps[status.current_step]
        if status.phase not in ROLLOUT_PHASES:
            assert decision.plan.canary_weight == 0
        if any(event.reason == "CheckFailed" for event in decision.plan.events):
            assert decision.plan.canary_weight <= decision.status.canary_weight


@FAST
@given(specs(), moves)
def test_a_rollback_always_ends_with_the_canary_at_weight_zero_and_no_replicas(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    """(Capacity Neutral: the canary keeps only the pods stable still lacks, see the capacity-neutral property.)"""
    for decision in drive(spec, sequence):
        plan = decision.plan
        if plan.status.phase is Phase.ROLLED_BACK:
            assert plan.canary_weight == 0
            assert plan.canary is not None
            lacking = max(0, spec.replicas - decision.observations.stable.ready_replicas)
            neutral = spec.rollout.capacity is Capacity.NEUTRAL
            assert plan.canary.replicas <= (lacking if neutral else 0)


@FAST
@given(specs(), moves)
def test_nothing_is_promoted_without_a_passed_check_per_step_unless_a_person_promotes(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    promoted_by_hand = False
    promotions_started = 0
    decisions = drive(spec, sequence)
    for decision in decisions:
        for event in decision.plan.events:
            if event.reason == "RolloutStarted":
                promoted_by_hand = False
            elif event.reason == "ManualPromotion":
                promoted_by_hand = True
            elif event.reason == "Promoting":
                promotions_started += 1
                assert promoted_by_hand or decision.plan.status.passed_checks >= len(spec.rollout.steps)
    history = decisions[-1].plan.status.history
    assert sum(entry.outcome is Outcome.PROMOTED for entry in history) <= promotions_started


@FAST
@given(specs(), moves)
def test_the_stable_workload_always_keeps_its_replicas(spec: ModelDeploymentSpec, sequence: list[Any]) -> None:
    if spec.rollout.capacity is Capacity.NEUTRAL:
        return  # its canary takes stable's pods: see the capacity-neutral property
    for decision in drive(spec, sequence):
        assert decision.plan.stable.replicas == decision.spec.replicas
        if decision.spec.replicas > 0:
            assert decision.plan.stable.replicas > 0


@FAST
@given(specs(), moves)
def test_the_canary_gets_no_live_weight_before_its_gates_pass_and_is_mirrored_only_through_gateways_that_mirror(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    highest_weight = 0
    """The highest canary weight planned since the last rollout started."""
    for decision in drive(spec, sequence):
        plan, status = decision.plan, decision.plan.status
        if any(event.reason == "RolloutStarted" for event in plan.events):
            highest_weight = 0
        highest_weight = max(highest_weight, plan.canary_weight)
        if status.phase in (Phase.VALIDATING, Phase.SHADOWING):
            assert plan.canary_weight == 0
            assert status.current_step is None
        if plan.mirror_percent:
            assert mirror_allowed(decision.observations.gateways)
            assert status.phase is Phase.SHADOWING
            assert spec.rollout.shadow is not None
            assert plan.mirror_percent == spec.rollout.shadow.percent
        gate_failed = status.history and status.history[-1].reason in ("ValidationFailed", "ShadowAnalysisFailed")
        if gate_failed and any(event.reason == "RolledBack" for event in plan.events):
            assert highest_weight == 0, "a canary failing a gate never had live weight"
        if spec.validation is not None and status.current_step is not None:
            assert status.validation is not None
            assert status.validation.passed
            assert status.validation.version == status.canary_version


@FAST
@given(specs(), moves)
def test_matched_requests_reach_only_a_live_canary_with_pods_from_its_first_step_until_its_rollout_ends(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    for decision in drive(spec, sequence):
        plan, status = decision.plan, decision.plan.status
        if not plan.canary_matches:
            continue
        assert decision.spec.rollout.match is not None
        assert plan.canary_matches == tuple(decision.spec.rollout.match)
        assert status.current_step is not None, "past its gates, ready"
        assert status.phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING)
        assert plan.canary is not None
        assert plan.canary.replicas > 0 or decision.spec.replicas == 0


def stable_revision(plan: Plan) -> str:
    return revision_hash(plan.stable.model, plan.stable.serving)


@FAST
@given(specs(), moves)
def test_no_revision_reaches_the_stable_track_without_passing_its_checks_unless_a_person_promotes(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    decisions = drive(spec, sequence)
    promoted_by_hand = False
    for before, decision in pairwise(decisions):
        plan, status = decision.plan, decision.plan.status
        reasons = [event.reason for event in plan.events]
        if "RolloutStarted" in reasons:
            promoted_by_hand = False
        promoted_by_hand = promoted_by_hand or "ManualPromotion" in reasons
        if before.plan.status.phase is Phase.INITIALIZING:
            continue
        assert status.stable_revision is not None
        if status.stable_revision != before.plan.status.stable_revision:
            assert "Promoted" in reasons, "the recorded stable revision changes only by a promotion"
        if stable_revision(plan) in (stable_revision(before.plan), status.stable_revision.hash):
            continue  # unchanged, or back to the recorded stable revision (a promotion rolled back)
        assert status.phase is Phase.PROMOTING, f"the stable track changed revision in phase {status.phase}"
        assert status.canary_revision is not None
        assert stable_revision(plan) == status.canary_revision.hash
        assert promoted_by_hand or status.passed_checks >= len(spec.rollout.steps)


@FAST
@given(specs(), moves)
def test_a_rollback_restores_exactly_the_revision_that_was_stable_when_the_rollout_started(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    decisions = drive(spec, sequence)
    stable_at_start = stable_revision(decisions[0].plan)
    for before, decision in pairwise(decisions):
        plan = decision.plan
        reasons = [event.reason for event in plan.events]
        if "RolloutStarted" in reasons and before.plan.status.phase is not Phase.PROMOTING:
            stable_at_start = stable_revision(before.plan)
        if "RolledBack" in reasons or "RolloutAborted" in reasons:
            assert stable_revision(plan) == stable_at_start
            assert plan.status.stable_revision is not None
            assert plan.status.stable_revision.hash == stable_at_start
            assert plan.stable.serving == plan.status.stable_serving


@FAST
@given(specs(), moves)
def test_capacity_neutral_never_removes_a_ready_pod_below_replicas_nor_runs_more_than_one_pod_over(
    spec: ModelDeploymentSpec, sequence: list[Any]
) -> None:
    replicas = spec.replicas
    for decision in drive(
        spec.model_copy(update={"rollout": spec.rollout.model_copy(update={"capacity": Capacity.NEUTRAL})}), sequence
    ):
        plan, stable, canary = decision.plan, decision.observations.stable, decision.observations.canary
        canary_planned = plan.canary.replicas if plan.canary is not None else 0
        assert plan.stable.replicas + canary_planned <= replicas + 1
        kept_ready = min(plan.stable.replicas, stable.ready_replicas) + min(canary_planned, canary.ready_replicas)
        assert kept_ready >= min(replicas, stable.ready_replicas + canary.ready_replicas)
        if replicas > 0:
            assert plan.stable.replicas >= 1
