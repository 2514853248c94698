"""`pause`, `resume`, `promote [--full]`, `abort`, `retry`, `undo [--to-version V | --to-revision N]`.

Every command reads the ModelDeployment, checks that the state allows the request (`checks`; nothing is written
otherwise, exit code 3), and writes one JSON merge patch guarded by the resourceVersion it read (re-read and
re-checked on a conflict). How each request reaches the operator:

- promote, promote --full, abort, retry: the `sluice.dev/action` annotation with a new `sluice.dev/action-id`,
  the operator's one-shot request mechanism. `--wait` waits until the operator has handled the id and reports
  whether it acted or refused (status.lastAction).
- pause, resume: the `sluice.dev/paused` annotation, not `spec.paused`. The spec belongs to whoever applies the
  manifest (often a GitOps tool, which would revert an edit, or show drift until someone commits it); the operator
  treats the annotation exactly like `spec.paused`. So `resume` refuses to lift a `spec.paused: true`: that hold
  belongs to the manifest's owner.
- undo: spec.model itself (version, uri, format, digest), since undo means serving another model; this edits
  what a GitOps tool owns, exactly as `kubectl argo rollouts undo` does, and the tool will put its version back
  unless the manifest changes too. `--to-revision N` sets spec.serving back as well (`cli/revisions.py`).
"""

from __future__ import annotations

import argparse
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sluice.api.v1alpha1 import ACTION_ANNOTATION, ACTION_ID_ANNOTATION, PAUSED_ANNOTATION, Action, ModelDeployment
from sluice.cli.base import CliError, Command, ExitCode, add_name_argument, duration_seconds
from sluice.cli.checks import check_action, check_pause, check_resume, undo_target
from sluice.cli.kube import Kube
from sluice.cli.render import paused_by, pending_action, step_text
from sluice.cli.revisions import default_revision, kept_effect, revision_patch, revision_target
from sluice.core.rollout.revisions import revision_hash


def new_action_id() -> str:
    """A request id unique per request: UTC time plus random hex (`kubectl-sluice-20260101T120000Z-3f9a1c`)."""
    return f"kubectl-sluice-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def action_patch(action: Action, action_id: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {ACTION_ANNOTATION: str(action), ACTION_ID_ANNOTATION: action_id}}}


def _wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait until the operator has handled the request; exit code 3 if it refused it",
    )
    parser.add_argument(
        "--timeout",
        type=duration_seconds,
        default=60.0,
        metavar="DURATION",
        help="with --wait: how long, e.g. 90s or 5m (default 1m)",
    )


def wait_for_handling(kube: Kube, name: str, action_id: str, timeout: float) -> ModelDeployment:
    """Until status.lastHandledActionId is `action_id`; CliError(WRONG_STATE) when status.lastAction says the
    operator refused it."""
    deadline = time.monotonic() + timeout
    while True:
        md = kube.get(name)
        if md.status.last_handled_action_id == action_id:
            outcome = md.status.last_action
            if outcome is not None and outcome.id == action_id and not outcome.accepted:
                raise CliError(ExitCode.WRONG_STATE, f"the operator refused the request: {outcome.message}")
            return md
        if time.monotonic() >= deadline:
            raise CliError(
                ExitCode.NOT_FINISHED,
                f"request {action_id} not handled within {timeout:g}s (is the operator running?)",
            )
        time.sleep(0.5)


def _request(args: argparse.Namespace, action: Action, describe: str) -> int:
    kube = Kube.from_args(args)
    action_id = new_action_id()

    def make_patch(md: ModelDeployment) -> dict[str, Any]:
        check_action(md, action)
        return action_patch(action, action_id)

    before, _ = kube.patch_checked(args.name, make_patch)
    print(f"{args.name}: {action} requested (id {action_id}): {describe.format(md=before, step=step_text(before))}")
    if (replaced := pending_action(before)) is not None:
        print(f"{args.name}: it replaces the unhandled {replaced[0]} request (id {replaced[1]}), which will not run")
    if args.wait:
        after = wait_for_handling(kube, args.name, action_id, args.timeout)
        print(f"{args.name}: handled; phase {after.status.phase}, canary weight {after.status.canary_weight}%")
    return ExitCode.OK


