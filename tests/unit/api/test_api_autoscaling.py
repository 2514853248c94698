"""spec.autoscaling in the API models: the checks the operator repeats when the CRD's CEL rules did not run."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sluice.api.v1alpha1 import AutoscalingSpec

CPU = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}


def test_min_replicas_above_max_replicas_is_refused() -> None:
    with pytest.raises(ValidationError, match="minReplicas must not exceed maxReplicas"):
        AutoscalingSpec.model_validate({"minReplicas": 3, "maxReplicas": 2})


@pytest.mark.parametrize(
    "metric",
    [
        {"type": "Pods", "resource": CPU["resource"]},
        {"type": "Resource", "resource": CPU["resource"], "external": {"metric": {"name": "q"},
                                                                      "target": {"type": "Value", "value": 1}}},
    ],
    ids=["the member type names is missing", "a second member"],
)  # fmt: skip
def test_a_metric_must_set_exactly_the_member_its_type_names(metric: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of resource"):
        AutoscalingSpec.model_validate({"maxReplicas": 2, "metrics": [metric]})


def test_metrics_reach_the_wire_as_hpa_v2_metric_specs() -> None:
    spec = AutoscalingSpec.model_validate({"maxReplicas": 4, "metrics": [CPU]})

    assert spec.min_replicas == 1
    assert spec.metrics is not None
    assert [metric.to_wire() for metric in spec.metrics] == [CPU]
