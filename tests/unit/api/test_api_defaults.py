"""The CRD's defaults (which the API server applies) agree with the pydantic models' defaults.

`apply_schema_defaults` does what the server's structural defaulting does (top-down: a missing field with a default
gets it, then defaults apply inside); the result must equal what pydantic fills in for the same manifest. The
integration test `test_a_minimal_manifest_is_admitted_with_the_server_applying_the_models_defaults` checks the
same against the real server.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.api import v1alpha1 as api
from sluice.codegen import crdgen

REPO_ROOT = Path(__file__).resolve().parents[3]
MODEL = {"version": "1.4.0", "uri": "https://models.example.com/fraud/1.4.0/model.onnx", "format": "onnx"}
SPECS = {
    "minimal": {"model": MODEL},
    "partial rollout and analysis": {
        "model": MODEL,
        "rollout": {"steps": [5, 50]},
        "analysis": {"maxErrorRate": 0.02, "metrics": [{"name": "accuracy", "query": "q", "min": 0.9}]},
    },
    "every optional section": {
        "model": {**MODEL, "format": "sklearn", "digest": "sha256:" + "ab" * 32},
        "serving": {"image": "serving:1", "env": [{"name": "A"}], "resources": {"limits": {"cpu": 2}}},
        "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
        "paused": True,
    },
    "empty rollout and analysis": {"model": MODEL, "rollout": {}, "analysis": {}},
}
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))


def apply_schema_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with the schema's defaults applied, as kube-apiserver's structural defaulting does."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and "properties" in schema:
        for name, child in schema["properties"].items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_schema_defaults(child, value[name])
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        value = {key: apply_schema_defaults(schema["additionalProperties"], item) for key, item in value.items()}
    elif isinstance(value, list) and "items" in schema:
        value = [apply_schema_defaults(schema["items"], item) for item in value]
    return value


def _spec_schema() -> dict[str, Any]:
    spec: dict[str, Any] = crdgen.openapi_schema()["properties"]["spec"]
    return spec


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_the_server_defaults_a_spec_as_pydantic_does(spec: dict[str, Any]) -> None:
    assert apply_schema_defaults(_spec_schema(), spec) == api.ModelDeploymentSpec.model_validate(spec).to_wire()


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_every_example_parses_and_defaults_as_pydantic_does(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())["spec"]
    assert apply_schema_defaults(_spec_schema(), spec) == api.ModelDeploymentSpec.model_validate(spec).to_wire()


def test_the_documented_defaults_of_a_minimal_spec() -> None:
    defaulted = apply_schema_defaults(_spec_schema(), {"model": MODEL})
    assert defaulted["replicas"] == 1
    assert defaulted["paused"] is False
    assert defaulted["rollout"] == {
        "steps": [10, 25, 50],
        "interval": "1m",
        "progressDeadline": "10m",
        "postPromotionAnalysis": False,
    }
    assert defaulted["analysis"] == {
        "maxErrorRate": 0.01,
        "maxLatencyP99": "500ms",
        "minRequests": 20,
        "maxFailedChecks": 1,
        "maxInconclusiveChecks": 3,
        "maxConsecutiveErrors": 3,
        "confidence": 0.95,
        "maxStepDuration": "1h",
        "minDriftSamples": 500,
    }
    assert api.AnalysisSpec().inconclusive_policy is api.InconclusivePolicy.ROLLBACK


def test_on_inconclusive_defaults_to_hold_when_the_canary_is_compared_with_stable() -> None:
    analysis = api.AnalysisSpec.model_validate({"compareToStable": {"maxErrorRateIncrease": 0.01}})
    assert analysis.inconclusive_policy is api.InconclusivePolicy.HOLD
    explicit = api.AnalysisSpec.model_validate(
        {"compareToStable": {"maxErrorRateIncrease": 0.01}, "onInconclusive": "Rollback"}
    )
    assert explicit.inconclusive_policy is api.InconclusivePolicy.ROLLBACK


@pytest.mark.parametrize(("field", "model"), [("rollout", api.RolloutSpec), ("analysis", api.AnalysisSpec)])
def test_a_section_left_out_defaults_to_the_models_defaults(field: str, model: type[api.ApiModel]) -> None:
    assert _spec_schema()["properties"][field]["default"] == model().to_wire()


def test_every_defaulted_spec_field_has_a_pydantic_default_and_vice_versa() -> None:
    """Field by field over every spec model: a schema default exists exactly where pydantic has one (not None)."""
    checked = 0
    for path, model, schema in _spec_models():
        for name, info in model.model_fields.items():
            alias = info.alias or name
            has_default = not info.is_required() and info.get_default(call_default_factory=True) is not None
            assert has_default == ("default" in schema["properties"][alias]), f"{path}.{alias}"
            checked += 1
    assert checked > 30


def _spec_models() -> list[tuple[str, type[api.ApiModel], dict[str, Any]]]:
    schema = _spec_schema()
    models: list[tuple[str, type[api.ApiModel], dict[str, Any]]] = [("spec", api.ModelDeploymentSpec, schema)]
    props = schema["properties"]
    analysis, serving, gateway = props["analysis"], props["serving"], props["traffic"]["properties"]["gateway"]
    models += [
        ("spec.model", api.ModelSpec, props["model"]),
        ("spec.serving", api.ServingSpec, serving),
        ("spec.serving.resources", api.ResourceRequirements, serving["properties"]["resources"]),
        ("spec.serving.env[*]", api.EnvVar, serving["properties"]["env"]["items"]),
        ("spec.rollout", api.RolloutSpec, props["rollout"]),
        ("spec.analysis", api.AnalysisSpec, analysis),
        ("spec.analysis.prometheus", api.PrometheusRef, analysis["properties"]["prometheus"]),
        ("spec.analysis.metrics[*]", api.CustomMetric, analysis["properties"]["metrics"]["items"]),
        ("spec.traffic", api.TrafficSpec, props["traffic"]),
        ("spec.traffic.gateway", api.GatewayTraffic, gateway),
        ("spec.traffic.gateway.parentRefs[*]", api.ParentReference, gateway["properties"]["parentRefs"]["items"]),
    ]
    return models
