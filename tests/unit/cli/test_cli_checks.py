"""The plugin's pure state checks: which action each state allows, the state `status` reports, undo's target."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.api.v1alpha1 import Action
from sluice.cli.base import CliError, ExitCode
from sluice.cli.checks import (
    STATE_EXIT_CODES,
    RolloutState,
    check_action,
    check_pause,
    check_resume,
    rollout_state,
    undo_target,
)
from unit.cli.test_cli_render import PROGRESSING, make_md, model, stamp

ROLLED_BACK = {
    "phase": "RolledBack",
    "stableVersion": "1.0.0",
    "stableModel": model("1.0.0"),
    "canaryVersion": "2.0.0",
    "history": [
        {"version": "2.0.0", "outcome": "RolledBack", "startedAt": stamp(600), "finishedAt": stamp(300),
         "reason": "AnalysisFailed", "model": model("2.0.0"), "stableModel": model("1.0.0")},
    ],
}  # fmt: skip
STABLE_AFTER_TWO_PROMOTIONS = {
    "phase": "Stable",
    "stableVersion": "3.0.0",
    "stableModel": model("3.0.0"),
    "history": [
        {"version": "2.0.0", "outcome": "Promoted", "startedAt": stamp(900), "finishedAt": stamp(800),
         "reason": "Promoted", "model": model("2.0.0"), "stableModel": model("1.0.0")},
        {"version": "2.5.0", "outcome": "Superseded", "startedAt": stamp(700), "finishedAt": stamp(650),
         "reason": "Superseded", "stableModel": model("2.0.0")},
        {"version": "3.0.0", "outcome": "Promoted", "startedAt": stamp(650), "finishedAt": stamp(600),
         "reason": "Promoted", "model": model("3.0.0"), "stableModel": model("2.0.0")},
    ],
}  # fmt: skip


def refusal(check: Any, *args: Any) -> str:
    with pytest.raises(CliError) as raised:
        check(*args)
    assert raised.value.code is ExitCode.WRONG_STATE
    return raised.value.message


def with_phase(phase: str, **extra: Any) -> dict[str, Any]:
    return {**PROGRESSING, "phase": phase, **extra}


@pytest.mark.parametrize("action", list(Action))
def test_actions_allowed_in_their_states_pass(action: Action) -> None:
    allowed = {
        Action.PROMOTE: with_phase("Progressing"),
        Action.PROMOTE_FULL: with_phase("Progressing", currentStep=None),
        Action.ABORT: with_phase("Paused"),
        Action.RETRY: ROLLED_BACK,
    }
    check_action(make_md(allowed[action]), action)


@pytest.mark.parametrize(
    ("action", "status", "message"),
    [
        (Action.PROMOTE, {"phase": "Stable"}, "no rollout in progress (phase Stable); nothing to promote"),
        (Action.PROMOTE, with_phase("Progressing", currentStep=None), "canary 2.0.0 is not ready yet"),
        (
            Action.PROMOTE_FULL,
            with_phase("Paused"),
            "the rollout of 2.0.0 is paused; to promote: `kubectl sluice resume fraud -n ml`",
        ),
        (Action.PROMOTE_FULL, with_phase("Promoting"), "2.0.0 is already being promoted"),
        (Action.ABORT, {"phase": "Stable"}, "no rollout to abort (phase Stable)"),
        (Action.ABORT, ROLLED_BACK, "no rollout to abort (phase RolledBack)"),
        (Action.RETRY, with_phase("Progressing"), "nothing to retry: the last rollout was not rolled back"),
        (Action.RETRY, {"phase": "Stable"}, "nothing to retry"),
    ],
)
def test_actions_in_the_wrong_state_are_refused_with_the_reason(
    action: Action, status: dict[str, Any], message: str
) -> None:
    assert refusal(check_action, make_md(status), action).startswith(message)


def test_a_request_waits_for_the_operator_to_handle_the_previous_one_and_says_how_to_clear_it() -> None:
    pending = make_md(PROGRESSING, annotations={"sluice.dev/action": "promote", "sluice.dev/action-id": "a1"})
    assert refusal(check_action, pending, Action.PROMOTE_FULL) == (
        "the previous request promote (id a1) is not handled yet (is the operator running?); nothing was written. "
        "`kubectl sluice abort fraud -n ml` replaces it, or drop it with "
        "`kubectl annotate modeldeployment fraud -n ml sluice.dev/action- sluice.dev/action-id-`"
    )
    assert "has no status yet" in refusal(check_action, make_md({}), Action.ABORT)
    handled = make_md(
        {**PROGRESSING, "lastHandledActionId": "a1"},
        annotations={"sluice.dev/action": "promote", "sluice.dev/action-id": "a1"},
    )
    check_action(handled, Action.ABORT)


def test_an_abort_overrides_a_stale_unhandled_request() -> None:
    stale = make_md(PROGRESSING, annotations={"sluice.dev/action": "promote", "sluice.dev/action-id": "a1"})

    check_action(stale, Action.ABORT)


def test_pause_and_resume_are_idempotent_and_leave_spec_paused_to_its_owner() -> None:
    assert check_pause(make_md(PROGRESSING)) is True
    assert check_pause(make_md({"phase": "Stable"})) is True
    assert check_pause(make_md(PROGRESSING, annotations={"sluice.dev/paused": "true"})) is False
    assert check_pause(make_md(with_phase("Paused"), paused=True)) is False
    assert "being promoted" in refusal(check_pause, make_md(with_phase("Promoting")))
    assert check_resume(make_md(PROGRESSING)) is False
    assert check_resume(make_md(with_phase("Paused"), annotations={"sluice.dev/paused": "true"})) is True
    assert refusal(check_resume, make_md(with_phase("Paused"), paused=True)) == (
        "paused by spec.paused, which resume leaves to the manifest's owner: set spec.paused to false where the "
        "manifest is kept (for a try-out: "
        """`kubectl patch modeldeployment fraud -n ml --type merge -p '{"spec":{"paused":false}}'`)"""
    )


def test_promote_of_a_rollout_paused_by_the_spec_names_the_spec_as_the_fix_not_resume() -> None:
    paused = make_md(with_phase("Paused"), paused=True)

    message = refusal(check_action, paused, Action.PROMOTE_FULL)

    assert message.startswith("the rollout of 2.0.0 is paused by spec.paused; to promote: set spec.paused to false")
    assert "kubectl sluice resume" not in message


@pytest.mark.parametrize(
    ("status", "generation", "annotations", "state"),
    [
        ({"phase": "Stable"}, 2, {}, RolloutState.HEALTHY),
        ({"phase": "Stable"}, 3, {}, RolloutState.PROGRESSING),  # the operator has not seen the new spec yet
        (ROLLED_BACK, 2, {}, RolloutState.DEGRADED),
        (ROLLED_BACK, 2, {"sluice.dev/action": "retry", "sluice.dev/action-id": "r1"}, RolloutState.PROGRESSING),
        (PROGRESSING, 2, {}, RolloutState.PROGRESSING),
        (with_phase("Promoting"), 2, {}, RolloutState.PROGRESSING),
        (with_phase("Paused"), 2, {}, RolloutState.PAUSED),
        ({}, 2, {}, RolloutState.PROGRESSING),
        (
            {"phase": "Stable", "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec",
                                                "lastTransitionTime": stamp(5)}]},
            2, {}, RolloutState.DEGRADED,
        ),
        (  # a first deploy whose pods never started, past its progress deadline
            {"phase": "Initializing", "conditions": [{"type": "Stalled", "status": "True",
                                                      "reason": "ProgressDeadlineExceeded",
                                                      "lastTransitionTime": stamp(5)}]},
            2, {}, RolloutState.DEGRADED,
        ),
    ],
)  # fmt: skip
def test_rollout_state_and_its_exit_code(
    status: dict[str, Any], generation: int, annotations: dict[str, str], state: RolloutState
) -> None:
    md = make_md(status, annotations=annotations)
    md.metadata["generation"] = generation

    assert rollout_state(md) is state
    assert STATE_EXIT_CODES[state] == {"Healthy": 0, "Degraded": 1, "Progressing": 4, "Paused": 4}[state]


def test_undo_by_default_during_a_rollout_or_after_a_rollback_returns_to_the_stable_model() -> None:
    assert undo_target(make_md(PROGRESSING), None).version == "1.0.0"
    assert undo_target(make_md(ROLLED_BACK), None).uri == "s3://models/fraud/1.0.0/model.onnx"


def test_undo_by_default_between_rollouts_returns_to_the_previous_stable() -> None:
    md = make_md(STABLE_AFTER_TWO_PROMOTIONS, model=model("3.0.0"))

    assert undo_target(md, None).version == "2.0.0"
    assert undo_target(md, "1.0.0").uri == "s3://models/fraud/1.0.0/model.onnx"


def test_undo_refuses_versions_without_a_recorded_model_and_the_current_one() -> None:
    md = make_md(STABLE_AFTER_TWO_PROMOTIONS, model=model("3.0.0"))

    assert refusal(undo_target, md, "2.5.0") == (
        "version 2.5.0 is not in the history (versions with a recorded model: 1.0.0, 2.0.0)"
    )
    assert refusal(undo_target, md, "3.0.0") == "spec.model.version is already 3.0.0"
    first_deploy = make_md({"phase": "Stable", "stableVersion": "2.0.0", "stableModel": model("2.0.0")})
    assert "no previous stable version recorded" in refusal(undo_target, first_deploy, None)
