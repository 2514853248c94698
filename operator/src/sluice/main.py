"""The `sluice-operator` command: parse settings, then run the Kopf operator against the current cluster."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import kopf
from kubernetes.client import ApiClient
from pydantic import ValidationError

from sluice.adapters import logs, telemetry
from sluice.adapters.health import WatchLag, serve_readiness
from sluice.adapters.kube import KubeApi, KubeCluster, load_api_client
from sluice.adapters.leader import LeaseElector, default_identity
from sluice.adapters.metrics import MetricsProvider, PrometheusProvider, unreachable
from sluice.adapters.notifier import DeliveryPolicy, Notifications, Notifier
from sluice.adapters.receivers import SecretReceivers
from sluice.adapters.registry import MlflowRegistry
from sluice.adapters.shadow import ShadowMetrics
from sluice.handlers import kopf_settings, register
from sluice.loops import Loops
from sluice.reconciler import Reconciler
from sluice.settings import Settings

log = logging.getLogger("sluice")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _exit_when_leadership_is_lost(renewal: asyncio.Task[None]) -> None:
    """Never two leaders acting: when renewing fails, exit at once (the pod restarts as a standby)."""
    if renewal.cancelled():
        return
    log.critical("leader election: lost the lease (%s); exiting", renewal.exception())
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


def _notifications(settings: Settings, api: KubeApi) -> Notifications:
    """The notifier and the receivers' Secret, as `settings` configure them."""
    policy = DeliveryPolicy(
        attempts=settings.notification_attempts,
        backoff=settings.notification_backoff_seconds,
        timeout=settings.notification_timeout,
        queue_size=settings.notification_queue_size,
    )
    receivers = SecretReceivers(api.get, settings.notification_namespace, settings.notification_secret)
    return Notifications(Notifier(policy), receivers, tuple(settings.notification_default_receivers))


def _reconciler(settings: Settings, api_client: ApiClient, watch: WatchLag) -> Reconciler:
    """The reconciler over the real cluster and Prometheus, as `settings` configure them."""

    @cache
    def prometheus(url: str) -> MetricsProvider:
        return PrometheusProvider(url, settings.prometheus_timeout)

    api = KubeApi(api_client, settings.kube_timeout)
    return Reconciler(
        cluster=KubeCluster(api, settings.field_manager),
        defaults=settings.serving_defaults(),
        default_prometheus_url=settings.prometheus_url,
        metrics_provider=prometheus,
        clock=utc_now,
        watch=watch,
        canary_url_template=settings.canary_url_template,
        shadow_provider=lambda url: ShadowMetrics(url, settings.prometheus_timeout),
        allow=settings.allowlists(),
        mirror_gateway_classes=frozenset(settings.mirror_gateway_classes),
        notifications=_notifications(settings, api),
        registry=MlflowRegistry(settings.mlflow_tracking_uri, settings.mlflow_max_model_bytes, settings.mlflow_timeout)
        if settings.mlflow_tracking_uri
        else None,
    )


async def run(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM: watch ModelDeployments (in `settings.namespaces`, or cluster-wide)."""
    if (
        problem := await asyncio.to_thread(unreachable, settings.prometheus_url, settings.prometheus_timeout)
    ) is not None:
        log.warning("the default Prometheus does not answer; checks that use it will be Errored: %s", problem)
    api_client = load_api_client()
    watch = WatchLag(timedelta(seconds=settings.watch_stall_seconds), utc_now)
    if settings.readiness_endpoint:
        await serve_readiness(settings.readiness_endpoint, watch)
    elector: LeaseElector | None = None
    if settings.leader_election_lease:
        elector = LeaseElector(
            KubeApi(api_client, min(settings.kube_timeout, 5.0)),
            namespace=settings.leader_election_namespace,
            name=settings.leader_election_lease,
            identity=default_identity(),
            clock=utc_now,
        )
        await elector.acquire()
    watch.leading = True
    reconciler = _reconciler(settings, api_client, watch)
    registry = kopf.OperatorRegistry()
    register(registry, loops := Loops(reconciler, timedelta(seconds=settings.resync_seconds)))
    if reconciler.notifications is not None:  # a delivery that ended shows in the status at the next reconcile
        reconciler.notifications.notifier.on_outcome = lambda key: loops.wake(key, start=False)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(
            **kwargs
        )
        return info

    renewal: asyncio.Task[None] | None = None
    if elector is not None:
        renewal = asyncio.create_task(elector.keep_renewing(), name="leader-election")
        renewal.add_done_callback(_exit_when_leadership_is_lost)
    try:
        # standalone: Kopf's own peering is not used; the Lease above decides which replica runs.
        await kopf.operator(
            registry=registry,
            settings=kopf_settings(settings.watch_inactivity_seconds),
            standalone=True,
            # Kopf would name itself after getpass.getuser(), which fails for a UID without a passwd entry (the
            # image's 65532, or any runAsUser): the image would crash at start.
            identity=default_identity(),  # type: ignore[arg-type]  # Kopf's Identity is a NewType of str it does not export
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=settings.liveness_endpoint or None,
        )
    finally:
        if renewal is not None and elector is not None:
            renewal.remove_done_callback(_exit_when_leadership_is_lost)
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewal
            await elector.release()
        if reconciler.notifications is not None:
            await reconciler.notifications.notifier.close()


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = Settings.from_command_line(sys.argv[1:] if argv is None else argv)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        print(f"sluice-operator: invalid settings: {problems}", file=sys.stderr)
        sys.exit(2)
    logs.configure(settings.log_level, settings.log_format)
    logging.getLogger("sluice").info("sluice-operator starting: %s", settings.model_dump_json())
    telemetry.serve(settings.metrics_port)
    asyncio.run(run(settings))
