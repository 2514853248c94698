"""A models:/ uri on the reconciler: resolved once per spec.model through the operator's tracking server, recorded in
status.resolvedModel, and the pods given the pinned version, format and digest; an alias that moves later changes no
running revision; no tracking server, or one that cannot answer, is an InvalidSpec in fixed words."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sluice.adapters.registry import RegistryError
from sluice.api.v1alpha1 import ModelFormat, Phase
from sluice.core.children import ServingDefaults
from sluice.core.registry import NO_TRACKING_URI, RegistryRef, Resolution
from sluice.reconciler import REGISTRY_RETRY, Reconciler
from unit.operator.test_reconciler import NAME, NAMES, NAMESPACE, Harness, spec

DIGEST = "sha256:" + "ab" * 32
TRACKING = "http://mlflow.mlops:5000"


@dataclass
class Registry:
    """A resolver answering `version` (or raising `error`), recording the references asked for."""

    version: str = "1"
    error: str = ""
    asked: list[RegistryRef] = field(default_factory=list)

    async def resolve(self, ref: RegistryRef, wanted: ModelFormat | None) -> Resolution:
        self.asked.append(ref)
        if self.error:
            raise RegistryError(self.error)
        return Resolution(version=self.version, format=ModelFormat.SKLEARN, digest=DIGEST)


@dataclass
class RegistryHarness(Harness):
    registry: Registry | None = field(default_factory=Registry)

    def reconcile(self) -> timedelta | None:
        base = self.reconciler()
        reconciler = Reconciler(
            cluster=base.cluster,
            defaults=ServingDefaults(image="sluice-serving:test", mlflow_tracking_uri=TRACKING),
            default_prometheus_url=base.default_prometheus_url,
            metrics_provider=base.metrics_provider,
            clock=base.clock,
            registry=self.registry,
        )
        return asyncio.run(reconciler.reconcile(NAMESPACE, NAME))


def registry_spec(version: str = "1.0.0", uri: str = "models:/fraud@champion") -> dict[str, Any]:
    return spec(version, model={"version": version, "uri": uri})


def pod_env(harness: Harness, deployment: str) -> dict[str, str]:
    body = harness.cluster.get("Deployment", NAMESPACE, deployment)
    assert body is not None
    container = body["spec"]["template"]["spec"]["containers"][0]
    return {env["name"]: env.get("value", "") for env in container["env"]}


def test_an_alias_is_resolved_once_recorded_in_status_and_the_pods_get_the_pinned_version_and_digest() -> None:
    harness = RegistryHarness()
    harness.create(registry_spec())

    harness.reconcile()

    resolved = harness.cluster.status(NAMESPACE, NAME).resolved_model
    assert resolved is not None
    assert (resolved.version, resolved.format, resolved.digest) == ("1", ModelFormat.SKLEARN, DIGEST)
    env = pod_env(harness, NAMES.stable_deployment)
    assert env["MODEL_URI"] == "models:/fraud/1"
    assert (env["MODEL_FORMAT"], env["MODEL_DIGEST"], env["MLFLOW_TRACKING_URI"]) == ("sklearn", DIGEST, TRACKING)


def test_an_alias_that_moves_after_the_rollout_does_not_change_the_running_revision() -> None:
    harness = RegistryHarness()
    harness.create(registry_spec())
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.stable_deployment)
    harness.reconcile()
    assert harness.status_phase() is Phase.STABLE
    assert harness.registry is not None
    harness.registry.version = "2"
    harness.cluster.writes.clear()

    harness.reconcile()

    assert harness.cluster.writes == []
    assert len(harness.registry.asked) == 1
    assert pod_env(harness, NAMES.stable_deployment)["MODEL_URI"] == "models:/fraud/1"


def test_a_new_spec_model_resolves_the_alias_again_and_rolls_the_new_version_out_as_a_canary() -> None:
    harness = RegistryHarness()
    harness.create(registry_spec())
    harness.reconcile()
    harness.cluster.make_available(NAMESPACE, NAMES.stable_deployment)
    harness.reconcile()
    assert harness.registry is not None
    harness.registry.version = "2"

    harness.set_spec(registry_spec("2.0.0"))
    harness.reconcile()

    assert harness.status_phase() is Phase.PROGRESSING
    assert pod_env(harness, NAMES.canary_deployment)["MODEL_URI"] == "models:/fraud/2"
    assert pod_env(harness, NAMES.stable_deployment)["MODEL_URI"] == "models:/fraud/1"


def test_a_models_uri_without_a_tracking_server_is_an_invalid_spec() -> None:
    harness = RegistryHarness(registry=None)
    harness.create(registry_spec())

    assert harness.reconcile() == REGISTRY_RETRY

    assert harness.ready() == ("False", "InvalidSpec", NO_TRACKING_URI)
    assert harness.cluster.get("Deployment", NAMESPACE, NAMES.stable_deployment) is None


def test_a_tracking_server_that_cannot_resolve_the_uri_is_an_invalid_spec_retried_later() -> None:
    harness = RegistryHarness(registry=Registry(error="the MLflow tracking server could not be reached"))
    harness.create(registry_spec())

    assert harness.reconcile() == REGISTRY_RETRY

    message = "spec.model.uri cannot be resolved: the MLflow tracking server could not be reached"
    assert harness.ready() == ("False", "InvalidSpec", message)
    assert harness.event_reasons() == ["InvalidSpec"]
