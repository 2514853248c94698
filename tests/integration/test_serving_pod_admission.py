"""The serving Deployment the operator writes, with its lifecycle (preStop sleep, grace period, startup probe,
emptyDir size limits, ephemeral-storage), is accepted by the real API server in a namespace that enforces the
`restricted` Pod Security Standard, and its pods are admitted and scheduled there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import ControlPlane, wait_until
from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelFormat, ModelStatus
from sluice.core.children import Owner, Track, deployment
from sluice.core.plan import WorkloadPlan
from sluice.settings import Settings

pytestmark = pytest.mark.integration

MODEL = ModelStatus(version="1", uri="https://models.example.com/m.onnx", format=ModelFormat.ONNX)


def test_the_serving_deployment_is_admitted_under_restricted_and_its_pods_scheduled(
    control_plane: ControlPlane, restricted_namespace: str, tmp_path: Path
) -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"version": "1", "uri": MODEL.uri, "format": "onnx"}})
    owner = Owner(name="admitted", namespace=restricted_namespace, uid="00000000-0000-0000-0000-000000000000")
    defaults = Settings.from_command_line([]).serving_defaults()
    manifest = deployment(owner, spec, Track.STABLE, WorkloadPlan(model=MODEL, replicas=1), defaults)
    manifest["metadata"].pop("ownerReferences")  # no ModelDeployment owns it here
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(manifest))
    stored: dict[str, Any] = json.loads(control_plane.kubectl("create", "-f", str(path), "-o", "json"))
    written, kept = manifest["spec"]["template"]["spec"], stored["spec"]["template"]["spec"]
    # what the server stored is what the operator wrote: nothing dropped (e.g. by a disabled feature gate)
    assert kept["containers"][0]["lifecycle"] == written["containers"][0]["lifecycle"]
    assert (
        kept["containers"][0]["startupProbe"]["failureThreshold"]
        == written["containers"][0]["startupProbe"]["failureThreshold"]
    )
    assert kept["terminationGracePeriodSeconds"] == written["terminationGracePeriodSeconds"]
    assert [volume["emptyDir"] for volume in kept["volumes"]] == [volume["emptyDir"] for volume in written["volumes"]]

    def scheduled_and_running() -> bool:
        pods = json.loads(control_plane.kubectl("get", "pods", "-n", restricted_namespace, "-o", "json"))["items"]
        return bool(pods) and all(pod.get("status", {}).get("phase") == "Running" for pod in pods)

    wait_until(scheduled_and_running, timeout=60, what="the serving pod admitted, scheduled and running")
