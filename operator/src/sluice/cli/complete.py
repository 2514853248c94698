"""`kubectl_complete-sluice`: completions for `kubectl sluice ...` (kubectl 1.26+ runs
`kubectl_complete-sluice ARGS... CURRENT` when completing a plugin's arguments).

Output follows kubectl's (Cobra's) protocol: one candidate per line, then `:4` (no file completion). Candidates:
subcommands, flags of the subcommand, ModelDeployment names (in the `-n` namespace given on the line), namespaces
after `-n`, contexts after `--context`, the versions `undo --to-version` can return to (from the object's
history), `-o` formats, shells after `completion`. Also reachable as `kubectl-sluice __complete`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from kubernetes import client, config

from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION, ModelDeployment
from sluice.cli.checks import known_models
from sluice.cli.parser import build_parser

NO_FILE_COMPLETION = ":4"
Lookup = Callable[[str, dict[str, str]], list[str]]
"""(kind, connection flags seen on the line) -> names; kind is modeldeployments, namespaces, contexts, or versions
(those `undo --to-version` accepts; the flags then carry the ModelDeployment's `name`)."""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> tuple[list[str], set[str]]:
    """(every option string, the options that take a value)."""
    options: list[str] = []
    with_value: set[str] = set()
    for action in parser._actions:
        options.extend(action.option_strings)
        if action.option_strings and action.nargs != 0:
            with_value.update(action.option_strings)
    return options, with_value


def _choices(parser: argparse.ArgumentParser, option: str) -> list[str]:
    """The values an option accepts when it lists them (`-o` formats), else none."""
    for action in parser._actions:
        if option in action.option_strings and action.choices is not None:
            return [str(choice) for choice in action.choices]
    return []


VALUE_KINDS = {"-n": "namespaces", "--namespace": "namespaces", "--context": "contexts"}
CONNECTION_FLAGS = {"-n": "namespace", "--namespace": "namespace", "--context": "context", "--kubeconfig": "kubeconfig"}


def candidates(parser: argparse.ArgumentParser, words: Sequence[str], lookup: Lookup) -> list[str]:
    """Completions of the last word of `words` (the words after `kubectl sluice`; the last may be empty)."""
    *done, current = list(words) or [""]
    commands = _subparsers(parser)
    top_options, top_with_value = _options(parser)
    subcommand: argparse.ArgumentParser | None = None
    sub_name = ""
    positionals: list[str] = []
    flags: dict[str, str] = {}
    with_value = set(top_with_value)
    previous = ""
    expecting_value = False
    for word in done:
        if expecting_value:
            if previous in CONNECTION_FLAGS:
                flags[CONNECTION_FLAGS[previous]] = word
            expecting_value = False
        elif word.startswith("-"):
            expecting_value = word in with_value and "=" not in word
        elif subcommand is None and word in commands:
            subcommand, sub_name = commands[word], word
            with_value |= _options(subcommand)[1]
        else:
            positionals.append(word)
        previous = word
    if expecting_value:
        if previous in VALUE_KINDS:
            found = lookup(VALUE_KINDS[previous], flags)
        elif previous == "--to-version" and positionals:
            found = lookup("versions", {**flags, "name": positionals[0]})
        else:
            found = _choices(subcommand or parser, previous)
    elif current.startswith("-"):
        found = _options(subcommand)[0] if subcommand is not None else top_options
    elif subcommand is None:
        found = list(commands)
    elif positionals:
        found = []
    elif sub_name == "completion":
        found = ["bash", "zsh"]
    elif any(action.dest == "name" for action in subcommand._actions):
        found = lookup("modeldeployments", flags)
    else:
        found = []
    return [candidate for candidate in found if candidate.startswith(current)]


def cluster_lookup(kind: str, flags: dict[str, str]) -> list[str]:
    """Names from the cluster (or the kubeconfig); nothing when it cannot be reached: completion never fails."""
    kubeconfig, context = flags.get("kubeconfig"), flags.get("context")
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        if kind == "contexts":
            return [str(c["name"]) for c in contexts]
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        with api_client:
            if kind == "namespaces":
                listed = client.CoreV1Api(api_client).list_namespace(_request_timeout=5)
                return [str(ns.metadata.name) for ns in listed.items if ns.metadata is not None]
            chosen: dict[str, Any] = (
                next((c for c in contexts if c["name"] == context), {}) if context else (current or {})
            )
            namespace = flags.get("namespace") or (chosen.get("context") or {}).get("namespace") or "default"
            if kind == "versions":
                found = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, flags["name"], _request_timeout=5
                )
                md = ModelDeployment.model_validate(found)
                return [version for version in known_models(md) if version != md.spec.model.version]
            body = cast(
                dict[str, Any],
                client.CustomObjectsApi(api_client).list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, _request_timeout=5
                ),
            )
            return [str(item["metadata"]["name"]) for item in body.get("items", [])]
    except Exception:  # completion must never print a traceback into someone's shell
        return []


def run(words: Sequence[str], lookup: Lookup = cluster_lookup) -> int:
    for candidate in candidates(build_parser(), words, lookup):
        print(candidate)
    print(NO_FILE_COMPLETION)
    return 0


def main() -> int:
    """The `kubectl_complete-sluice` console script."""
    return run(sys.argv[1:])
