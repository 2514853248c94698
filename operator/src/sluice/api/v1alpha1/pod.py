"""The pod fields of spec.serving: env (literal or from Secrets, ConfigMaps and pod fields), envFrom, identity,
image pull secrets, labels, annotations and startup timing.

Only what Pod Security `restricted` allows can be said at all: there is no field for volumes, host namespaces,
ports or security contexts, and the annotations that would weaken a pod's confinement are refused. The operator
never reads a Secret: it only names it in the pod template, and the kubelet resolves it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.meta import GROUP, ApiModel, cel

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
"""An object name (Secret, ConfigMap, ServiceAccount, PriorityClass, RuntimeClass)."""
CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
"""A key of a Secret or ConfigMap."""
FIELD_PATH = (
    r"^(metadata\.(name|namespace|uid|labels\['[^']+'\]|annotations\['[^']+'\])"
    r"|spec\.(nodeName|serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs))$"
)
"""The pod fields the downward API exposes as env."""

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]

RESERVED_LABEL_KEYS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
)
"""Pod labels the operator sets (with every `sluice.dev/` label): its selectors and the tracks depend on them."""
RESERVED_ANNOTATION_PREFIXES = (
    f"{GROUP}/",
    "container.apparmor.security.beta.kubernetes.io/",
    "seccomp.security.alpha.kubernetes.io/",
    "container.seccomp.security.alpha.kubernetes.io/",
)
"""Annotation prefixes spec.serving.podAnnotations may not use: the operator's, and those that set a container's
AppArmor or seccomp profile (Pod Security `restricted` allows only the runtime's default, which the operator sets)."""


def _no_key_starting_with(prefixes: tuple[str, ...]) -> str:
    return "self.all(k, " + " && ".join(f"!k.startsWith('{prefix}')" for prefix in prefixes) + ")"


POD_LABELS_RULE = cel(
    f"{_no_key_starting_with((f'{GROUP}/',))} && " + " && ".join(f"!('{key}' in self)" for key in RESERVED_LABEL_KEYS),
    f"podLabels may not set the operator's labels ({', '.join(RESERVED_LABEL_KEYS)} or any {GROUP}/ key): "
    "its selectors and tracks depend on them",
)
POD_ANNOTATIONS_RULE = cel(
    _no_key_starting_with(RESERVED_ANNOTATION_PREFIXES),
    f"podAnnotations may not use the prefixes {', '.join(RESERVED_ANNOTATION_PREFIXES)}: the operator's, and "
    "AppArmor or seccomp profiles (Pod Security restricted allows only the runtime default the operator sets)",
)


class KeySelector(ApiModel):
    """One key of a Secret or ConfigMap in the ModelDeployment's namespace."""

    name: ObjectName = Field(description="The object's name.", examples=["model-store"])
    key: str = Field(min_length=1, max_length=253, pattern=CONFIG_KEY, description="The key.")
    optional: bool | None = Field(default=None, description="Start the pod even if the key is missing.")


class FieldSelector(ApiModel):
    """A field of the pod (the downward API)."""

    field_path: str = Field(
        max_length=317,
        pattern=FIELD_PATH,
        description="metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], "
        "metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.hostIP(s) or status.podIP(s).",
        examples=["spec.nodeName"],
    )


class EnvVarSource(ApiModel):
    """Where a variable's value comes from: exactly one of a Secret key, a ConfigMap key or a pod field."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)].filter(x, x).size() == 1",
                    "valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef",
                )
            ]
        }
    )

    secret_key_ref: KeySelector | None = Field(
        default=None, description="A Secret key; the kubelet reads it, the operator never does."
    )
    config_map_key_ref: KeySelector | None = Field(default=None, description="A ConfigMap key.")
    field_ref: FieldSelector | None = Field(default=None, description="A field of the pod.")


class EnvVar(ApiModel):
    """An extra environment variable for the serving container: a literal value or `valueFrom`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.valueFrom) || !has(self.value) || self.value == ''",
                    "value and valueFrom are exclusive",
                    ".valueFrom",
                )
            ]
        }
    )

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
        description="Variable name: letters, digits, '_', '-', '.', not starting with a digit. Unique in the list.",
        examples=["OMP_NUM_THREADS"],
    )
    value: str = Field(default="", max_length=32768, description="Variable value.", examples=["2"])
    value_from: EnvVarSource | None = Field(
        default=None, description="Take the value from a Secret, a ConfigMap or the pod instead."
    )


class ObjectReference(ApiModel):
    """A Secret or ConfigMap whose keys all become variables."""

    name: ObjectName = Field(description="The object's name.")
    optional: bool | None = Field(default=None, description="Start the pod even if it is missing.")


class EnvFromSource(ApiModel):
    """Every key of one Secret or ConfigMap as variables (explicit env and the operator's variables win)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.secretRef) != has(self.configMapRef)",
                    "envFrom entries need exactly one of secretRef, configMapRef",
                )
            ]
        }
    )

    prefix: str | None = Field(
        default=None, max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="Prefix of every name."
    )
    secret_ref: ObjectReference | None = Field(default=None, description="A Secret (the operator never reads it).")
    config_map_ref: ObjectReference | None = Field(default=None, description="A ConfigMap.")


class LocalObjectReference(ApiModel):
    """An object in the ModelDeployment's namespace, by name."""

    name: ObjectName = Field(description="The object's name.", examples=["registry-credentials"])


class StartupProbe(ApiModel):
    """Timing of the startup probe, which gives a model time to download and load before liveness applies."""

    period_seconds: int = Field(default=2, ge=1, le=60, description="Seconds between probes.")
    failure_threshold: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Failed probes before the container restarts; by default spec.rollout.progressDeadline "
        "divided by the period (raise it for models that load slower than that).",
    )
