"""The `kubectl-sluice` entry point: the parser built from `COMMANDS`, and errors mapped to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from kubernetes.client.exceptions import ApiException

from sluice.cli import actions, analyze, complete, completion, listing, status
from sluice.cli.base import CliError, Command, ExitCode, Parser
from sluice.cli.kube import add_connection_arguments, api_error

COMMANDS: list[Command] = [
    listing.LIST,
    status.COMMAND,
    listing.HISTORY,
    *actions.COMMANDS,
    analyze.COMMAND,
    completion.COMMAND,
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


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["__complete"]:
        return complete.run(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return int(command.run(args))
    except CliError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return error.code
    except ApiException as error:
        failure = api_error(error, command.name)
        print(f"error: {failure.message}", file=sys.stderr)
        return failure.code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
