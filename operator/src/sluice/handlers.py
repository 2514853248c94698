"""Kopf wiring: ModelDeployment watch events start, wake and stop the reconcile loops (`loops.Loops`); events of
their children (Deployments, Services, HTTPRoutes) wake their owner's loop. Kopf itself writes nothing (no
finalizers, no annotations, no handler-result status, no Events of its own), so an unchanged ModelDeployment costs
reads only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from sluice.core.children import GATEWAY_API_VERSION, MANAGED_BY_LABEL, MANAGER, MODELDEPLOYMENT_LABEL
from sluice.loops import Loops, ObjectKey

CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    (*GATEWAY_API_VERSION.split("/"), "httproutes"),
)
"""(group, version, plural) of every kind of child: a change to one (a rollout's progress, its deletion)
wakes its owner's loop at once, so the periodic resync is only a safety net for a lost event. Kopf watches only the
objects labelled as managed by sluice; the HTTPRoute watch starts when the Gateway API CRDs are installed."""


WatchHandler = Callable[..., Awaitable[None]]
"""A Kopf event handler, called with Kopf's keyword arguments (type, namespace, name, body, labels, ...)."""


def register(registry: kopf.OperatorRegistry, loops: Loops) -> dict[str, WatchHandler]:
    """The watch handlers: ModelDeployments start, wake and stop loops; events of their children wake their owner.
    Returns them by id: `modeldeployment`, then each child resource's plural."""

    intents: dict[ObjectKey, tuple[Any, ...]] = {}
    """Per ModelDeployment, what a person can change (generation, annotations, deletion) as last seen: an event
    that changes none of it is the operator's own status write, which needs no reconcile (`decide` is idempotent);
    skipping it saves a reconcile's reads per status write (measured by `make bench`)."""

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def modeldeployment_event(**kwargs: Any) -> None:
        key = (kwargs["namespace"], kwargs["name"])
        metadata = kwargs["body"].get("metadata", {})
        watch = loops.reconciler.watch
        if watch is not None:
            watch.delivered(key, metadata.get("resourceVersion"))
        if kwargs["type"] == "DELETED":
            if watch is not None:
                watch.forget(key)
            intents.pop(key, None)
            loops.stop(key)
            return
        intent = (
            metadata.get("generation"),
            sorted((metadata.get("annotations") or {}).items()),
            metadata.get("deletionTimestamp"),
        )
        if intents.get(key) == intent and loops.running(key):
            return
        intents[key] = intent
        loops.wake(key)

    async def child_event(**kwargs: Any) -> None:
        owner = kwargs["labels"].get(MODELDEPLOYMENT_LABEL)
        if owner:
            loops.wake((kwargs["namespace"], owner), start=False)

    for group, version, plural in CHILD_RESOURCES:
        kopf.on.event(group, version, plural, labels={MANAGED_BY_LABEL: MANAGER}, registry=registry, id=plural)(
            child_event
        )

    @kopf.on.cleanup(registry=registry)
    async def stop_loops(**_: Any) -> None:
        await loops.stop_all()

    return {"modeldeployment": modeldeployment_event} | {plural: child_event for *_, plural in CHILD_RESOURCES}


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """No diff base: sluice registers no on.create/on.update handlers, so Kopf has nothing to diff, yet by default it
    deep-copies every watched body to build one (about a tenth of the operator's CPU while ModelDeployments are
    created at scale, as profiled by `make bench`). Kopf never stores one either: that follows changing handlers."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


def kopf_settings(watch_inactivity_seconds: float = 70.0) -> kopf.OperatorSettings:
    """Kopf as a pure watcher: it posts no Events of its own (the reconciler posts the plan's), builds no diff base;
    a watch stream silent (not even a bookmark) for `watch_inactivity_seconds` is reconnected."""
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.inactivity_timeout = watch_inactivity_seconds
    return settings
