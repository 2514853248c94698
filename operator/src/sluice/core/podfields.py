"""spec.serving's pod fields in a serving pod template: scheduling, identity, pull secrets, labels, annotations,
envFrom and startup timing. The operator's own settings (security context, its labels and annotations, its env)
always win; the API already refuses what Pod Security `restricted` forbids (`sluice.api.v1alpha1.pod`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sluice.api.v1alpha1 import ServingSpec

_POD_SPEC_FIELDS = (
    "serviceAccountName",
    "imagePullSecrets",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "priorityClassName",
    "runtimeClassName",
    "terminationGracePeriodSeconds",
)
"""spec.serving fields copied into the pod spec as they are (the API models are Pod spec subsets)."""
STARTUP_PROBE_PERIOD_SECONDS = 2


def pod_spec_fields(serving: ServingSpec | None) -> dict[str, Any]:
    """The pod spec fields spec.serving sets (none when it sets none)."""
    wire = serving.to_wire() if serving else {}
    return {name: wire[name] for name in _POD_SPEC_FIELDS if name in wire}


def pod_metadata(
    serving: ServingSpec | None, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any]:
    """The template's labels and annotations: spec.serving's extra ones under the operator's."""
    extra_labels = (serving.pod_labels or {}) if serving else {}
    extra_annotations = (serving.pod_annotations or {}) if serving else {}
    return {"labels": {**extra_labels, **labels}, "annotations": {**extra_annotations, **annotations}}


def env_from(serving: ServingSpec | None) -> dict[str, Any]:
    """The container's envFrom, when spec.serving has one (explicit env, the operator's included, wins over it)."""
    if serving is None or not serving.env_from:
        return {}
    return {"envFrom": [source.to_wire() for source in serving.env_from]}


def startup_timing(serving: ServingSpec | None, startup_seconds: int) -> dict[str, int]:
    """periodSeconds and failureThreshold of the startup probe: spec.serving.startupProbe's, by default enough
    periods to cover `startup_seconds` (the rollout's progressDeadline)."""
    probe = serving.startup_probe if serving else None
    period = probe.period_seconds if probe else STARTUP_PROBE_PERIOD_SECONDS
    threshold = probe.failure_threshold if probe and probe.failure_threshold else None
    return {"periodSeconds": period, "failureThreshold": threshold or max(1, math.ceil(startup_seconds / period))}
