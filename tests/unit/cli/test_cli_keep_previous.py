"""The CLI's views of rollout.keepPrevious: status and history name the kept revision and until when; `undo`
within the window returns to it (and says the traffic moves back at once); a promotion kept is healthy."""

from __future__ import annotations

from datetime import timedelta

from sluice.api.v1alpha1 import ModelDeployment
from sluice.cli.checks import RolloutState, rollout_state
from sluice.cli.history import render_history
from sluice.cli.render import render_status
from sluice.cli.revisions import default_revision, kept_effect
from unit.core.support import HEALTHY, at_first_step, make_spec

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}


def kept_promotion() -> ModelDeployment:
    """2.0.0 promoted, the pods of 1.0.0 (revision 1) kept for ten minutes."""
    rollout = {"steps": [50], "interval": "1m", "keepPrevious": "10m"}
    simulation = at_first_step(make_spec("1.0.0", traffic=GATEWAY, rollout=rollout))
    simulation.check(HEALTHY)
    simulation.reconcile()
    metadata = {"name": "fraud", "namespace": "ml", "generation": simulation.generation}
    return ModelDeployment(metadata=metadata, spec=simulation.spec, status=simulation.status)


def test_status_and_history_show_the_kept_revision_and_until_when() -> None:
    md = kept_promotion()
    previous = md.status.previous
    assert previous is not None
    now = previous.since + timedelta(minutes=4)

    status = render_status(md, [], now)
    history = render_history(md, now)

    assert "Previous:" in status
    assert "revision 1 (1.0.0) kept for 6m more" in status
    assert previous.until.isoformat() in history


def test_undo_within_the_window_returns_to_the_kept_revision_and_says_the_traffic_moves_back_at_once() -> None:
    md = kept_promotion()

    target = default_revision(md)

    assert target is not None
    assert target.ref.number == 1
    effect = kept_effect(md, target.ref.hash)
    assert effect is not None
    assert "all traffic moves back at once" in effect


def test_a_kept_promotion_is_healthy() -> None:
    md = kept_promotion()
    md.status.observed_generation = md.metadata["generation"]

    assert rollout_state(md) is RolloutState.HEALTHY
