"""What every subcommand shares and what needs no cluster: `Command`, `ExitCode`, `CliError`, the NAME argument."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every command (docs/plugin.md, Exit codes)."""

    OK = 0
    """Done; for `status`: the ModelDeployment is healthy (Stable: the last rollout promoted, or none)."""
    FAILED = 1
    """`status`: the rollout failed (RolledBack: rolled back or aborted) or the spec is invalid."""
    USAGE = 2
    """Bad command line, no kubeconfig, or an unknown ModelDeployment."""
    WRONG_STATE = 3
    """An action the current state does not allow (nothing was written), or that the operator refused."""
    NOT_FINISHED = 4
    """`status`: a rollout is still in progress or paused (without --watch, or when --timeout ran out)."""
    API_ERROR = 5
    """The API server could not be reached or refused the request (RBAC, conflict after retries...)."""
    INTERRUPTED = 130
    """Ctrl-C."""


class CliError(Exception):
    """A failure the user should read: `main` prints `error: <message>` and exits with `code`."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


NAMES_FUNCTION = "_kubectl_sluice_names"
"""The shell function the completion scripts define to list ModelDeployment names (see `sluice.cli.completion`)."""


def add_name_argument(parser: argparse.ArgumentParser) -> None:
    """The positional NAME of the ModelDeployment a command acts on; shells complete it with `NAMES_FUNCTION`."""
    argument = parser.add_argument("name", help="the ModelDeployment")
    argument.complete = {"bash": NAMES_FUNCTION, "zsh": NAMES_FUNCTION}  # type: ignore[attr-defined]  # shtab


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, its one-line help, its arguments and what it does."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
    """Longer text for `kubectl sluice NAME --help`; the help line when empty."""
    epilog: str = ""
    """Examples shown at the end of `--help`."""
