"""`undo --to-revision N`: the revisions a status records in full, and the patch that returns to one."""

from __future__ import annotations

import pytest

from sluice.api.v1alpha1 import ModelDeployment, ServingSpec
from sluice.cli.base import CliError, ExitCode
from sluice.cli.revisions import default_revision, known_revisions, replacing, revision_patch, revision_target
from unit.core.support import ERRORING, HEALTHY, deployed, make_spec

FAULTY = {"image": "example.com/serving:2", "env": [{"name": "SLUICE_FAULT_ERROR_RATE", "value": "0.5"}]}


def three_revisions() -> ModelDeployment:
    """Revision 1 deployed, 2 (image and a fault env) rolled back, 3 (image only) promoted."""
    simulation = deployed(make_spec("1.0.0", rollout={"steps": [50], "interval": "1m"}))
    for serving, reading in ((FAULTY, ERRORING), ({"image": "example.com/serving:2"}, HEALTHY)):
        simulation.set_serving(serving)
        simulation.reconcile()
        simulation.reconcile()
        simulation.check(reading)
        simulation.reconcile()
    return ModelDeployment(metadata={"name": "fraud"}, spec=simulation.spec, status=simulation.status)


def test_every_revision_in_the_history_is_known_with_its_model_and_serving_spec() -> None:
    revisions = known_revisions(three_revisions())

    assert sorted(revisions) == [1, 2, 3]
    assert revisions[1].serving is None
    assert revisions[2].serving == ServingSpec.model_validate(FAULTY)
    assert revisions[3].serving == ServingSpec(image="example.com/serving:2")
    assert {revision.model.version for revision in revisions.values()} == {"1.0.0"}


def test_undo_to_the_first_revision_clears_every_serving_field_it_did_not_have() -> None:
    md = three_revisions()

    patch = revision_patch(md, revision_target(md, 1))

    assert patch["spec"]["serving"] is None
    assert patch["spec"]["model"]["version"] == "1.0.0"


def test_undo_to_a_revision_replaces_the_serving_spec_rather_than_merging_into_it() -> None:
    md = three_revisions()

    patch = revision_patch(md, revision_target(md, 2))

    assert patch["spec"]["serving"] == {
        "image": "example.com/serving:2",
        "env": [{"name": "SLUICE_FAULT_ERROR_RATE", "value": "0.5"}],
    }
    assert replacing({"a": 1, "b": {"c": 1, "d": 2}}, {"b": {"c": 3}}) == {"a": None, "b": {"c": 3, "d": None}}


def test_undo_to_a_revision_the_history_does_not_record_is_refused_with_the_ones_it_does() -> None:
    with pytest.raises(CliError) as refused:
        revision_target(three_revisions(), 7)
    assert refused.value.code == ExitCode.WRONG_STATE
    assert "revisions that are: 1, 2, 3" in str(refused.value)


def test_a_plain_undo_between_rollouts_returns_to_the_revision_the_last_promotion_replaced() -> None:
    revision = default_revision(three_revisions())

    assert revision is not None
    assert (revision.ref.number, revision.serving) == (1, None)


def test_a_plain_undo_during_an_env_only_rollout_returns_to_the_whole_stable_revision() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.set_serving(FAULTY)
    simulation.reconcile()
    md = ModelDeployment(metadata={"name": "fraud"}, spec=simulation.spec, status=simulation.status)

    revision = default_revision(md)

    assert revision is not None
    assert revision.ref.number == 1
    assert revision_patch(md, revision)["spec"]["serving"] is None