def _promote_arguments(parser: argparse.ArgumentParser) -> None:
    add_name_argument(parser)
    parser.add_argument(
        "--full",
        action="store_true",
        help="promote now, skipping every remaining step (also before the canary is ready)",
    )
    _wait_arguments(parser)


def run_promote(args: argparse.Namespace) -> int:
    if args.full:
        return _request(
            args, Action.PROMOTE_FULL, "{md.status.canary_version} is promoted now, skipping the steps left"
        )
    return _request(
        args,
        Action.PROMOTE,
        "canary {md.status.canary_version} skips the rest of step {step} without a check",
    )


def _action_arguments(parser: argparse.ArgumentParser) -> None:
    add_name_argument(parser)
    _wait_arguments(parser)


def run_abort(args: argparse.Namespace) -> int:
    return _request(
        args,
        Action.ABORT,
        "canary {md.status.canary_version} goes to weight 0; stable {md.status.stable_version} serves",
    )


def run_retry(args: argparse.Namespace) -> int:
    return _request(args, Action.RETRY, "the rollout of {md.status.canary_version} starts again from the first step")


def run_pause(args: argparse.Namespace) -> int:
    kube = Kube.from_args(args)
    md = kube.get(args.name)
    if not check_pause(md):
        print(f"{args.name}: already paused by {paused_by(md)}; nothing changed")
        return ExitCode.OK

    def make_patch(md: ModelDeployment) -> dict[str, Any]:
        check_pause(md)
        return {"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}}

    before, _ = kube.patch_checked(args.name, make_patch)
    if before.status.canary_version is None:
        print(
            f"{args.name}: paused ({PAUSED_ANNOTATION}=true); no rollout in progress: the next one holds at its start"
        )
    else:
        print(
            f"{args.name}: paused ({PAUSED_ANNOTATION}=true); the rollout of {before.status.canary_version} holds at "
            f"{before.status.canary_weight}%"
        )
    return ExitCode.OK


def run_resume(args: argparse.Namespace) -> int:
    kube = Kube.from_args(args)
    if not check_resume(kube.get(args.name)):
        print(f"{args.name}: not paused; nothing changed")
        return ExitCode.OK

    def make_patch(md: ModelDeployment) -> dict[str, Any]:
        check_resume(md)
        return {"metadata": {"annotations": {PAUSED_ANNOTATION: None}}}

    kube.patch_checked(args.name, make_patch)
    print(f"{args.name}: resumed ({PAUSED_ANNOTATION} removed)")
    return ExitCode.OK


def _undo_arguments(parser: argparse.ArgumentParser) -> None:
    add_name_argument(parser)
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--to-revision",
        type=int,
        metavar="N",
        help="a revision number from `kubectl sluice history`: its model and its spec.serving (image, env, "
        "resources, pod fields) are rolled out again",
    )
    target.add_argument(
        "--to-version",
        metavar="VERSION",
        help="a version from `kubectl sluice history` (default: the stable version during a rollout or after a "
        "rollback, else the previous stable version)",
    )


def run_undo_to_revision(args: argparse.Namespace) -> int:
    kube = Kube.from_args(args)
    chosen: list[str] = []

    def make_patch(md: ModelDeployment) -> dict[str, Any]:
        revision = revision_target(md, args.to_revision)
        chosen[:] = [revision.ref.hash, revision.ref.version]
        return revision_patch(md, revision)

    before, _ = kube.patch_checked(args.name, make_patch)
    stable = before.status.stable_revision
    chosen_hash, version = chosen
    if (kept := kept_effect(before, chosen_hash)) is not None:
        effect = kept
    elif stable is not None and stable.hash == chosen_hash:
        effect = f"stable revision {stable.number} keeps serving (a rollout in progress ends)"
    else:
        effect = f"a canary rollout of it starts from stable revision {stable.number if stable else '?'}"
    print(f"{args.name}: spec.model and spec.serving set back to revision {args.to_revision} ({version}): {effect}")
    return ExitCode.OK


