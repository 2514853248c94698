"""`Reconciler.reconcile` on an in-memory cluster: one test per branch (a gone object, an invalid spec, a child
the API server rejects, a child name held by another owner, a stale status write, and each shape of plan)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from sluice.adapters.cluster import ObservedWorkloads
from sluice.adapters.metrics import CanaryQuery, MetricsProvider
from sluice.api.v1alpha1 import KIND, Phase
from sluice.core.children import ChildNames, Owner, ServingDefaults
from sluice.core.conditions import READY, find_condition
from sluice.core.plan import AnalysisReading
from sluice.reconciler import ObjectGoneError, Reconciler
from unit.operator.memory_cluster import MemoryCluster

NAMESPACE, NAME = "ml", "fraud"
NAMES = ChildNames.of(NAME)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HEALTHY = AnalysisReading(request_count=120, error_rate=0.001, latency_p99_seconds=0.08)
GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}


def spec(version: str = "1.0.0", **overrides: Any) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "model": {"version": version, "uri": f"s3://models/fraud/{version}/model.onnx", "format": "onnx"},
        "replicas": 2,
        "rollout": {"steps": [10, 50], "interval": "1m", "progressDeadline": "10m"},
    }
    return wire | overrides


@dataclass
class Metrics:
    """A MetricsProvider answering every query with `reading`, recording the queries."""

    reading: AnalysisReading = HEALTHY
    queries: list[CanaryQuery] = field(default_factory=list)

    async def read(self, query: CanaryQuery) -> AnalysisReading:
        self.queries.append(query)
        return self.reading


@dataclass
class Harness:
    cluster: MemoryCluster = field(default_factory=lambda: MemoryCluster(gateways={(NAMESPACE, "public")}))
    metrics: Metrics = field(default_factory=Metrics)
    now: datetime = T0

    def reconciler(self) -> Reconciler:
        def provider(url: str) -> MetricsProvider:
            return self.metrics

        return Reconciler(
            cluster=self.cluster,
            defaults=ServingDefaults(image="sluice-serving:test"),
            default_prometheus_url="http://prometheus:9090",
            metrics_provider=provider,
            clock=lambda: self.now,
        )

    def reconcile(self) -> timedelta | None:
        return asyncio.run(self.reconciler().reconcile(NAMESPACE, NAME))

    def create(self, wire: dict[str, Any]) -> None:
        self.cluster.add_model_deployment(NAMESPACE, NAME, wire)

    def set_spec(self, wire: dict[str, Any]) -> None:
        body = self.cluster.get(KIND, NAMESPACE, NAME)
        assert body is not None
        body["spec"] = wire
        body["metadata"]["generation"] += 1
        self.cluster.put(body)

    def status_phase(self) -> Phase | None:
        return self.cluster.status(NAMESPACE, NAME).phase

    def ready(self) -> tuple[str, str, str]:
        found = find_condition(self.cluster.status(NAMESPACE, NAME).conditions, READY)
        assert found is not None
        return found.status, found.reason, found.message

    def event_reasons(self) -> list[str]:
        return [event.reason for event in self.cluster.events]


def stable(harness: Harness, wire: dict[str, Any]) -> Harness:
    """`wire` deployed and Stable."""
    harness.create(wire)
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.stable_deployment)
    harness.reconcile()
    assert harness.status_phase() is Phase.STABLE
    harness.cluster.events.clear()
    harness.cluster.writes.clear()
    return harness


# --- the object is gone --------------------------------------------------------------------------------------------


def test_a_model_deployment_that_no_longer_exists_ends_its_loop() -> None:
    with pytest.raises(ObjectGoneError):
        Harness().reconcile()


def test_a_model_deployment_being_deleted_ends_its_loop_without_writing() -> None:
    harness = Harness()
    harness.create(spec())
    harness.cluster.objects[(KIND, NAMESPACE, NAME)]["metadata"]["deletionTimestamp"] = "2025-03-01T11:00:00Z"

    with pytest.raises(ObjectGoneError):
        harness.reconcile()
    assert harness.cluster.writes == []


def test_a_model_deployment_deleted_before_its_status_is_written_ends_its_loop_quietly() -> None:
    harness = Harness()
    harness.create(spec())
    read_workloads = harness.cluster.read_workloads

    async def deleted_while_observed(owner: Owner) -> ObservedWorkloads:
        del harness.cluster.objects[(KIND, NAMESPACE, NAME)]
        return await read_workloads(owner)

    harness.cluster.read_workloads = deleted_while_observed  # type: ignore[method-assign]

    with pytest.raises(ObjectGoneError):
        harness.reconcile()


# --- invalid specs and children the cluster will not take ----------------------------------------------------------


def test_a_spec_the_api_models_reject_is_reported_as_invalid_spec_and_nothing_is_applied() -> None:
    harness = Harness()
    harness.create(spec(replicas="many"))

    assert harness.reconcile() is None

    status, reason, message = harness.ready()
    assert (status, reason) == ("False", "InvalidSpec")
    assert "spec.replicas" in message
    assert harness.cluster.writes == [f"status {NAME}"]
    assert harness.event_reasons() == ["InvalidSpec"]


def test_a_spec_the_api_server_admits_but_sluice_cannot_serve_is_reported_as_invalid_spec() -> None:
    harness = Harness()
    harness.create(spec(rollout={"steps": [10], "shadow": {"percent": 10, "checks": 1}}))

    assert harness.reconcile() is None

    status, reason, message = harness.ready()
    assert (status, reason) == ("False", "InvalidSpec")
    assert "spec.rollout.shadow needs spec.traffic.gateway" in message
    assert harness.cluster.writes == [f"status {NAME}"]


def test_a_child_the_api_server_rejects_is_reported_as_invalid_spec_instead_of_retried() -> None:
    harness = Harness()
    harness.cluster.rejected_kinds.add("HTTPRoute")
    harness.create(spec(traffic=GATEWAY))

    assert harness.reconcile() is None

    status, reason, message = harness.ready()
    assert (status, reason) == ("False", "InvalidSpec")
    assert message.startswith("the API server rejected a child")
    assert harness.event_reasons() == ["InvalidSpec"]


def test_a_child_name_held_by_another_owner_is_reported_as_invalid_spec_instead_of_retried() -> None:
    harness = Harness()
    harness.cluster.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAMES.stable_deployment, "namespace": NAMESPACE},
        }
    )
    harness.create(spec())

    assert harness.reconcile() is None

    status, reason, message = harness.ready()
    assert (status, reason) == ("False", "InvalidSpec")
    assert f"Deployment {NAMESPACE}/{NAMES.stable_deployment} exists and is not controlled by {NAME}" in message
    assert harness.event_reasons() == ["InvalidSpec"]
    assert harness.cluster.writes == [f"status {NAME}"]


def test_an_invalid_spec_reported_once_is_not_reported_again() -> None:
    harness = Harness()
    harness.create(spec(replicas="many"))
    harness.reconcile()

    harness.reconcile()

    assert harness.event_reasons() == ["InvalidSpec"]
    assert harness.cluster.writes == [f"status {NAME}"]


# --- a stale read --------------------------------------------------------------------------------------------------


@dataclass
class ChangedWhileReconciled(MemoryCluster):
    """Someone updates the ModelDeployment after the reconciler has read it."""

    async def read_workloads(self, owner: Owner) -> ObservedWorkloads:
        body = self.get(KIND, owner.namespace, owner.name)
        assert body is not None
        self.put(body)
        return await super().read_workloads(owner)


def test_a_status_decided_on_a_stale_read_is_not_written_and_the_conflict_goes_to_the_loop() -> None:
    harness = Harness(cluster=ChangedWhileReconciled())
    harness.create(spec())

    with pytest.raises(ApiException) as raised:
        harness.reconcile()

    assert raised.value.status == 409
    assert harness.status_phase() is None


# --- each shape of plan --------------------------------------------------------------------------------------------


def test_a_first_deploy_applies_the_stable_deployment_and_its_services_and_waits_without_a_timer() -> None:
    harness = Harness()
    harness.create(spec())

    requeue = harness.reconcile()

    assert requeue is None
    assert harness.status_phase() is Phase.INITIALIZING
    assert harness.cluster.writes == [
        f"apply Deployment/{NAMES.stable_deployment}",
        f"apply Service/{NAMES.service}",
        f"apply Service/{NAMES.canary_service}",
        f"status {NAME}",
    ]


def test_a_first_deploy_becomes_stable_once_its_deployment_is_available() -> None:
    harness = Harness()
    harness.create(spec())
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.stable_deployment)

    harness.reconcile()

    assert harness.status_phase() is Phase.STABLE
    assert harness.event_reasons() == ["Deployed"]
    assert harness.ready()[:2] == ("True", "StableAvailable")


def test_an_unchanged_object_costs_no_write_and_no_event() -> None:
    harness = stable(Harness(), spec())

    harness.reconcile()

    assert (harness.cluster.writes, harness.cluster.events) == ([], [])


def test_a_new_version_starts_a_canary_and_looks_again_at_its_progress_deadline() -> None:
    harness = stable(Harness(), spec())
    harness.set_spec(spec("2.0.0"))

    requeue = harness.reconcile()

    assert requeue == timedelta(minutes=10)
    assert harness.status_phase() is Phase.PROGRESSING
    assert harness.event_reasons() == ["RolloutStarted"]
    canary = harness.cluster.get("Deployment", NAMESPACE, NAMES.canary_deployment)
    assert canary is not None
    assert canary["spec"]["replicas"] == 1


def test_a_gateway_rollout_sets_the_http_route_weights() -> None:
    harness = stable(Harness(), spec(traffic=GATEWAY))
    harness.set_spec(spec("2.0.0", traffic=GATEWAY))
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)

    harness.reconcile()

    route = harness.cluster.get("HTTPRoute", NAMESPACE, NAME)
    assert route is not None
    weights = {ref["name"]: ref["weight"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]}
    assert weights == {NAMES.service: 90, NAMES.canary_service: 10}


def test_a_rollout_match_is_written_into_the_route_at_the_first_step_and_leaves_it_at_promotion() -> None:
    rollout = {
        "steps": [0],
        "interval": "1m",
        "progressDeadline": "10m",
        "match": [{"cookie": {"name": "a", "value": "b"}}],
    }
    harness = stable(Harness(), spec(traffic=GATEWAY, rollout=rollout))
    harness.set_spec(spec("2.0.0", traffic=GATEWAY, rollout=rollout))
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)

    harness.reconcile()

    def backends() -> list[list[tuple[str, int]]]:
        route = harness.cluster.get("HTTPRoute", NAMESPACE, NAME)
        assert route is not None
        return [[(ref["name"], ref["weight"]) for ref in rule["backendRefs"]] for rule in route["spec"]["rules"]]

    assert backends() == [[(NAMES.canary_service, 100)], [(NAMES.service, 100), (NAMES.canary_service, 0)]]
    harness.now += timedelta(minutes=1)
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.stable_deployment)
    harness.reconcile()
    assert harness.status_phase() is Phase.STABLE
    assert backends() == [[(NAMES.service, 100), (NAMES.canary_service, 0)]]


def test_a_due_check_reads_the_canary_metrics_and_a_pass_advances_the_step() -> None:
    harness = stable(Harness(), spec())
    harness.set_spec(spec("2.0.0"))
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)
    assert harness.reconcile() == timedelta(minutes=1)
    harness.now += timedelta(minutes=1)

    harness.reconcile()

    assert [(query.version, query.window) for query in harness.metrics.queries] == [("2.0.0", timedelta(minutes=1))]
    assert harness.cluster.status(NAMESPACE, NAME).canary_weight == 50
    assert harness.event_reasons()[-2:] == ["CheckPassed", "StepAdvanced"]


def test_a_rollout_past_its_last_step_rolls_the_stable_deployment_to_the_new_version() -> None:
    harness = stable(Harness(), spec(rollout={"steps": [10], "interval": "1m", "progressDeadline": "10m"}))
    harness.set_spec(spec("2.0.0", rollout={"steps": [10], "interval": "1m", "progressDeadline": "10m"}))
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)
    harness.reconcile()
    harness.now += timedelta(minutes=1)

    assert harness.reconcile() is None

    assert harness.status_phase() is Phase.PROMOTING
    stable_deployment = harness.cluster.get("Deployment", NAMESPACE, NAMES.stable_deployment)
    assert stable_deployment is not None
    assert stable_deployment["metadata"]["labels"]["sluice.dev/version"] == "2.0.0"
