"""Kopf wiring: one reconcile loop per ModelDeployment, woken by watch events, running core and adapters.

Kopf only watches: ModelDeployment events start, wake and stop the loops; events of their children (Deployments,
Services, HTTPRoutes) wake their owner's loop. Kopf itself writes nothing (no finalizers, no annotations, no
handler-result status, no Events of its own), so an unchanged ModelDeployment costs reads only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from sluice.adapters import logs, telemetry
from sluice.adapters.health import WatchLag
from sluice.adapters.kube import Cluster, parse_status, workload_state
from sluice.adapters.metrics import MetricsProvider, canary_query
from sluice.adapters.routers import router_for
from sluice.adapters.shadow import ShadowMetrics, ShadowQuery, ShadowReader
from sluice.adapters.telemetry import RECONCILE_SECONDS, RECONCILES
from sluice.adapters.validation import DEFAULT_CANARY_URL_TEMPLATE, ValidationRunner
from sluice.api.v1alpha1 import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    GROUP,
    PAUSED_ANNOTATION,
    PLURAL,
    VERSION,
    Action,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Phase,
)
from sluice.core import validation
from sluice.core.children import (
    GATEWAY_API_VERSION,
    MANAGED_BY_LABEL,
    MANAGER,
    MODELDEPLOYMENT_LABEL,
    ChildNames,
    Owner,
    ServingDefaults,
    stable_pod_selector,
    workloads,
)
from sluice.core.plan import (
    ActionRequest,
    AnalysisReading,
    EventRecord,
    EventType,
    Observations,
    ShadowReading,
    ValidationReading,
    WorkloadState,
)
from sluice.core.rollout import check_window, decide, validation_due

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ObjectKey = tuple[str, str]
"""(namespace, name) of a ModelDeployment."""

_CONFLICT_RETRY = timedelta(seconds=1)
_MAX_FAILURE_BACKOFF_SECONDS = 300.0
RESYNC_SPREAD = 0.1


def _default_shadow_provider(url: str) -> ShadowReader:
    return ShadowMetrics(url, 10.0)


class ObjectGoneError(Exception):
    """The ModelDeployment was deleted: its loop ends."""


def requested_action(annotations: Mapping[str, str], status: ModelDeploymentStatus) -> ActionRequest | None:
    """The manual request in the annotations, unless it was handled already or names no known action."""
    action, request_id = annotations.get(ACTION_ANNOTATION), annotations.get(ACTION_ID_ANNOTATION)
    if not action or not request_id or request_id == status.last_handled_action_id:
        return None
    try:
        return ActionRequest(action=Action(action), request_id=request_id)
    except ValueError:
        log.warning("ignoring %s=%r: not one of %s", ACTION_ANNOTATION, action, ", ".join(a.value for a in Action))
        return None


def _rejection(error: ApiException) -> str:
    """The message of a 422 Status, else the raw body."""
    try:
        return str(json.loads(error.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(error.body)


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"spec.{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
    )


@dataclass
class Reconciler:
    """One reconcile of one ModelDeployment: read, validate, observe, decide, act."""

    cluster: Cluster
    defaults: ServingDefaults
    default_prometheus_url: str
    metrics_provider: Callable[[str], MetricsProvider]
    """The provider for a Prometheus URL."""
    clock: Clock
    watch: WatchLag | None = None
    """Told the resourceVersion of every direct read, for the readiness probe."""
    canary_url_template: str = DEFAULT_CANARY_URL_TEMPLATE
    """Base URL of a canary Service, for the validation gate (settings.canary_url_template)."""
    shadow_provider: Callable[[str], ShadowReader] | None = None
    """The shadow comparisons reader for a Prometheus URL; by default `ShadowMetrics` with a 10 s timeout."""
    allow: validation.Allowlists = field(default_factory=validation.Allowlists)
    """What specs may point the operator at (settings.allowlists()); a spec outside it is an InvalidSpec."""

    async def reconcile(self, namespace: str, name: str) -> timedelta | None:
        """Bring one ModelDeployment's children and status in line; the wait until the next look (None: no timer).

        Raises ObjectGoneError when the ModelDeployment no longer exists or is being deleted.
        """
        body = await self.cluster.read_model_deployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            raise ObjectGoneError(f"{namespace}/{name}")
        if self.watch is not None:
            self.watch.read((namespace, name), body["metadata"].get("resourceVersion"))
        now = self.clock()
        status = parse_status(body)
        generation = int(body["metadata"].get("generation", 0))
        steps = len(((body.get("spec") or {}).get("rollout") or {}).get("steps") or [])
        logs.at_step(logs.describe_step(status.phase, status.current_step, steps, status.canary_weight))
        try:
            spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            await self._reject(body, status, _validation_message(error), generation, now)
            return None
        problems = validation.problems(name, spec, self.defaults.image)
        problems += validation.allowlist_problems(namespace, spec, self.allow)
        if problems:
            await self._reject(body, status, "; ".join(problems), generation, now)
            return None

        owner = Owner.from_metadata(body["metadata"])
        observed = await self.cluster.read_workloads(owner)
        annotations = body["metadata"].get("annotations") or {}
        observations = Observations(
            generation=generation,
            stable=workload_state(observed.stable),
            canary=workload_state(observed.canary),
            analysis=await self._analysis(spec, status, owner, now),
            action=requested_action(annotations, status),
            paused=spec.paused or annotations.get(PAUSED_ANNOTATION) == "true",
            validation=await self._validation(spec, status, owner, workload_state(observed.canary), now),
            shadow=await self._shadow(spec, status, owner, now),
        )
        plan = decide(spec, status, observations, now)

        names = ChildNames.of(name)
        observed_deployments = {names.stable_deployment: observed.stable, names.canary_deployment: observed.canary}
        router = router_for(self.cluster, spec)
        # Traffic leaves a canary before its replicas do: a crash (or a slow write) between the two must not leave
        # the route sending the canary's share to a Service without pods. Otherwise the route comes last.
        canary_going_down = plan.canary is not None and plan.canary.replicas == 0
        try:
            if canary_going_down:
                await router.set_weight(owner, plan.canary_weight, plan.mirror_percent)
            for desired in workloads(owner, spec, plan, self.defaults):
                if desired["kind"] == "Deployment":
                    await self.cluster.apply(desired, observed_deployments[desired["metadata"]["name"]])
                else:
                    await self.cluster.apply_child(desired, owner)
            if not canary_going_down:
                await router.set_weight(owner, plan.canary_weight, plan.mirror_percent)
        except ApiException as error:
            if error.status != 422:
                raise
            # A spec the CRD admits can still make a child another API rejects (e.g. an HTTPRoute's CEL rules on
            # parentRefs): that is an invalid spec too, reported as such instead of retried for ever.
            await self._reject(body, status, f"the API server rejected a child: {_rejection(error)}", generation, now)
            return None
        new_status = plan.status.model_copy(update={"selector": stable_pod_selector(name)})
        await self.cluster.write_status(body, new_status)
        telemetry.record(namespace, name, status, plan, self.clock())
        steps = len(spec.rollout.steps)
        logs.at_step(logs.describe_step(new_status.phase, new_status.current_step, steps, new_status.canary_weight))
        await self._post_events(body, plan.events, now)
        if plan.requeue_after is None:
            return None
        # The plan's wait counts from `now`: this reconcile's queries and writes already took part of it (without
        # this, every check ran late by one reconcile's duration, as `make bench` measured).
        return max(plan.requeue_after - (self.clock() - now), timedelta(0))

    def _prometheus_url(self, spec: ModelDeploymentSpec) -> str:
        """The Prometheus of the spec's analysis, else the operator's default."""
        return spec.analysis.prometheus.url if spec.analysis.prometheus else self.default_prometheus_url

    async def _analysis(
        self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, owner: Owner, now: datetime
    ) -> AnalysisReading | None:
        window = check_window(spec, status, now)
        if window is None or status.canary_version is None:
            return None
        query = canary_query(
            spec.analysis,
            namespace=owner.namespace,
            name=owner.name,
            canary_version=status.canary_version,
            stable_version=status.stable_version,
            window=window,
        )
        return await self.metrics_provider(self._prometheus_url(spec)).read(query)

    async def _validation(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        owner: Owner,
        canary: WorkloadState,
        now: datetime,
    ) -> ValidationReading | None:
        """The validation gate's run against the canary Service, when it is due."""
        if spec.validation is None or not validation_due(spec, status, canary, now):
            return None
        runner = ValidationRunner(self.cluster.read_config_map_key, self.canary_url_template, self.allow)
        return await runner.run(spec.validation, owner.namespace, owner.name)

    async def _shadow(
        self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, owner: Owner, now: datetime
    ) -> ShadowReading | None:
        """The canary's comparisons with stable over the check window, when a shadow check is due."""
        window = check_window(spec, status, now)
        if window is None or status.phase is not Phase.SHADOWING or status.canary_version is None:
            return None
        reader = (self.shadow_provider or _default_shadow_provider)(self._prometheus_url(spec))
        return await reader.read(ShadowQuery(owner.namespace, owner.name, status.canary_version, window))

    async def _reject(
        self, body: Mapping[str, Any], status: ModelDeploymentStatus, message: str, generation: int, now: datetime
    ) -> None:
        """Ready=False, reason InvalidSpec, and a Warning Event when that is news; children stay as they are."""
        log.warning("%s/%s: invalid spec: %s", body["metadata"]["namespace"], body["metadata"]["name"], message)
        rejected = validation.invalid_spec_status(status, message, generation, now)
        written = await self.cluster.write_status(body, rejected)
        telemetry.observe_state(body["metadata"]["namespace"], body["metadata"]["name"], rejected)
        if written:
            await self._post_events(body, (EventRecord(EventType.WARNING, validation.INVALID_SPEC, message),), now)

    async def _post_events(self, body: Mapping[str, Any], events: tuple[EventRecord, ...], now: datetime) -> None:
        for record in events:
            try:
                await self.cluster.post_event(body, record, now)
            except ApiException as error:  # an Event is worth no retry of the whole reconcile
                log.warning("could not post event %s: %s %s", record.reason, error.reason, error.body)


