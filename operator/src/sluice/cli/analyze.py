"""`analyze`: what-if replay of a ModelDeployment's analysis settings over Prometheus history (`sluice.cli.replay`).

The spec (steps, interval, bounds) is the object's current one, or the one in `-f FILE` (a ModelDeployment
manifest with other bounds: try them on recorded history before applying them). The versions are the current
rollout's, else those of the last finished rollout that overlaps the window (history's `version` and
`stableModel`), else the flags'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from datetime import UTC, datetime

import yaml
from pydantic import ValidationError

from sluice.adapters.metrics import PrometheusProvider
from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import DURATION_PATTERN, ModelDeployment, ModelDeploymentSpec, Outcome
from sluice.cli.base import CliError, Command, ExitCode, duration_seconds
from sluice.cli.kube import Kube
from sluice.cli.replay import Decision, render_table, replay

PROMETHEUS_URL_VARIABLE = "SLUICE_PROMETHEUS_URL"


def parse_time(text: str, now: datetime) -> datetime:
    """RFC 3339 (`2025-03-01T12:00:00Z`; no zone means UTC), `now`, or a duration meaning that long ago (`30m`)."""
    if text == "now":
        return now
    if re.match(DURATION_PATTERN, text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            ExitCode.USAGE, f"{text!r} is not a time (RFC 3339, `now`, or a duration ago like 30m)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def spec_from_file(path: str) -> ModelDeploymentSpec:
    """The spec of the ModelDeployment manifest at `path` (YAML or JSON)."""
    try:
        with open(path, encoding="utf-8") as file:
            body = yaml.safe_load(file)
        return ModelDeploymentSpec.model_validate((body or {}).get("spec") or {})
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise CliError(ExitCode.USAGE, f"cannot read {path}: {error}") from error
    except ValidationError as error:
        raise CliError(ExitCode.USAGE, f"{path}: invalid spec: {error}") from error


def versions(md: ModelDeployment, start: datetime, end: datetime) -> tuple[str, str] | None:
    """(canary, stable) of the rollout in progress, else of the last finished one overlapping [start, end]."""
    status = md.status
    if status.canary_version is not None and status.stable_version is not None:
        return status.canary_version, status.stable_version
    overlapping = [e for e in status.history if e.started_at <= end and e.finished_at >= start]
    for entry in reversed(overlapping or status.history[-1:]):
        if entry.stable_model is not None:
            return entry.version, entry.stable_model.version
        if entry.outcome is not Outcome.PROMOTED and status.stable_version is not None:
            return entry.version, status.stable_version
    return None


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the ModelDeployment whose spec.rollout and spec.analysis are replayed")
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="TIME",
        help="when the replayed step starts (RFC 3339, or 30m ago)",
    )
    parser.add_argument("--to", dest="end", default="now", metavar="TIME", help="end of the window (default now)")
    parser.add_argument(
        "-f", "--filename", metavar="FILE", help="take spec.rollout and spec.analysis from this manifest instead"
    )
    parser.add_argument("--canary-version", help="the canary's version label (default: from status or history)")
    parser.add_argument("--stable-version", help="the stable version's label (default: from status or history)")
    parser.add_argument("--start-step", type=int, default=1, metavar="N", help="the step running at --from (1-based)")
    parser.add_argument(
        "--prometheus-url",
        help=f"Prometheus to read (default: spec.analysis.prometheus.url, else ${PROMETHEUS_URL_VARIABLE})",
    )
    parser.add_argument(
        "--prometheus-timeout", type=duration_seconds, default=10.0, metavar="DURATION", help="per query (default 10s)"
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="table (default) or json")


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    start, end = parse_time(args.start, now), parse_time(args.end, now)
    if end <= start:
        raise CliError(ExitCode.USAGE, "--to must be later than --from")
    md = Kube.from_args(args).get(args.name)
    found = versions(md, start, end)
    canary = args.canary_version or (found[0] if found else None)
    stable = args.stable_version or (found[1] if found else None)
    if canary is None or stable is None:
        raise CliError(
            ExitCode.USAGE,
            "no rollout in status or history to take versions from: give --canary-version and --stable-version",
        )
    spec = md.spec if args.filename is None else spec_from_file(args.filename)
    prometheus = spec.analysis.prometheus
    url = args.prometheus_url or (prometheus.url if prometheus else None) or os.environ.get(PROMETHEUS_URL_VARIABLE)
    if not url:
        raise CliError(ExitCode.USAGE, f"no Prometheus: give --prometheus-url or set ${PROMETHEUS_URL_VARIABLE}")
    steps = spec.rollout.steps
    if not 1 <= args.start_step <= len(steps):
        raise CliError(ExitCode.USAGE, f"--start-step must be 1..{len(steps)}")
    checks = asyncio.run(
        replay(
            spec,
            PrometheusProvider(url, args.prometheus_timeout),
            start,
            end,
            namespace=str(md.metadata.get("namespace", "")),
            name=args.name,
            canary_version=canary,
            stable_version=stable,
            start_step=args.start_step - 1,
        )
    )
    if args.output == "json":
        print(json.dumps([{**c.check.to_wire(), "decision": str(c.decision)} for c in checks], indent=2))
    else:
        print(f"replaying {canary} over stable {stable}, {start.isoformat()} to {end.isoformat()}, {url}")
        print(render_table(checks, steps), end="")
    return ExitCode.FAILED if checks and checks[-1].decision is Decision.ROLLBACK else ExitCode.OK


COMMAND = Command(
    name="analyze",
    help="what-if replay: the checks and decisions the analysis settings give over Prometheus history",
    description=__doc__ or "",
    add_arguments=_arguments,
    run=run,
    epilog=(
        "exit code 1 when the replayed rollout would have been rolled back.\n"
        "examples:\n"
        "  kubectl sluice analyze fraud -n ml --from 2025-03-01T12:00:00Z --to 2025-03-01T12:30:00Z\n"
        "  kubectl sluice analyze fraud -n ml --from 1h --canary-version 1.5.0 --stable-version 1.4.0 -o json"
    ),
)
