"""`list` and `history`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from sluice.cli.base import Command, ExitCode, add_name_argument
from sluice.cli.kube import Kube
from sluice.cli.render import render_history, render_list


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="list ModelDeployments in every namespace")
    parser.add_argument(
        "-o",
        "--output",
        choices=["table", "name"],
        default="table",
        help="table (default), or name: one name per line (for scripts and completion)",
    )


def run_list(args: argparse.Namespace) -> int:
    kube = Kube.from_args(args)
    items = kube.list_all(all_namespaces=args.all_namespaces)
    if args.output == "name":
        for md in items:
            print(md.metadata.get("name", ""))
    else:
        print(render_list(items, datetime.now(UTC), all_namespaces=args.all_namespaces))
    return ExitCode.OK


def run_history(args: argparse.Namespace) -> int:
    md = Kube.from_args(args).get(args.name)
    print(render_history(md, datetime.now(UTC)))
    return ExitCode.OK


LIST = Command(
    name="list",
    help="list ModelDeployments with their phase, versions, step and weight",
    add_arguments=_list_arguments,
    run=run_list,
    epilog="examples:\n  kubectl sluice list -n ml\n  kubectl sluice list -A",
)
HISTORY = Command(
    name="history",
    help="finished rollouts of a ModelDeployment (oldest first), with their outcome and model",
    add_arguments=add_name_argument,
    run=run_history,
    epilog="example:\n  kubectl sluice history fraud -n ml",
)
