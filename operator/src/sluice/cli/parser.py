"""The `kubectl-sluice` argument parser, built from `COMMANDS`: the one place that knows every subcommand."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from sluice.cli import actions, analyze, completion, listing, status
from sluice.cli.base import Command, ExitCode, Parser
from sluice.cli.kube import add_connection_arguments


def completion_script(shell: str) -> str:
    """The shell completion script of kubectl-sluice for `shell`."""
    return completion.script(build_parser(prog=completion.EXECUTABLE), shell)


def _print_completion(args: argparse.Namespace) -> int:
    print(completion_script(args.shell))
    return ExitCode.OK


COMMANDS: list[Command] = [
    listing.LIST,
    status.COMMAND,
    listing.HISTORY,
    *actions.COMMANDS,
    analyze.COMMAND,
    completion.command(_print_completion),
]
"""Every subcommand, in --help order. A new one is one module with a `Command` and one line here."""

PROG = "kubectl sluice"
DESCRIPTION = (
    "Watch and steer sluice ModelDeployment rollouts (a kubectl plugin: run it as `kubectl sluice`). "
    "Exit codes: 0 ok/healthy, 1 rollout failed, 2 usage or unknown object, 3 wrong state (nothing written), "
    "4 not finished, 5 API error."
)


def _version() -> str:
    try:
        return version("sluice")
    except PackageNotFoundError:
        return "unknown"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_connection_arguments(parser, suppress_defaults=False)
    subparsers = parser.add_subparsers(title="commands", dest="command_name", metavar="COMMAND")
    for command in COMMANDS:
        subparser = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            epilog=command.epilog or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(subparser)
        add_connection_arguments(subparser, suppress_defaults=True)
        subparser.set_defaults(command=command)
    return parser
