"""What wakes a ModelDeployment's reconcile loop (sluice.handlers.register) and what Kopf is spared
(sluice.handlers.kopf_settings): the handlers registered with Kopf, called as Kopf calls them, on real `Loops` over
a real `Reconciler` whose API server does not answer (each reconcile fails fast and backs off, which leaves the
loop waiting for its next wake-up)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from kubernetes import client

from sluice.adapters.kube import KubeApi, KubeCluster
from sluice.adapters.metrics import PrometheusProvider
from sluice.core.children import ServingDefaults
from sluice.handlers import NoDiffBase, kopf_settings, register
from sluice.loops import Loops
from sluice.reconciler import Reconciler

KEY = ("ml", "fraud")


def loops() -> Loops:
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # nothing listens: every request fails at once
    api = KubeApi(client.ApiClient(configuration), timeout=1.0)
    reconciler = Reconciler(
        cluster=KubeCluster(api, "sluice-tests"),
        defaults=ServingDefaults(image="sluice-serving:test"),
        default_prometheus_url="http://127.0.0.1:9",
        metrics_provider=lambda url: PrometheusProvider(url, 1.0),
        clock=lambda: datetime.now(UTC),
    )
    return Loops(reconciler, timedelta(seconds=600))


def event_handler(registry: kopf.OperatorRegistry) -> Any:
    handlers = [h for h in registry._watching.get_all_handlers() if "modeldeployment" in str(h.id)]
    assert len(handlers) == 1, handlers
    return handlers[0].fn


def event(kind: str, generation: int, annotations: dict[str, str], status: dict[str, Any]) -> dict[str, Any]:
    metadata = {"name": KEY[1], "namespace": KEY[0], "generation": generation, "annotations": annotations}
    return {"type": kind, "namespace": KEY[0], "name": KEY[1], "body": {"metadata": metadata, "status": status}}


async def settle() -> None:
    """Let the loop run its (failing) reconcile and go back to waiting."""
    for _ in range(100):
        await asyncio.sleep(0.01)


def woken(loops_: Loops) -> bool:
    return loops_._loops[KEY].wake.is_set()


def test_status_only_events_do_not_wake_the_loop_but_spec_and_annotation_changes_do() -> None:
    async def scenario() -> None:
        loops_ = loops()
        registry = kopf.OperatorRegistry()
        register(registry, loops_)
        handle = event_handler(registry)
        try:
            await handle(**event("ADDED", 1, {}, {}))
            assert loops_.running(KEY)
            await settle()
            assert not woken(loops_), "the first reconcile ran and the loop waits"

            await handle(**event("MODIFIED", 1, {}, {"phase": "Stable"}))  # the operator's own status write
            assert not woken(loops_)

            await handle(**event("MODIFIED", 2, {}, {"phase": "Stable"}))  # a spec change
            assert woken(loops_)
            await settle()

            await handle(**event("MODIFIED", 2, {"sluice.dev/paused": "true"}, {"phase": "Stable"}))
            assert woken(loops_)
            await settle()

            await handle(**event("DELETED", 2, {}, {}))
            assert not loops_.running(KEY)
            await handle(**event("ADDED", 2, {}, {}))  # the same intent as last seen, but a new object: a new loop
            assert loops_.running(KEY)
        finally:
            await loops_.stop_all()

    asyncio.run(scenario())


def test_an_event_of_any_child_wakes_its_owner_but_never_starts_a_loop() -> None:
    async def scenario() -> None:
        loops_ = loops()
        registry = kopf.OperatorRegistry()
        register(registry, loops_)
        children: dict[str, Any] = {
            str(h.id): h.fn for h in registry._watching.get_all_handlers() if "modeldeployment" not in str(h.id)
        }
        assert set(children) == {"deployments", "services", "httproutes"}
        owned = {"sluice.dev/modeldeployment": KEY[1], "app.kubernetes.io/managed-by": "sluice"}
        try:
            await children["services"](type="DELETED", namespace=KEY[0], name="fraud-canary", labels=owned)
            assert not loops_.running(KEY), "a child's event alone does not start a loop: its owner's event does"

            await event_handler(registry)(**event("ADDED", 1, {}, {}))
            await settle()
            for plural, handle in children.items():
                assert not woken(loops_)
                await handle(type="MODIFIED", namespace=KEY[0], name="fraud", labels=owned)
                assert woken(loops_), plural
                await settle()
            await children["httproutes"](type="MODIFIED", namespace=KEY[0], name="fraud", labels={})
            assert not woken(loops_), "an object without the owner label wakes nobody"
        finally:
            await loops_.stop_all()

    asyncio.run(scenario())


def test_kopf_builds_and_fetches_no_diff_base() -> None:
    settings = kopf_settings()
    storage = settings.persistence.diffbase_storage
    assert isinstance(storage, NoDiffBase)
    body = kopf.Body({"metadata": {"name": "x", "annotations": {"a": "b"}}, "spec": {"big": list(range(1000))}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
