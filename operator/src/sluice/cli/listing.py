"""`list` and `history`, as tables or (`-o`) as kubectl prints objects."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from sluice.cli.base import RESOURCE, Command, ExitCode, add_name_argument, add_output_argument
from sluice.cli.history import render_history
from sluice.cli.kube import Kube, parse_model_deployment
from sluice.cli.render import list_object, object_text, render_list


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="list ModelDeployments in every namespace")
    add_output_argument(
        parser,
        ["wide", "name", "json", "yaml"],
        "wide adds the spec's version, pauses, the last check and the message; name prints "
        "modeldeployment.sluice.dev/NAME per line; json and yaml print the objects (default: the table)",
    )


def run_list(args: argparse.Namespace) -> int:
    kube = Kube.from_args(args)
    bodies = kube.list_bodies(all_namespaces=args.all_namespaces)
    if args.output in ("json", "yaml"):
        print(object_text(list_object(bodies), args.output))
        return ExitCode.OK
    items = [parse_model_deployment(body) for body in bodies]
    if args.output == "name":
        for md in items:
            print(f"{RESOURCE}/{md.metadata.get('name', '')}")
        return ExitCode.OK
    namespace = None if args.all_namespaces else kube.namespace
    print(render_list(items, datetime.now(UTC), namespace=namespace, wide=args.output == "wide"))
    return ExitCode.OK


def _history_arguments(parser: argparse.ArgumentParser) -> None:
    add_name_argument(parser)
    add_output_argument(parser, ["json", "yaml"], "status.history as stored (default: the table)")


def run_history(args: argparse.Namespace) -> int:
    body = Kube.from_args(args).get_body(args.name)
    if args.output in ("json", "yaml"):
        print(object_text((body.get("status") or {}).get("history") or [], args.output))
        return ExitCode.OK
    print(render_history(parse_model_deployment(body), datetime.now(UTC)))
    return ExitCode.OK


LIST = Command(
    name="list",
    help="list ModelDeployments with their phase, versions, step and weight",
    add_arguments=_list_arguments,
    run=run_list,
    epilog=(
        "examples:\n  kubectl sluice list -n ml\n  kubectl sluice list -A -o wide\n  kubectl sluice list -n ml -o json"
    ),
)
HISTORY = Command(
    name="history",
    help="finished rollouts of a ModelDeployment (oldest first), with their outcome and model",
    add_arguments=_history_arguments,
    run=run_history,
    epilog="example:\n  kubectl sluice history fraud -n ml",
)
