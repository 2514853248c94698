"""spec.serving's pod fields in the serving pod template: each reaches it, the operator's settings win."""

from __future__ import annotations

from typing import Any

from sluice import contract
from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelFormat, ModelStatus
from sluice.core.children import MODELDEPLOYMENT_LABEL, Owner, ServingDefaults, Track
from sluice.core.plan import WorkloadPlan
from sluice.core.workloads import deployment
from unit.core.podfields_support import EVERY_POD_FIELD, assert_every_pod_field_is_in

OWNER = Owner(name="fraud", namespace="ml", uid="u")
MODEL = ModelStatus(version="1.4.0", uri="https://models.example.com/fraud.onnx", format=ModelFormat.ONNX)
DEFAULTS = ServingDefaults(image="example.com/serving:1")


def template(serving: dict[str, Any] | None) -> dict[str, Any]:
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"version": "1.4.0", "uri": MODEL.uri, "format": "onnx"}, "serving": serving}
    )
    manifest = deployment(OWNER, spec, Track.CANARY, WorkloadPlan(MODEL, 1, serving=spec.serving), DEFAULTS)
    result: dict[str, Any] = manifest["spec"]["template"]
    return result


def test_every_pod_field_of_the_serving_spec_reaches_the_pod_template() -> None:
    assert_every_pod_field_is_in(template(EVERY_POD_FIELD))


def test_without_pod_fields_the_template_has_none_of_them() -> None:
    pod = template(None)["spec"]
    assert not {"serviceAccountName", "tolerations", "affinity", "nodeSelector"} & pod.keys()
    assert "envFrom" not in pod["containers"][0]


def test_the_operators_security_settings_env_and_annotations_win_over_the_pod_fields() -> None:
    serving = {
        **EVERY_POD_FIELD,
        "podAnnotations": {"prometheus.io/port": "9999"},
        "envFrom": [{"configMapRef": {"name": "sets-model-uri"}}],
    }
    result = template(serving)
    pod, container = result["spec"], result["spec"]["containers"][0]
    assert result["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert result["metadata"]["labels"][MODELDEPLOYMENT_LABEL] == "fraud"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # explicit env beats envFrom in Kubernetes: the model the operator names is the one served
    assert any(variable["name"] == contract.ENV_MODEL_URI for variable in container["env"])


def test_the_startup_probe_covers_the_progress_deadline_unless_the_spec_sets_its_threshold() -> None:
    by_deadline = template({"startupProbe": {"periodSeconds": 10}})["spec"]["containers"][0]["startupProbe"]
    assert (by_deadline["periodSeconds"], by_deadline["failureThreshold"]) == (10, 60)  # the default 10m deadline
