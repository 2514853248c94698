"""Semantic checks the CRD schema cannot express; a spec failing one is reported as InvalidSpec (pure)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus
from sluice.core.children import RESERVED_ENV, ChildNames, parse_pvc_uri, parse_quantity
from sluice.core.conditions import READY, ConditionStatus, kstatus_conditions, set_condition

INVALID_SPEC = "InvalidSpec"
QUERY_PLACEHOLDERS = frozenset({"namespace", "name", "version", "track", "interval"})
_PLACEHOLDER = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MAX_SERVICE_NAME = 63


def problems(name: str, spec: ModelDeploymentSpec, default_image: str) -> list[str]:
    """What is wrong with a spec the API server admitted, one sentence each; empty when it can be served."""
    found: list[str] = []
    longest_child = max(len(child) for child in vars(ChildNames.of(name)).values())
    if not _DNS_LABEL.match(name) or longest_child > _MAX_SERVICE_NAME:
        found.append(
            f"metadata.name {name!r} must be a DNS label (lowercase letters, digits, '-', starting with a letter) "
            f"short enough for its Service {ChildNames.of(name).canary_service!r} (at most {_MAX_SERVICE_NAME})"
        )
    if spec.model.uri.startswith("pvc://") and parse_pvc_uri(spec.model.uri) is None:
        found.append(f"spec.model.uri {spec.model.uri!r} needs a claim and a path: pvc://<claim>/<path>")
    serving = spec.serving
    if not ((serving.image if serving else None) or default_image):
        found.append("spec.serving.image is not set and the operator has no default serving image")
    for env in (serving.env or []) if serving else []:
        if env.name in RESERVED_ENV:
            found.append(f"spec.serving.env may not set {env.name}: the operator sets it")
    found += _resource_problems(spec)
    routed = spec.traffic is not None and spec.traffic.gateway is not None
    for gate, present in (("spec.validation", spec.validation), ("spec.rollout.shadow", spec.rollout.shadow)):
        if present is not None and not routed:
            found.append(f"{gate} needs spec.traffic.gateway: only an HTTPRoute keeps a running canary at weight 0")
    for metric in spec.analysis.metrics or []:
        unknown = sorted(set(_PLACEHOLDER.findall(metric.query)) - QUERY_PLACEHOLDERS)
        if unknown:
            known = ", ".join("{{" + p + "}}" for p in sorted(QUERY_PLACEHOLDERS))
            found.append(
                f"spec.analysis.metrics[{metric.name}].query uses unknown placeholders "
                f"{', '.join('{{' + u + '}}' for u in unknown)} (known: {known})"
            )
    return found


def _resource_problems(spec: ModelDeploymentSpec) -> list[str]:
    resources = spec.serving.resources if spec.serving else None
    if resources is None:
        return []
    found = []
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for kind, values in (("requests", resources.requests), ("limits", resources.limits)):
        for key, value in (values or {}).items():
            try:
                parsed[kind][key] = parse_quantity(value)
            except ValueError as error:
                found.append(f"spec.serving.resources.{kind}.{key}: {error}")
    requests, limits = parsed["requests"], parsed["limits"]
    for key in sorted(requests.keys() & limits.keys()):
        if requests[key] > limits[key]:
            found.append(f"spec.serving.resources: the {key} request exceeds its limit")
    return found


def invalid_spec_status(
    status: ModelDeploymentStatus, message: str, generation: int, now: datetime
) -> ModelDeploymentStatus:
    """The status with Ready=False, reason InvalidSpec; everything else (the rollout's memory) as it was."""
    conditions = set_condition(
        status.conditions,
        READY,
        ConditionStatus.FALSE,
        reason=INVALID_SPEC,
        message=message,
        now=now,
        observed_generation=generation,
    )
    conditions = kstatus_conditions(
        conditions, rolling_out=False, rolled_back=False, now=now, observed_generation=generation
    )
    return status.model_copy(update={"conditions": conditions, "observed_generation": generation})
