"""A spec.serving that sets every pod field, and where each one must show up in the serving pod template."""

from __future__ import annotations

from typing import Any

EVERY_POD_FIELD: dict[str, Any] = {
    "image": "example.com/serving:2",
    "resources": {"limits": {"nvidia.com/gpu": 1}},
    "env": [
        {"name": "LITERAL", "value": "1"},
        {"name": "STORE_KEY", "valueFrom": {"secretKeyRef": {"name": "model-store", "key": "access-key"}}},
        {
            "name": "REGION",
            "valueFrom": {"configMapKeyRef": {"name": "store-config", "key": "region", "optional": True}},
        },
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ],
    "envFrom": [{"prefix": "STORE_", "secretRef": {"name": "model-store"}}, {"configMapRef": {"name": "tuning"}}],
    "serviceAccountName": "model-reader",
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "nodeSelector": {"accelerator": "a100"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
                ]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"sluice.dev/modeldeployment": "fraud"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        },
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "priorityClassName": "model-serving",
    "runtimeClassName": "nvidia",
    "podAnnotations": {"team.example.com/owner": "fraud"},
    "podLabels": {"team": "fraud"},
    "startupProbe": {"periodSeconds": 5, "failureThreshold": 120},
    "terminationGracePeriodSeconds": 90,
}

CONTAINER_AND_METADATA_FIELDS = frozenset(
    {"image", "resources", "env", "envFrom", "startupProbe", "podAnnotations", "podLabels"}
)
POD_SPEC_FIELDS = tuple(name for name in EVERY_POD_FIELD if name not in CONTAINER_AND_METADATA_FIELDS)
"""The fields copied into the pod spec as written."""


def assert_every_pod_field_is_in(template: dict[str, Any]) -> None:
    """Each field of EVERY_POD_FIELD is where Kubernetes reads it in `template` (a Deployment's pod template)."""
    pod, (container,) = template["spec"], template["spec"]["containers"]
    for name in POD_SPEC_FIELDS:
        assert pod[name] == EVERY_POD_FIELD[name], name
    assert container["image"] == EVERY_POD_FIELD["image"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {variable["name"]: variable for variable in container["env"]}
    for variable in EVERY_POD_FIELD["env"]:
        written = env[variable["name"]]
        if "fieldRef" in written.get("valueFrom", {}):  # the API server defaults fieldRef.apiVersion to v1
            written = {
                **written,
                "valueFrom": {"fieldRef": {"fieldPath": written["valueFrom"]["fieldRef"]["fieldPath"]}},
            }
        assert written == variable, written
    assert container["envFrom"] == EVERY_POD_FIELD["envFrom"]
    assert (container["startupProbe"]["periodSeconds"], container["startupProbe"]["failureThreshold"]) == (5, 120)
    assert template["metadata"]["labels"]["team"] == "fraud"
    assert template["metadata"]["annotations"]["team.example.com/owner"] == "fraud"
