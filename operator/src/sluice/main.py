"""The `sluice-operator` command: parse settings, then run the Kopf operator against the current cluster."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import kopf
from pydantic import ValidationError

from sluice.adapters import telemetry
from sluice.adapters.kube import Cluster, KubeApi, load_api_client
from sluice.adapters.metrics import MetricsProvider, PrometheusProvider
from sluice.handlers import Loops, Reconciler, kopf_settings, register
from sluice.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


async def run(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM: watch ModelDeployments (in `settings.namespaces`, or cluster-wide)."""

    @cache
    def prometheus(url: str) -> MetricsProvider:
        return PrometheusProvider(url, settings.prometheus_timeout)

    reconciler = Reconciler(
        cluster=Cluster(KubeApi(load_api_client(), settings.kube_timeout), settings.field_manager),
        defaults=settings.serving_defaults(),
        default_prometheus_url=settings.prometheus_url,
        metrics_provider=prometheus,
        clock=utc_now,
    )
    registry = kopf.OperatorRegistry()
    register(registry, Loops(reconciler, timedelta(seconds=settings.resync_seconds)))

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(
            **kwargs
        )
        return info

    await kopf.operator(
        registry=registry,
        settings=kopf_settings(),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint or None,
    )


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = Settings.from_command_line(sys.argv[1:] if argv is None else argv)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        print(f"sluice-operator: invalid settings: {problems}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kopf").setLevel(max(logging.INFO, logging.getLevelName(settings.log_level)))
    logging.getLogger("sluice").info("sluice-operator starting: %s", settings.model_dump_json())
    telemetry.serve(settings.metrics_port)
    asyncio.run(run(settings))
