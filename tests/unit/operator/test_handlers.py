"""What wakes a ModelDeployment's reconcile loop (sluice.handlers.register) and what Kopf is spared
(sluice.handlers.kopf_settings): the handlers registered with Kopf, called as Kopf calls them, on real `Loops`
(recording their wake-ups) over a real `Reconciler` on an in-memory cluster (each reconcile counted, so a test waits
for one instead of sleeping)."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from sluice.handlers import NoDiffBase, kopf_settings, register
from unit.operator.loop_support import KEY, CountingCluster, loops


def event(kind: str, generation: int, annotations: dict[str, str], status: dict[str, Any]) -> dict[str, Any]:
    metadata = {"name": KEY[1], "namespace": KEY[0], "generation": generation, "annotations": annotations}
    return {"type": kind, "namespace": KEY[0], "name": KEY[1], "body": {"metadata": metadata, "status": status}}


def test_status_only_events_do_not_wake_the_loop_but_spec_and_annotation_changes_do() -> None:
    async def scenario() -> None:
        cluster = CountingCluster()
        loops_ = loops(cluster)
        handle = register(kopf.OperatorRegistry(), loops_)["modeldeployment"]
        try:
            await handle(**event("ADDED", 1, {}, {}))
            assert loops_.running(KEY)
            await cluster.reconciled(1)

            await handle(**event("MODIFIED", 1, {}, {"phase": "Stable"}))  # the operator's own status write
            assert loops_.wakes == [(KEY, True)]

            await handle(**event("MODIFIED", 2, {}, {"phase": "Stable"}))  # a spec change
            assert loops_.wakes[1:] == [(KEY, True)]
            await cluster.reconciled(2)

            await handle(**event("MODIFIED", 2, {"sluice.dev/paused": "true"}, {"phase": "Stable"}))
            assert loops_.wakes[2:] == [(KEY, True)]
            await cluster.reconciled(3)

            await handle(**event("DELETED", 2, {}, {}))
            assert not loops_.running(KEY)
            await handle(**event("ADDED", 2, {}, {}))  # the same intent as last seen, but a new object: a new loop
            assert loops_.running(KEY)
        finally:
            await loops_.stop_all()

    asyncio.run(scenario())


def test_an_event_of_any_child_wakes_its_owner_but_never_starts_a_loop() -> None:
    async def scenario() -> None:
        cluster = CountingCluster()
        loops_ = loops(cluster)
        handlers = register(kopf.OperatorRegistry(), loops_)
        children = {key: handle for key, handle in handlers.items() if key != "modeldeployment"}
        assert set(children) == {"deployments", "services", "httproutes"}
        owned = {"sluice.dev/modeldeployment": KEY[1], "app.kubernetes.io/managed-by": "sluice"}
        try:
            await children["services"](type="DELETED", namespace=KEY[0], name="fraud-canary", labels=owned)
            assert not loops_.running(KEY), "a child's event alone does not start a loop: its owner's event does"

            await handlers["modeldeployment"](**event("ADDED", 1, {}, {}))
            await cluster.reconciled(1)
            for count, (plural, handle) in enumerate(children.items(), start=2):
                await handle(type="MODIFIED", namespace=KEY[0], name="fraud", labels=owned)
                assert loops_.wakes[-1] == (KEY, False), plural
                await cluster.reconciled(count)
            wakes = len(loops_.wakes)
            await children["httproutes"](type="MODIFIED", namespace=KEY[0], name="fraud", labels={})
            assert len(loops_.wakes) == wakes, "an object without the owner label wakes nobody"
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
