"""The `kubectl-sluice` entry point: parse (cli/parser.py), run the command, map errors to exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from kubernetes.client.exceptions import ApiException

from sluice.cli import complete
from sluice.cli.base import CliError, Command, ExitCode
from sluice.cli.kube import api_error
from sluice.cli.parser import build_parser


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
