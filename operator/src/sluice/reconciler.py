"""One reconcile of one ModelDeployment: read it, validate its spec, observe its workloads and metrics, `decide`,
then apply the children, set the traffic split, write the status and post the plan's Events.

Everything it does to Kubernetes goes through the `Cluster` protocol (adapters/cluster.py), so the unit tests run
it on an in-memory cluster. A spec the cluster cannot carry out (a 422 child, a child name held by another owner)
is reported on the status as InvalidSpec with a Warning Event, not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from sluice.adapters import logs, telemetry
from sluice.adapters.cluster import ChildError, Cluster, ObservedWorkloads
from sluice.adapters.deployments import workload_state
from sluice.adapters.experiment import ExperimentMetrics, ExperimentQuery, ExperimentReader
from sluice.adapters.health import WatchLag
from sluice.adapters.kube import parse_status
from sluice.adapters.metrics import MetricsProvider, canary_query
from sluice.adapters.mirror_support import parent_gateways
from sluice.adapters.notifier import Notifications
from sluice.adapters.receivers import Receivers
from sluice.adapters.registry import RegistryError
from sluice.adapters.routers import router_for
from sluice.adapters.shadow import ShadowMetrics, ShadowQuery, ShadowReader
from sluice.adapters.validation import DEFAULT_CANARY_URL_TEMPLATE, ValidationRunner
from sluice.adapters.world import read_blocked_pods, read_route
from sluice.api.v1alpha1 import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    PAUSED_ANNOTATION,
    Action,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelFormat,
    Phase,
    ResolvedModel,
)
from sluice.core import registry, validation
from sluice.core.children import (
    AUTOSCALED_ANNOTATION,
    AUTOSCALING_API_VERSION,
    ChildNames,
    Owner,
    ServingDefaults,
    stable_pod_selector,
)
from sluice.core.experiment import experiment_window
from sluice.core.notifications import Subject, notification_status, rollout_notices, wanted, wanted_receivers
from sluice.core.plan import (
    ActionRequest,
    AnalysisReading,
    EventRecord,
    EventType,
    ExperimentReading,
    Observations,
    ParentGateway,
    Plan,
    ShadowReading,
    ValidationReading,
    WorkloadState,
)
from sluice.core.rollout import analysed_versions, check_window, decide, validation_due
from sluice.core.workloads import workloads
from sluice.core.world import has_gateway, pods_due

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


REGISTRY_RETRY = timedelta(seconds=30)
"""When a models:/ uri could not be resolved, the wait before the next attempt."""


class Resolver(Protocol):
    """Resolves a models:/ reference (adapters/registry.MlflowRegistry)."""

    async def resolve(self, ref: registry.RegistryRef, wanted: ModelFormat | None) -> registry.Resolution: ...


def _default_shadow_provider(url: str) -> ShadowReader:
    return ShadowMetrics(url, 10.0)


def _default_experiment_provider(url: str) -> ExperimentReader:
    return ExperimentMetrics(url, 10.0)


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


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"spec.{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
    )


@dataclass(frozen=True)
class _Read:
    """One reconcile's reading of its ModelDeployment."""

    body: Mapping[str, Any]
    status: ModelDeploymentStatus
    generation: int
    now: datetime

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


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
    mirror_gateway_classes: frozenset[str] = frozenset()
    """GatewayClasses whose RequestMirror support the admin asserts (settings.mirror_gateway_classes)."""
    notifications: Notifications | None = None
    """Rollout notifications to webhooks (docs/notifications.md); None: none."""
    experiment_provider: Callable[[str], ExperimentReader] | None = None
    """The experiment reader for a Prometheus URL; by default `ExperimentMetrics` with a 10 s timeout."""
    registry: Resolver | None = None
    """The MLflow tracking server of the operator's settings (adapters/registry.MlflowRegistry); None: none."""

    async def reconcile(self, namespace: str, name: str) -> timedelta | None:
        """Bring one ModelDeployment's children and status in line; the wait until the next look (None: no timer).

        Raises ObjectGoneError when the ModelDeployment no longer exists or is being deleted, or vanishes before its
        status is written.
        """
        body = await self.cluster.read_model_deployment(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            if self.notifications is not None:
                self.notifications.notifier.forget((namespace, name))
            raise ObjectGoneError(f"{namespace}/{name}")
        if self.watch is not None:
            self.watch.read((namespace, name), body["metadata"].get("resourceVersion"))
        read = _Read(body, parse_status(body), int(body["metadata"].get("generation", 0)), self.clock())
        steps = len(((body.get("spec") or {}).get("rollout") or {}).get("steps") or [])
        logs.at_step(logs.describe_step(read.status.phase, read.status.current_step, steps, read.status.canary_weight))
        try:
            spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            await self._reject(read, _validation_message(error))
            return None
        problems = validation.problems(name, spec, self.defaults.image)
        problems += validation.allowlist_problems(namespace, spec, self.allow)
        if problems:
            await self._reject(read, "; ".join(problems))
            return None
        if registry.resolution_due(spec.model, read.status.resolved_model):
            resolved = await self._resolve(read, spec)
            if resolved is None:
                return REGISTRY_RETRY
            read = replace(read, status=read.status.model_copy(update={"resolved_model": resolved}))
        spec = registry.pinned(spec, read.status.resolved_model)
        try:
            plan, observed = await self._plan(read, spec)
            await self._apply(read, spec, plan, observed)
        except ChildError as error:
            await self._reject(read, str(error))
            return None
        return await self._report(read, spec, plan)

    async def _resolve(self, read: _Read, spec: ModelDeploymentSpec) -> ResolvedModel | None:
        """spec.model's models:/ uri resolved now (once per spec.model); None, reported as InvalidSpec, when it
        cannot be: the message is fixed text, nothing the tracking server said."""
        ref = registry.parse_registry_uri(spec.model.uri)
        if self.registry is None or ref is None:
            await self._reject(read, registry.NO_TRACKING_URI)
            return None
        try:
            return registry.resolved_model(spec.model, await self.registry.resolve(ref, spec.model.format), read.now)
        except (RegistryError, ValueError) as error:
            await self._reject(read, f"spec.model.uri cannot be resolved: {error}")
            return None

    async def _plan(self, read: _Read, spec: ModelDeploymentSpec) -> tuple[Plan, ObservedWorkloads]:
        """Observe the workloads (and metrics, the validation gate, the shadow comparisons when due), then decide."""
        owner, status, now = Owner.from_metadata(read.body["metadata"]), read.status, read.now
        observed = await self.cluster.read_workloads(owner)
        annotations = read.body["metadata"].get("annotations") or {}
        stable, canary = workload_state(observed.stable), workload_state(observed.canary)
        observations = Observations(
            generation=read.generation,
            stable=stable,
            canary=canary,
            analysis=await self._analysis(spec, status, owner, now),
            action=requested_action(annotations, status),
            paused=spec.paused or annotations.get(PAUSED_ANNOTATION) == "true",
            validation=await self._validation(spec, status, owner, canary, now),
            shadow=await self._shadow(spec, status, owner, now),
            blocked_pods=await read_blocked_pods(self.cluster, owner) if pods_due(stable, canary) else None,
            route=await read_route(self.cluster, owner) if has_gateway(spec) else None,
            gateways=await self._gateways(spec, owner),
            experiment=await self._experiment(spec, status, owner, now),
        )
        return decide(spec, status, observations, now), observed

    async def _apply(self, read: _Read, spec: ModelDeploymentSpec, plan: Plan, observed: ObservedWorkloads) -> None:
        """The children the plan asks for (the Deployments compared with their reading) and the traffic split: the
        split first when the canary goes down to no replicas, else last."""
        owner, names = Owner.from_metadata(read.body["metadata"]), ChildNames.of(read.name)
        deployments = {names.stable_deployment: observed.stable, names.canary_deployment: observed.canary}
        router = router_for(self.cluster, spec)
        # Traffic leaves a canary before its replicas do: a crash (or a slow write) between the two must not leave
        # the route sending the canary's share to a Service without pods. Otherwise the route comes last.
        canary_going_down = plan.canary is not None and plan.canary.replicas == 0
        if canary_going_down:
            await router.set_weight(owner, plan.canary_weight, plan.mirror_percent, plan.canary_matches)
        tracks = {names.stable_deployment: plan.stable, names.canary_deployment: plan.canary}
        for desired in workloads(owner, spec, plan, self.defaults):
            name = desired["metadata"]["name"]
            if desired["kind"] != "Deployment":
                await self.cluster.apply_child(desired, owner)
            elif (track := tracks[name]) is not None and track.autoscaling is not None:
                await self.cluster.apply_autoscaled(desired, deployments[name], track.replicas)
            else:
                await self._drop_autoscaler(owner, deployments[name])
                await self.cluster.apply(desired, deployments[name])
        if not canary_going_down:
            await router.set_weight(owner, plan.canary_weight, plan.mirror_percent, plan.canary_matches)

    async def _drop_autoscaler(self, owner: Owner, observed: Mapping[str, Any] | None) -> None:
        """Delete the HPA of a Deployment that had one and is no longer autoscaled, before sluice sets its replicas
        again (the canary's once a rollout ends, both when spec.autoscaling is removed)."""
        annotations = (observed or {}).get("metadata", {}).get("annotations") or {}
        if annotations.get(AUTOSCALED_ANNOTATION) == "true":
            name = str((observed or {})["metadata"]["name"])
            await self.cluster.delete_child(AUTOSCALING_API_VERSION, "HorizontalPodAutoscaler", owner, name)

    async def _report(self, read: _Read, spec: ModelDeploymentSpec, plan: Plan) -> timedelta | None:
        """Write the plan's status, post its Events; the wait until the next look."""
        namespace, name = read.body["metadata"]["namespace"], read.name
        status, notified, after_write = await self._notifications(read, spec, plan.status)
        new_status = status.model_copy(update={"selector": stable_pod_selector(name)})
        try:
            await self.cluster.write_status(read.body, new_status)
        except ApiException as error:
            if error.status == 404:  # deleted since it was read (its namespace going, say): nothing left to report
                raise ObjectGoneError(f"{namespace}/{name}") from None
            raise
        after_write(new_status)
        telemetry.record(namespace, name, read.status, plan, self.clock())
        steps = len(spec.rollout.steps)
        logs.at_step(logs.describe_step(new_status.phase, new_status.current_step, steps, new_status.canary_weight))
        await self._post_events(read.body, (*plan.events, *notified), read.now)
        if plan.requeue_after is None:
            return None
        # The plan's wait counts from `now`: this reconcile's queries and writes already took part of it (without
        # this, every check ran late by one reconcile's duration, as `make bench` measured).
        return max(plan.requeue_after - (self.clock() - read.now), timedelta(0))

    async def _notifications(
        self, read: _Read, spec: ModelDeploymentSpec, status: ModelDeploymentStatus
    ) -> tuple[ModelDeploymentStatus, tuple[EventRecord, ...], Callable[[ModelDeploymentStatus], None]]:
        """The status with the Notified condition and the delivery counts, the Warning Events that go with them,
        and what to do once that status is written: count the reported deliveries as written, queue the rollout
        events of the transition for the receivers (never waiting for their delivery)."""
        setup = self.notifications
        if setup is None:
            return status, (), lambda _written: None
        metadata = read.body["metadata"]
        key = (str(metadata["namespace"]), read.name)
        receivers = wanted_receivers(spec.notifications, setup.default_receivers)
        found = await setup.receivers.read() if receivers else Receivers()
        report = setup.notifier.report(key)
        status, events = notification_status(status, receivers, found.book(), report, read.now)

        def after_write(written: ModelDeploymentStatus) -> None:
            setup.notifier.acknowledge(key, report)
            subject = Subject(key[0], key[1], str(metadata["uid"]), len(spec.rollout.steps))
            notices = rollout_notices(subject, read.status, written, read.now)
            targets = [found.by_name[name] for name in receivers if name in found.by_name]
            setup.notifier.send(key, targets, [notice for notice in notices if wanted(spec.notifications, notice)])

        return status, events, after_write

    def _prometheus_url(self, spec: ModelDeploymentSpec) -> str:
        """The Prometheus of the spec's analysis, else the operator's default."""
        return spec.analysis.prometheus.url if spec.analysis.prometheus else self.default_prometheus_url

    async def _analysis(
        self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, owner: Owner, now: datetime
    ) -> AnalysisReading | None:
        window = check_window(spec, status, now)
        versions = analysed_versions(status)
        if window is None or versions is None:
            return None
        query = canary_query(
            spec.analysis,
            namespace=owner.namespace,
            name=owner.name,
            canary_version=versions[0],
            stable_version=versions[1],
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
        return await runner.run(spec.validation, owner.namespace, owner.name, spec.model.version)

    async def _shadow(
        self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, owner: Owner, now: datetime
    ) -> ShadowReading | None:
        """The canary's comparisons with stable over the check window, when a shadow check is due."""
        window = check_window(spec, status, now)
        if window is None or status.phase is not Phase.SHADOWING or status.canary_version is None:
            return None
        reader = (self.shadow_provider or _default_shadow_provider)(self._prometheus_url(spec))
        return await reader.read(ShadowQuery(owner.namespace, owner.name, status.canary_version, window))

    async def _experiment(
        self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, owner: Owner, now: datetime
    ) -> ExperimentReading | None:
        """Both arms' requests and metrics since the experiment started, when an experiment check is due."""
        window = experiment_window(spec, status, now)
        stable, candidate = status.stable_version, status.canary_version
        if window is None or spec.experiment is None or stable is None or candidate is None:
            return None
        metrics = {metric.name: metric.query for metric in spec.experiment.metrics}
        query = ExperimentQuery(owner.namespace, owner.name, stable, candidate, window, metrics)
        reader = (self.experiment_provider or _default_experiment_provider)(self._prometheus_url(spec))
        return await reader.read(query)

    async def _gateways(self, spec: ModelDeploymentSpec, owner: Owner) -> tuple[ParentGateway, ...] | None:
        """The route's parent Gateways and their RequestMirror support, with spec.rollout.shadow behind a Gateway
        (read at every reconcile: the core holds the shadow phase without it)."""
        if spec.rollout.shadow is None or spec.traffic is None or spec.traffic.gateway is None:
            return None
        return await parent_gateways(self.cluster, owner.namespace, spec.traffic.gateway, self.mirror_gateway_classes)

    async def _reject(self, read: _Read, message: str) -> None:
        """Ready=False, reason InvalidSpec, and a Warning Event when that is news; children stay as they are."""
        namespace, name = read.body["metadata"]["namespace"], read.name
        log.warning("%s/%s: invalid spec: %s", namespace, name, message)
        rejected = validation.invalid_spec_status(read.status, message, read.generation, read.now)
        written = await self.cluster.write_status(read.body, rejected)
        telemetry.observe_state(namespace, name, rejected)
        if written:
            invalid = EventRecord(EventType.WARNING, validation.INVALID_SPEC, message)
            await self._post_events(read.body, (invalid,), read.now)

    async def _post_events(self, body: Mapping[str, Any], events: tuple[EventRecord, ...], now: datetime) -> None:
        for record in events:
            try:
                await self.cluster.post_event(body, record, now)
            except ApiException as error:  # an Event is worth no retry of the whole reconcile
                log.warning("could not post event %s: %s %s", record.reason, error.reason, error.body)