@dataclass
class _Loop:
    task: asyncio.Task[None]
    wake: asyncio.Event


@dataclass
class Loops:
    """One reconcile loop per ModelDeployment: it runs, then sleeps until woken or its next timer."""

    reconciler: Reconciler
    resync: timedelta
    """The longest sleep: a loop with no timer of its own looks again after 90-100% of this (spread, so that objects
    created together do not all resync at once)."""
    _loops: dict[ObjectKey, _Loop] = field(default_factory=dict)

    def wake(self, key: ObjectKey, *, start: bool = True) -> None:
        """Reconcile `key` soon, starting its loop if it has none (and `start`)."""
        loop = self._loops.get(key)
        if loop is None and start:
            wake = asyncio.Event()
            loop = self._loops[key] = _Loop(asyncio.create_task(self._run(key, wake), name=f"reconcile {key}"), wake)
        if loop is not None:
            loop.wake.set()

    def running(self, key: ObjectKey) -> bool:
        return key in self._loops

    def stop(self, key: ObjectKey) -> None:
        loop = self._loops.pop(key, None)
        if loop is not None:
            loop.task.cancel()
        telemetry.forget(*key)

    async def stop_all(self) -> None:
        loops = list(self._loops.values())
        self._loops.clear()
        for loop in loops:
            loop.task.cancel()
        await asyncio.gather(*(loop.task for loop in loops), return_exceptions=True)

    async def _run(self, key: ObjectKey, wake: asyncio.Event) -> None:
        logs.reconciling(*key)
        failures = 0
        while True:
            wake.clear()
            started = time.monotonic()
            outcome = "ok"
            try:
                requeue_after = await self.reconciler.reconcile(*key)
                failures = 0
            except ObjectGoneError:
                current = self._loops.get(key)
                if current is not None and current.wake is wake:
                    del self._loops[key]
                    telemetry.forget(*key)
                return
            except Exception as error:
                if isinstance(error, ApiException) and error.status == 409:
                    log.info("%s/%s changed while it was reconciled; looking again", *key)
                    outcome, requeue_after = "conflict", _CONFLICT_RETRY
                elif isinstance(error, ApiException) and "NamespaceTerminating" in str(error.body):
                    log.info("%s/%s: its namespace is being deleted", *key)
                    outcome, requeue_after = "conflict", self.resync
                else:
                    outcome = "error"
                    failures += 1
                    backoff = min(2.0**failures, _MAX_FAILURE_BACKOFF_SECONDS)
                    log.exception("%s/%s: reconcile failed (%d in a row); retrying in %.0fs", *key, failures, backoff)
                    requeue_after = timedelta(seconds=backoff)
            RECONCILES.labels(outcome).inc()
            RECONCILE_SECONDS.observe(time.monotonic() - started)
            resync = self.resync * (1 - RESYNC_SPREAD * random.random())
            wait = resync if requeue_after is None else min(requeue_after, resync)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=wait.total_seconds())


CHILD_RESOURCES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    (*GATEWAY_API_VERSION.split("/"), "httproutes"),
)
"""(group, version, plural) of every kind of child: a change to one (a rollout's progress, its deletion)
wakes its owner's loop at once, so the periodic resync is only a safety net for a lost event. Kopf watches only the
objects labelled as managed by sluice; the HTTPRoute watch starts when the Gateway API CRDs are installed."""


def register(registry: kopf.OperatorRegistry, loops: Loops) -> None:
    """The watch handlers: ModelDeployments start, wake and stop loops; events of their children wake their owner."""

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
