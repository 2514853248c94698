"""`status NAME [--watch]`: the live view of one ModelDeployment; its exit code says how the rollout stands."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sluice.api.v1alpha1 import ModelDeployment
from sluice.cli.base import Command, ExitCode, add_name_argument
from sluice.cli.checks import STATE_EXIT_CODES, RolloutState, rollout_state
from sluice.cli.kube import Kube
from sluice.cli.render import EventLine, pending_action, render_status

CLEAR_SCREEN = "\x1b[H\x1b[2J"
FINAL_STATES = frozenset({RolloutState.HEALTHY, RolloutState.DEGRADED})


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_name_argument(parser)
    parser.add_argument(
        "-w", "--watch", action="store_true", help="redraw until the rollout ends (Healthy or Degraded)"
    )
    parser.add_argument(
        "-t",
        "--timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --watch: give up after this long, exit code 4 (default 0: no limit)",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="with --watch: seconds between reads (default 2)"
    )
    parser.add_argument("--events", type=int, default=10, metavar="N", help="recent Events to show (default 10)")


def _change_key(md: ModelDeployment, events: list[EventLine]) -> tuple[Any, ...]:
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


def run(args: argparse.Namespace) -> int:
    kube = Kube.from_args(args)
    interactive = args.watch and sys.stdout.isatty()
    deadline = time.monotonic() + args.timeout if args.watch and args.timeout > 0 else None
    last_key: tuple[Any, ...] | None = None
    while True:
        md = kube.get(args.name)
        uid = str(md.metadata.get("uid", ""))
        events = kube.events(uid, args.events) if uid else []
        state = rollout_state(md)
        key = _change_key(md, events)
        text = render_status(md, events, datetime.now(UTC), state=str(state))
        if interactive:
            print(CLEAR_SCREEN + text, flush=True)
        elif key != last_key:
            if last_key is not None:
                print("---", flush=True)
            print(text, flush=True)
        last_key = key
        if not args.watch or state in FINAL_STATES:
            return STATE_EXIT_CODES[state]
        if deadline is not None and time.monotonic() >= deadline:
            print(f"timed out after {args.timeout:g}s: {args.name} is {state}", file=sys.stderr)
            return ExitCode.NOT_FINISHED
        time.sleep(args.interval)


COMMAND = Command(
    name="status",
    help="versions, step and weight, the last check against its bounds, conditions and recent Events",
    description=(
        "Show one ModelDeployment's rollout. Exit code: 0 healthy (Stable), 1 rolled back, aborted or invalid spec, "
        "4 still in progress or paused (with --watch: when --timeout runs out). With --watch it redraws until the "
        "rollout ends, so CI pipelines can wait on it."
    ),
    add_arguments=_arguments,
    run=run,
    epilog="examples:\n  kubectl sluice status fraud -n ml\n  kubectl sluice status fraud -n ml --watch --timeout 900",
)
