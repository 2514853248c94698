"""`status NAME [--watch]`: the live view of one ModelDeployment; its exit code says how the rollout stands."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sluice.api.v1alpha1 import ModelDeployment
from sluice.cli.base import CliError, Command, ExitCode, add_name_argument, add_output_argument, duration_seconds
from sluice.cli.checks import STATE_EXIT_CODES, RolloutState, rollout_state
from sluice.cli.kube import Kube, parse_model_deployment
from sluice.cli.live import LIVE_HEIGHT, LIVE_WIDTH, clip, render_live, route_text
from sluice.cli.render import (
    EventLine,
    PodLine,
    object_text,
    pending_action,
    render_status,
)
from sluice.core.children import MODELDEPLOYMENT_LABEL, ChildNames

CLEAR_SCREEN = "\x1b[H\x1b[2J"
FINAL_STATES = frozenset({RolloutState.HEALTHY, RolloutState.DEGRADED})


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_name_argument(parser)
    parser.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="redraw until the rollout ends (Healthy or Degraded); waits for the object to be created. In a "
        "terminal: a live view that fits the screen, and, on a settled object, it waits for the next rollout",
    )
    parser.add_argument(
        "-t",
        "--timeout",
        type=duration_seconds,
        default=0.0,
        metavar="DURATION",
        help="with --watch: give up after this long (e.g. 15m), exit code 4 (default 0: no limit)",
    )
    parser.add_argument(
        "--interval",
        type=duration_seconds,
        default=2.0,
        metavar="DURATION",
        help="with --watch: time between reads (default 2s)",
    )
    parser.add_argument("--events", type=int, default=10, metavar="N", help="recent Events to show (default 10)")
    add_output_argument(parser, ["json", "yaml"], "the object as stored, instead of the view")


def change_key(md: ModelDeployment, events: list[EventLine]) -> tuple[Any, ...]:
    """What a non-terminal --watch compares to decide whether to print again (ages alone change every read)."""
    status = md.status
    return (
        status.phase,
        status.canary_version,
        status.current_step,
        status.canary_weight,
        status.last_check_time,
        status.observed_generation,
        pending_action(md),
        tuple((c.type, c.status, c.reason, c.message) for c in status.conditions),
        tuple((e.reason, e.message, e.time) for e in events),
    )


def _pods(kube: Kube, md: ModelDeployment) -> list[PodLine] | None:
    return kube.pods(f"{MODELDEPLOYMENT_LABEL}={md.metadata.get('name', '')}")


def _route(kube: Kube, md: ModelDeployment) -> str | None:
    """The route line for a ModelDeployment with a Gateway, else None."""
    if md.spec.traffic is None or md.spec.traffic.gateway is None:
        return None
    found, parents = kube.route_parents(ChildNames.of(str(md.metadata.get("name", ""))).route)
    return route_text(md, parents, found=found)


def _draw(text: str) -> None:
    print(CLEAR_SCREEN + text, end="", flush=True)


def _wait_for_creation(
    kube: Kube, name: str, interactive: bool, deadline: float | None
) -> tuple[ModelDeployment, bool] | None:
    """Read `name` until it exists (None when `deadline` passes first), saying once what it waits for; with
    whether it had to wait (then its first deploy is the rollout being watched, however fast it settled)."""
    said = False
    while True:
        try:
            return kube.get(name), said
        except CliError as error:
            if error.code != ExitCode.USAGE or "not found" not in error.message:
                raise
        if not said:
            text = f'waiting for modeldeployment "{name}" in namespace "{kube.namespace}" to be created'
            if interactive:
                _draw(clip(text + " · Ctrl-C quits", shutil.get_terminal_size((LIVE_WIDTH, LIVE_HEIGHT)).columns))
            else:
                print(text, flush=True)
            said = True
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(1.0)


def run(args: argparse.Namespace) -> int:
    kube = Kube.from_args(args)
    if args.output in ("json", "yaml"):
        body = kube.get_body(args.name)
        print(object_text(body, args.output))
        return STATE_EXIT_CODES[rollout_state(parse_model_deployment(body))]
    interactive = args.watch and sys.stdout.isatty()
    deadline = time.monotonic() + args.timeout if args.watch and args.timeout > 0 else None
    last_key: tuple[Any, ...] | None = None
    waiting_for_start = False
    created_while_watching = False
    first = True
    while True:
        if args.watch and first:
            found = _wait_for_creation(kube, args.name, interactive, deadline)
            if found is None:
                print(f"timed out after {args.timeout:g}s: {args.name} was not created", file=sys.stderr)
                return ExitCode.NOT_FINISHED
            md, created_while_watching = found
        else:
            md = kube.get(args.name)
        uid = str(md.metadata.get("uid", ""))
        events = kube.events(uid, args.events) if uid else []
        state = rollout_state(md)
        if first:
            waiting_for_start = interactive and state in FINAL_STATES and not created_while_watching
            first = False
        elif waiting_for_start and state not in FINAL_STATES:
            waiting_for_start = False
        now = datetime.now(UTC)
        if interactive:
            size = shutil.get_terminal_size((LIVE_WIDTH, LIVE_HEIGHT))
            footer = "waiting for a rollout · Ctrl-C quits" if waiting_for_start else "Ctrl-C quits"
            text = render_live(
                md,
                events,
                _pods(kube, md),
                now,
                state=str(state),
                route=_route(kube, md),
                width=size.columns,
                height=size.lines,
                footer=footer,
            )
            _draw(text)
        else:
            key = change_key(md, events or [])
            if key != last_key:
                if last_key is not None:
                    print("---", flush=True)
                print(render_status(md, events, now, state=str(state), route=_route(kube, md)), flush=True)
            last_key = key
        if not args.watch or (state in FINAL_STATES and not waiting_for_start):
            if interactive:
                print(flush=True)
            return STATE_EXIT_CODES[state]
        if deadline is not None and time.monotonic() >= deadline:
            print(f"\ntimed out after {args.timeout:g}s: {args.name} is {state}", file=sys.stderr)
            return ExitCode.NOT_FINISHED
        time.sleep(args.interval)


COMMAND = Command(
    name="status",
    help="versions, step and weight, the last check against its bounds, conditions and recent Events",
    description=(
        "Show one ModelDeployment's rollout. Exit code: 0 healthy (Stable, or Promoted with the previous revision "
        "kept), 1 rolled back, aborted, invalid spec or "
        "stalled (e.g. pods that never started, past the progress deadline), "
        "4 still in progress or paused (with --watch: when --timeout runs out). With --watch it redraws until the "
        "rollout ends, so CI pipelines can wait on it."
    ),
    add_arguments=_arguments,
    run=run,
    epilog="examples:\n  kubectl sluice status fraud -n ml\n  kubectl sluice status fraud -n ml --watch --timeout 15m",
)
