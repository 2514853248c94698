"""Revisions: a change of anything that shapes a serving pod (spec.model or spec.serving) is rolled out as a canary,
the stable track keeps its revision until promotion, and the history says what each revision changed."""

from __future__ import annotations

from sluice.api.v1alpha1 import ModelDeploymentStatus, Outcome, Phase, ServingSpec
from sluice.core.children import Owner, ServingDefaults, Track
from sluice.core.plan import Plan
from sluice.core.rollout.revisions import changes, revision_hash, serving_record
from sluice.core.rollout.workloads import model_status
from sluice.core.workloads import REVISION_ANNOTATION, deployment
from unit.core.support import ERRORING, HEALTHY, Simulation, deployed, make_spec

FAULTY_ENV = {"env": [{"name": "SLUICE_FAULT_ERROR_RATE", "value": "0.5"}]}
DEFAULTS = ServingDefaults(image="example.com/serving:1")
OWNER = Owner(name="fraud", namespace="ml", uid="u")


def stable_template(simulation: Simulation, plan: Plan) -> dict[str, object]:
    manifest = deployment(OWNER, simulation.spec, Track.STABLE, plan.stable, DEFAULTS)
    template: dict[str, object] = manifest["spec"]["template"]
    return template


def test_an_env_only_change_starts_a_canary_and_leaves_the_stable_pods_as_they_were() -> None:
    simulation = deployed(make_spec("1.0.0"))
    before = stable_template(simulation, simulation.reconcile())

    simulation.set_serving(FAULTY_ENV)
    plan = simulation.reconcile()

    assert plan.status.phase is Phase.PROGRESSING
    assert plan.status.canary_version == "1.0.0"
    assert plan.canary is not None
    assert plan.canary.serving == ServingSpec.model_validate(FAULTY_ENV)
    assert stable_template(simulation, plan) == before
    assert plan.status.canary_revision is not None
    assert plan.status.stable_revision is not None
    assert (plan.status.stable_revision.number, plan.status.canary_revision.number) == (1, 2)
    started = next(event.message for event in plan.events if event.reason == "RolloutStarted")
    assert started.startswith("rolling out revision 2 of 1.0.0 (env SLUICE_FAULT_ERROR_RATE added)")
    assert "0.5" not in started


def test_an_env_only_canary_that_fails_its_checks_is_rolled_back_to_the_whole_previous_revision() -> None:
    simulation = deployed(make_spec("1.0.0", rollout={"steps": [50], "interval": "1m"}))
    simulation.set_serving(FAULTY_ENV)
    simulation.reconcile()
    simulation.reconcile()

    plan = simulation.check(ERRORING)

    assert plan.status.phase is Phase.ROLLED_BACK
    assert plan.stable.serving is None
    assert plan.status.stable_serving is None
    entry = plan.status.history[-1]
    assert entry.outcome is Outcome.ROLLED_BACK
    assert entry.revision is not None
    assert entry.revision.number == 2
    assert entry.revision.changes == "env SLUICE_FAULT_ERROR_RATE added"
    assert entry.serving == serving_record(ServingSpec.model_validate(FAULTY_ENV))
    assert entry.stable_revision is not None
    assert entry.stable_revision.number == 1


def test_an_image_only_change_that_passes_its_checks_becomes_the_stable_revision() -> None:
    simulation = deployed(make_spec("1.0.0", rollout={"steps": [50], "interval": "1m"}))
    simulation.set_serving({"image": "example.com/serving:2"})
    simulation.reconcile()
    simulation.reconcile()
    simulation.check(HEALTHY)

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.STABLE
    assert plan.stable.serving == ServingSpec(image="example.com/serving:2")
    assert plan.status.stable_revision is not None
    assert plan.status.stable_revision.number == 2
    assert plan.status.stable_revision.changes == "image default → example.com/serving:2"
    assert plan.status.history[-1].outcome is Outcome.PROMOTED


def test_a_version_only_change_is_announced_as_before_revisions() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.set_version("2.0.0")

    plan = simulation.reconcile()

    started = next(event.message for event in plan.events if event.reason == "RolloutStarted")
    assert started.startswith("rolling out 2.0.0: steps")
    assert plan.status.canary_revision is not None
    assert plan.status.canary_revision.changes == "model 1.0.0 → 2.0.0"


def test_setting_the_serving_spec_back_mid_rollout_ends_it_as_reverted_to_stable() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.set_serving(FAULTY_ENV)
    simulation.reconcile()
    simulation.set_serving(None)

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.STABLE
    assert plan.status.history[-1].reason == "RevertedToStable"
    assert plan.status.history[-1].model is None
    assert plan.status.history[-1].message == "rollout of 1.0.0 ended: the spec set back to stable revision 1"


def test_a_status_written_before_revisions_is_adopted_without_a_rollout() -> None:
    spec = make_spec("1.0.0", serving={"image": "example.com/serving:7"})
    old = deployed(spec).status.model_copy(update={"stable_revision": None, "stable_serving": None})
    simulation = Simulation(spec, status=ModelDeploymentStatus.model_validate(old.model_dump()))
    simulation.stable = deployed(spec).stable

    plan = simulation.reconcile()

    assert plan.status.phase is Phase.STABLE
    assert [event.reason for event in plan.events] == []
    assert plan.status.stable_serving == spec.serving
    assert plan.status.stable_revision is not None
    assert plan.status.stable_revision.hash == revision_hash(model_status(spec.model), spec.serving)


def test_the_deployment_carries_its_revision_hash_outside_the_pod_template() -> None:
    simulation = deployed(make_spec("1.0.0"))
    plan = simulation.reconcile()

    manifest = deployment(OWNER, simulation.spec, Track.STABLE, plan.stable, DEFAULTS)

    assert plan.status.stable_revision is not None
    assert manifest["metadata"]["annotations"][REVISION_ANNOTATION] == plan.status.stable_revision.hash
    assert REVISION_ANNOTATION not in manifest["spec"]["template"]["metadata"]["annotations"]


def test_the_summary_names_changed_variables_but_never_their_values() -> None:
    model = model_status(make_spec("1.0.0").model)
    old = ServingSpec.model_validate({"env": [{"name": "TOKEN", "value": "hunter2"}, {"name": "GONE", "value": "x"}]})
    new = ServingSpec.model_validate(
        {
            "env": [{"name": "TOKEN", "value": "swordfish"}, {"name": "NEW", "value": "y"}],
            "nodeSelector": {"gpu": "a100"},
        }
    )

    summary = changes(model, old, model, new)

    assert summary == "env NEW added, env GONE removed, env TOKEN changed, nodeSelector changed"
    assert "hunter2" not in summary
    assert "swordfish" not in summary
