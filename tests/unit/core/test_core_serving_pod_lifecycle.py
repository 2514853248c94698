"""The serving pod's lifecycle as the operator writes it: slow model loads are not killed, a terminating pod
drains before it stops, and its disk use is bounded.

sluice_serving, on SIGTERM, stops listening and answers what it received for up to SLUICE_DRAIN_TIMEOUT seconds
(default 25). A pod removed from its Service keeps receiving new requests until EndpointSlices, kube-proxy and
Gateways have caught up, so the pod first sleeps (preStop) while still serving, then drains; the grace period
covers both, so the kubelet's SIGKILL never cuts a drain short.
"""

from __future__ import annotations

from typing import Any

import pytest

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelFormat, ModelStatus
from sluice.core.children import Owner, ServingDefaults, Track
from sluice.core.plan import WorkloadPlan
from sluice.core.workloads import DEFAULT_DRAIN_SECONDS, PRESTOP_SLEEP_SECONDS, READINESS_PATH, deployment
from sluice.settings import Settings

OWNER = Owner(name="fraud", namespace="ml", uid="0000-1111")
MODEL = ModelStatus(version="1.4.0", uri="https://models.example.com/fraud.onnx", format=ModelFormat.ONNX)
DEFAULTS = Settings.from_command_line([]).serving_defaults()


def pod_spec(defaults: ServingDefaults = DEFAULTS, **spec_fields: Any) -> dict[str, Any]:
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"version": "1.4.0", "uri": MODEL.uri, "format": "onnx"}, **spec_fields}
    )
    workload = WorkloadPlan(model=MODEL, replicas=1, serving=spec.serving)
    manifest = deployment(OWNER, spec, Track.CANARY, workload, defaults)
    pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return pod


def test_a_terminating_pod_keeps_serving_then_drains_within_its_grace_period() -> None:
    pod = pod_spec()
    (server,) = pod["containers"]
    assert server["lifecycle"] == {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}}
    assert PRESTOP_SLEEP_SECONDS >= 5
    assert pod["terminationGracePeriodSeconds"] > PRESTOP_SLEEP_SECONDS + DEFAULT_DRAIN_SECONDS


@pytest.mark.parametrize(("value", "drain"), [("60", 60), ("0.5", 1), ("soon", DEFAULT_DRAIN_SECONDS)])
def test_the_grace_period_covers_a_drain_timeout_the_spec_sets(value: str, drain: int) -> None:
    pod = pod_spec(serving={"env": [{"name": "SLUICE_DRAIN_TIMEOUT", "value": value}]})
    assert pod["terminationGracePeriodSeconds"] > PRESTOP_SLEEP_SECONDS + drain


@pytest.mark.parametrize(("deadline", "seconds"), [("10m", 600), ("90s", 90), ("1h", 3600)])
def test_a_model_may_load_for_the_whole_progress_deadline_before_liveness_applies(deadline: str, seconds: int) -> None:
    (server,) = pod_spec(rollout={"progressDeadline": deadline})["containers"]
    startup = server["startupProbe"]
    assert startup["httpGet"]["path"] == READINESS_PATH
    assert startup["periodSeconds"] * startup["failureThreshold"] >= seconds
    assert startup["periodSeconds"] * (startup["failureThreshold"] - 1) < seconds


def test_serving_pods_request_and_limit_ephemeral_storage_and_bound_their_emptydirs() -> None:
    pod = pod_spec()
    (server,) = pod["containers"]
    assert server["resources"]["requests"]["ephemeral-storage"] == "256Mi"
    assert server["resources"]["limits"]["ephemeral-storage"] == "2Gi"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert volumes["tmp"]["emptyDir"]["sizeLimit"]


def test_the_model_cache_follows_an_ephemeral_storage_limit_the_spec_sets() -> None:
    pod = pod_spec(serving={"resources": {"limits": {"ephemeral-storage": "10Gi"}}})
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": "10Gi"}
