"""What every subcommand shares and what needs no cluster: `Command`, `ExitCode`, `CliError`, the NAME argument."""

from __future__ import annotations

import argparse
import difflib
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from sluice.api.durations import parse_duration


class ExitCode(IntEnum):
    """Exit codes of every command (docs/plugin.md, Exit codes)."""

    OK = 0
    """Done; for `status`: the ModelDeployment is healthy (Stable: the last rollout promoted, or none; or Promoted:
    promoted, the previous revision kept by rollout.keepPrevious)."""
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


RESOURCE = "modeldeployment.sluice.dev"
"""How `-o name` and messages name the kind, as kubectl does."""

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


def add_output_argument(parser: argparse.ArgumentParser, choices: list[str], what: str) -> None:
    """`-o/--output FORMAT`, as kubectl spells it; the default (None) is the command's own view."""
    parser.add_argument(
        "-o", "--output", choices=choices, default=None, metavar="FORMAT", help=f"{'|'.join(choices)}: {what}"
    )


def duration_seconds(text: str) -> float:
    """An argparse type for every time flag: a duration (`90s`, `15m`, `1h30m`) or a number of seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text).total_seconds()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration such as 30s, 15m or 1h30m (a plain number means seconds)"
        ) from None


_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<word>[^']*)' \(choose from (?P<choices>.*)\)")


def did_you_mean(message: str) -> str:
    """argparse's "invalid choice" message as kubectl words it: the word, the closest choices, where help is."""
    found = _INVALID_CHOICE.search(message)
    if found is None:
        return message
    word = found["word"]
    choices = re.findall(r"'([^']*)'", found["choices"])
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5) or [c for c in choices if c.startswith(word)]
    argument = message[: found.start()].removeprefix("argument ").rstrip(": ")
    what = "command" if argument == "COMMAND" else f"value for {argument}"
    text = f"unknown {what} {word!r}"
    if close:
        text += "\n\nDid you mean this?\n" + "".join(f"\t{choice}\n" for choice in close)
    else:
        text += f" (one of: {', '.join(choices)})"
    return text


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are short: the problem, a suggestion, and where the help is (no usage)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(ExitCode.USAGE, f"error: {did_you_mean(message)}\nRun '{self.prog} --help' for usage.\n")