def run_undo(args: argparse.Namespace) -> int:
    if args.to_revision is not None:
        return run_undo_to_revision(args)
    kube = Kube.from_args(args)
    chosen: list[str] = []

    def make_patch(md: ModelDeployment) -> dict[str, Any]:
        revision = default_revision(md) if args.to_version is None else None
        if revision is not None:
            serving_too = revision.serving != md.spec.serving
            chosen[:] = [
                revision.model.version,
                revision.model.uri,
                f"revision {revision.ref.number}" if serving_too else "",
                revision.ref.hash,
            ]
            return revision_patch(md, revision)
        target = undo_target(md, args.to_version)
        chosen[:] = [target.version, target.uri, "", revision_hash(target, md.spec.serving)]
        model = {"version": target.version, "uri": target.uri, "format": str(target.format), "digest": target.digest}
        return {"spec": {"model": model}}

    before, _ = kube.patch_checked(args.name, make_patch)
    version, uri, revision, target_hash = chosen
    if (kept := kept_effect(before, target_hash)) is not None:
        effect = kept
    elif before.status.canary_version is not None and version == before.status.stable_version:
        effect = f"the rollout of {before.status.canary_version} ends; stable {version} keeps serving"
    elif version == before.status.stable_version:
        effect = f"stable {version} keeps serving"
    else:
        effect = f"a canary rollout of {version} starts from stable {before.status.stable_version}"
    what = (
        f"spec.model and spec.serving set back to {revision}, {version}"
        if revision
        else f"spec.model set back to {version}"
    )
    print(f"{args.name}: {what} ({uri}): {effect}")
    return ExitCode.OK


PAUSE = Command(
    name="pause",
    help="hold the rollout at its current step (annotation sluice.dev/paused)",
    add_arguments=add_name_argument,
    run=run_pause,
    epilog="example:\n  kubectl sluice pause fraud -n ml",
)
RESUME = Command(
    name="resume",
    help="continue a rollout paused with `pause`",
    add_arguments=add_name_argument,
    run=run_resume,
    epilog="example:\n  kubectl sluice resume fraud -n ml",
)
PROMOTE = Command(
    name="promote",
    help="skip the rest of the current step (--full: promote now, skipping every remaining step)",
    add_arguments=_promote_arguments,
    run=run_promote,
    epilog="examples:\n  kubectl sluice promote fraud -n ml\n  kubectl sluice promote fraud -n ml --full --wait",
)
ABORT = Command(
    name="abort",
    help="roll the canary back now; the stable version keeps serving",
    add_arguments=_action_arguments,
    run=run_abort,
    epilog="example:\n  kubectl sluice abort fraud -n ml --wait",
)
RETRY = Command(
    name="retry",
    help="roll out the rolled-back or aborted version again from the first step",
    add_arguments=_action_arguments,
    run=run_retry,
    epilog="example:\n  kubectl sluice retry fraud -n ml",
)
UNDO = Command(
    name="undo",
    help="set spec.model back to a previous version's model, or (--to-revision) a whole revision, from the history",
    add_arguments=_undo_arguments,
    run=run_undo,
    epilog="examples:\n  kubectl sluice undo fraud -n ml\n  kubectl sluice undo fraud -n ml --to-version 1.3.0\n"
    "  kubectl sluice undo fraud -n ml --to-revision 4",
)
COMMANDS = (PAUSE, RESUME, PROMOTE, ABORT, RETRY, UNDO)
