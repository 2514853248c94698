"""Semantic validation: what the CRD schema admits but the operator cannot serve."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus
from sluice.core.conditions import READY, find_condition
from sluice.core.validation import invalid_spec_status, problems

IMAGE = "ghcr.io/sluice-dev/sluice-serving:0.1.0"


def spec(**overrides: Any) -> ModelDeploymentSpec:
    model = {"version": "1", "uri": "https://models.example.com/m.onnx", "format": "onnx"}
    return ModelDeploymentSpec.model_validate({"model": model, **overrides})


def test_a_plain_spec_has_no_problems() -> None:
    assert problems("fraud", spec(), IMAGE) == []


@pytest.mark.parametrize(
    ("name", "overrides", "default_image", "expected"),
    [
        ("fraud", {"model": {"version": "1", "uri": "pvc://models", "format": "onnx"}}, IMAGE, "pvc://<claim>/<path>"),
        ("fraud", {}, "", "no default serving image"),
        ("fraud", {"serving": {"env": [{"name": "MODEL_URI", "value": "x"}]}}, IMAGE, "may not set MODEL_URI"),
        (
            "fraud",
            {"serving": {"env": [{"name": "MLFLOW_TRACKING_URI", "value": "http://elsewhere"}]}},
            IMAGE,
            "may not set MLFLOW_TRACKING_URI",
        ),
        ("fraud", {"model": {"version": "1", "uri": "s3://m/model.onnx"}}, IMAGE, "spec.model.format is required"),
        ("fraud", {"serving": {"resources": {"requests": {"cpu": 2}, "limits": {"cpu": "1"}}}}, IMAGE, "exceeds"),
        ("a" * 60, {}, IMAGE, "short enough"),
        ("fraud.v2", {}, IMAGE, "DNS label"),
        (
            "fraud",
            {"analysis": {"metrics": [{"name": "acc", "query": "up{ns='{{ns}}'}[{{interval}}]", "min": 1}]}},
            IMAGE,
            "unknown placeholders {{ns}}",
        ),
    ],
)
def test_problems_are_named(name: str, overrides: dict[str, Any], default_image: str, expected: str) -> None:
    found = problems(name, spec(**overrides), default_image)
    assert len(found) == 1
    assert expected in found[0]


def test_known_placeholders_pass() -> None:
    query = 'x{namespace="{{namespace}}",n="{{ name }}",v="{{version}}",t="{{track}}"}[{{interval}}]'
    assert problems("fraud", spec(analysis={"metrics": [{"name": "acc", "query": query, "max": 1}]}), IMAGE) == []


def test_an_invalid_spec_sets_ready_false_and_keeps_the_rollout_memory() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    before = ModelDeploymentStatus(stable_version="1", canary_version="2", current_step=1)
    after = invalid_spec_status(before, "bad", 7, now)
    ready = find_condition(after.conditions, READY)
    assert ready is not None
    assert (ready.status, ready.reason, ready.message, ready.observed_generation) == ("False", "InvalidSpec", "bad", 7)
    assert (after.stable_version, after.canary_version, after.current_step) == ("1", "2", 1)
    assert after.observed_generation == 7
    assert invalid_spec_status(after, "bad", 7, datetime(2026, 1, 1, tzinfo=UTC)) == after
