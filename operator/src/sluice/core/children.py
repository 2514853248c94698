"""Desired manifests of a ModelDeployment's children, built from its metadata, spec and plan (pure, no I/O).

Children (all in the ModelDeployment's namespace, controlled by it through an owner reference):

- Deployment `<name>-stable` and, once a rollout has started, Deployment `<name>-canary`: the serving pods;
- Service `<name>`: the entry point; it selects the stable track only when a Gateway splits traffic, and both
  tracks otherwise (then the replica ratio approximates the canary weight);
- Service `<name>-canary`: the canary track only;
- HTTPRoute `<name>`, with `spec.traffic.gateway` only: backendRefs Service `<name>` (weight 100 - w) and
  Service `<name>-canary` (weight w).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import API_VERSION, GROUP, KIND, GatewayTraffic, ModelDeploymentSpec, ModelStatus
from sluice.core.plan import Plan, WorkloadPlan

SERVING_PORT = 8080
SERVICE_PORT = 80
PORT_NAME = "http"
CONTAINER_NAME = "server"
MODEL_CACHE_DIR = "/var/cache/sluice"
PVC_MOUNT_DIR = "/mnt/models"
RUN_AS_ID = 65532
METRICS_PATH = "/metrics"
READINESS_PATH = "/v2/health/ready"
LIVENESS_PATH = "/v2/health/live"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"

PRESTOP_SLEEP_SECONDS = 5
"""A deleted serving pod keeps answering this long before its SIGTERM: the time EndpointSlices, kube-proxy and a
Gateway take to stop sending it new requests, so that scale-down and promotion drop none."""
DRAIN_TIMEOUT_ENV = "SLUICE_DRAIN_TIMEOUT"
DEFAULT_DRAIN_SECONDS = 25
"""sluice_serving's drain after SIGTERM unless spec.serving.env sets SLUICE_DRAIN_TIMEOUT: it stops listening,
answers what it received and closes its connections (serving-image config.py has the same default)."""
TERMINATION_MARGIN_SECONDS = 5
STARTUP_PROBE_PERIOD_SECONDS = 2
TMP_SIZE_LIMIT = "256Mi"
"""sizeLimit of the serving container's /tmp emptyDir; the model cache's is its ephemeral-storage limit."""

SPEC_HASH_ANNOTATION = f"{GROUP}/spec-hash"
"""sha256 of a child's desired manifest: when the observed child carries the same, applying it is skipped."""
MODELDEPLOYMENT_LABEL = f"{GROUP}/modeldeployment"
TRACK_LABEL = f"{GROUP}/track"
VERSION_LABEL = f"{GROUP}/version"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "sluice"

REFERENCE_ENV = ("SLUICE_REFERENCE_MODEL_URI", "SLUICE_REFERENCE_MODEL_FORMAT", "SLUICE_REFERENCE_MODEL_DIGEST")
"""The stable model a canary compares itself with in the shadow phase (serving-image shadow.py)."""
REFERENCE_MOUNT_DIR = "/mnt/reference-model"
RESERVED_ENV = frozenset(
    {"MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "MODEL_FORMAT", "MODEL_DIGEST", "SLUICE_TRACK", "PORT",
     "MODEL_CACHE_DIR", *REFERENCE_ENV}
)  # fmt: skip
"""Variables the operator sets on every serving container; spec.serving.env may not override them."""

_QUANTITY_SUFFIXES = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)([KMGTPE]i|[numkMGTPE])?$")


class Track(StrEnum):
    """The two Deployments of a ModelDeployment."""

    STABLE = "stable"
    CANARY = "canary"


@dataclass(frozen=True)
class ServingDefaults:
    """Operator settings the builders fill in where the spec says nothing."""

    image: str
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment that controls the children."""

    name: str
    namespace: str
    uid: str

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Owner:
        return cls(name=str(metadata["name"]), namespace=str(metadata["namespace"]), uid=str(metadata["uid"]))


@dataclass(frozen=True)
class ChildNames:
    """Names of the children of one ModelDeployment."""

    stable_deployment: str
    canary_deployment: str
    service: str
    canary_service: str
    route: str

    @classmethod
    def of(cls, name: str) -> ChildNames:
        return cls(
            stable_deployment=f"{name}-{Track.STABLE}",
            canary_deployment=f"{name}-{Track.CANARY}",
            service=name,
            canary_service=f"{name}-{Track.CANARY}",
            route=name,
        )

    def deployment(self, track: Track) -> str:
        return self.stable_deployment if track is Track.STABLE else self.canary_deployment


def parse_quantity(text: str | int) -> Decimal:
    """A Kubernetes quantity (`500m`, `2`, `1Gi`, `1e3`) as a number; ValueError when it is not one."""
    match = _QUANTITY.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a quantity such as 500m, 2 or 1Gi")
    try:
        return Decimal(match.group(1)) * _QUANTITY_SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a quantity such as 500m, 2 or 1Gi") from None


def parse_pvc_uri(uri: str) -> tuple[str, str] | None:
    """(claim, path inside the volume) of a `pvc://<claim>/<path>` URI; None for other schemes or no path."""
    if not uri.startswith("pvc://"):
        return None
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    path = path.strip("/")
    if not claim or not path:
        return None
    return claim, path


def stable_pod_selector(name: str) -> str:
    """Label selector of the stable pods, in string form: the scale subresource's, whose replicas are stable's."""
    return f"{MODELDEPLOYMENT_LABEL}={name},{TRACK_LABEL}={Track.STABLE}"


def common_labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sluice-serving",
        "app.kubernetes.io/instance": name,
        MANAGED_BY_LABEL: MANAGER,
        MODELDEPLOYMENT_LABEL: name,
    }


def track_labels(name: str, track: Track, version: str) -> dict[str, str]:
    return {
        **common_labels(name),
        "app.kubernetes.io/version": version,
        TRACK_LABEL: str(track),
        VERSION_LABEL: version,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(owner: Owner, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(owner)],
    }


def resources(spec: ModelDeploymentSpec, defaults: ServingDefaults) -> dict[str, dict[str, str]]:
    """Requests and limits for every resource named: the spec's over the defaults, kept consistent.

    A request above the default limit raises the limit; a limit below the default request lowers the request.
    Every requested resource gets a limit (no limit default: the request).
    """
    user = spec.serving.resources if spec.serving and spec.serving.resources else None
    user_requests = {key: str(value) for key, value in ((user.requests or {}) if user else {}).items()}
    user_limits = {key: str(value) for key, value in ((user.limits or {}) if user else {}).items()}
    requests = {**defaults.requests, **user_requests}
    limits = {**defaults.limits, **user_limits}
    for key in sorted(requests.keys() | limits.keys()):
        request, limit = requests.get(key), limits.get(key)
        if limit is None:
            limits[key] = str(request)
        elif request is None:
            requests[key] = limit
        elif parse_quantity(request) > parse_quantity(limit):
            if key in user_limits:
                requests[key] = limit
            else:
                limits[key] = request
    return {"requests": dict(sorted(requests.items())), "limits": dict(sorted(limits.items()))}


def _model_env(owner: Owner, model: ModelStatus, track: Track) -> list[dict[str, str]]:
    pvc = parse_pvc_uri(model.uri)
    uri = f"file://{PVC_MOUNT_DIR}/{pvc[1]}" if pvc else model.uri
    return [
        {"name": "MODEL_NAME", "value": owner.name},
        {"name": "MODEL_VERSION", "value": model.version},
        {"name": "MODEL_URI", "value": uri},
        {"name": "MODEL_FORMAT", "value": str(model.format)},
        {"name": "MODEL_DIGEST", "value": model.digest or ""},
        {"name": "SLUICE_TRACK", "value": str(track)},
        {"name": "PORT", "value": str(SERVING_PORT)},
        {"name": "MODEL_CACHE_DIR", "value": MODEL_CACHE_DIR},
    ]


def _reference_env(reference: ModelStatus | None) -> list[dict[str, str]]:
    if reference is None:
        return []
    pvc = parse_pvc_uri(reference.uri)
    uri = f"file://{REFERENCE_MOUNT_DIR}/{pvc[1]}" if pvc else reference.uri
    values = (uri, str(reference.format), reference.digest or "")
    return [{"name": name, "value": value} for name, value in zip(REFERENCE_ENV, values, strict=True)]


def _http_probe(path: str, period_seconds: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period_seconds,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def drain_seconds(user_env: list[dict[str, Any]]) -> int:
    """How long the server drains after SIGTERM: spec.serving.env's SLUICE_DRAIN_TIMEOUT when it is a number of
    seconds the server accepts, else its default."""
    for variable in user_env:
        if variable.get("name") == DRAIN_TIMEOUT_ENV and "value" in variable:
            try:
                seconds = float(variable["value"])
            except ValueError:
                return DEFAULT_DRAIN_SECONDS
            return math.ceil(seconds) if math.isfinite(seconds) and seconds >= 0 else DEFAULT_DRAIN_SECONDS
    return DEFAULT_DRAIN_SECONDS


def _user_env(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    return [env.to_wire() for env in (spec.serving.env or [])] if spec.serving else []


def _container(
    owner: Owner,
    spec: ModelDeploymentSpec,
    model: ModelStatus,
    track: Track,
    defaults: ServingDefaults,
    *,
    startup_seconds: int,
    reference: ModelStatus | None = None,
) -> dict[str, Any]:
    """The serving container. Its startup probe allows `startup_seconds` (the rollout's progressDeadline) for the
    model to download and load before liveness applies; preStop keeps it serving while it leaves the endpoints."""
    user_env = _user_env(spec)
    mounts: list[dict[str, Any]] = [
        {"name": "model-cache", "mountPath": MODEL_CACHE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if parse_pvc_uri(model.uri):
        mounts.append({"name": "model", "mountPath": PVC_MOUNT_DIR, "readOnly": True})
    if reference is not None and parse_pvc_uri(reference.uri):
        mounts.append({"name": "reference-model", "mountPath": REFERENCE_MOUNT_DIR, "readOnly": True})
    return {
        "name": CONTAINER_NAME,
        "image": (spec.serving.image if spec.serving else None) or defaults.image,
        "ports": [{"name": PORT_NAME, "containerPort": SERVING_PORT, "protocol": "TCP"}],
        "env": [*_model_env(owner, model, track), *_reference_env(reference), *user_env],
        "resources": resources(spec, defaults),
        "startupProbe": {
            **_http_probe(READINESS_PATH, STARTUP_PROBE_PERIOD_SECONDS),
            "failureThreshold": max(1, math.ceil(startup_seconds / STARTUP_PROBE_PERIOD_SECONDS)),
        },
        "readinessProbe": _http_probe(READINESS_PATH, 5),
        "livenessProbe": _http_probe(LIVENESS_PATH, 10),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_ID,
            "runAsGroup": RUN_AS_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }


def _volumes(
    model: ModelStatus, cache_size_limit: str | None, reference: ModelStatus | None = None
) -> list[dict[str, Any]]:
    cache = {"sizeLimit": cache_size_limit} if cache_size_limit else {}
    volumes: list[dict[str, Any]] = [
        {"name": "model-cache", "emptyDir": cache},
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
    ]
    pvc = parse_pvc_uri(model.uri)
    if pvc:
        volumes.append({"name": "model", "persistentVolumeClaim": {"claimName": pvc[0], "readOnly": True}})
    reference_pvc = parse_pvc_uri(reference.uri) if reference is not None else None
    if reference_pvc:
        claim = {"claimName": reference_pvc[0], "readOnly": True}
        volumes.append({"name": "reference-model", "persistentVolumeClaim": claim})
    return volumes


def deployment(
    owner: Owner, spec: ModelDeploymentSpec, track: Track, workload: WorkloadPlan, defaults: ServingDefaults
) -> dict[str, Any]:
    """The Deployment of one track, serving `workload.model` on `workload.replicas` pods."""
    labels = track_labels(owner.name, track, workload.model.version)
    progress_deadline = max(1, round(parse_duration(spec.rollout.progress_deadline).total_seconds()))
    container = _container(
        owner, spec, workload.model, track, defaults, startup_seconds=progress_deadline, reference=workload.reference
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, ChildNames.of(owner.name).deployment(track), labels),
        "spec": {
            "replicas": workload.replicas,
            "selector": {"matchLabels": {MODELDEPLOYMENT_LABEL: owner.name, TRACK_LABEL: str(track)}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "progressDeadlineSeconds": progress_deadline,
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(SERVING_PORT),
                        "prometheus.io/path": METRICS_PATH,
                        "kubectl.kubernetes.io/default-container": CONTAINER_NAME,
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": PRESTOP_SLEEP_SECONDS
                    + drain_seconds(_user_env(spec))
                    + TERMINATION_MARGIN_SECONDS,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_ID,
                        "runAsGroup": RUN_AS_ID,
                        "fsGroup": RUN_AS_ID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": _volumes(
                        workload.model, container["resources"]["limits"].get("ephemeral-storage"), workload.reference
                    ),
                },
            },
        },
    }


def _service(owner: Owner, name: str, selector: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, name, common_labels(owner.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def entry_service(owner: Owner, spec: ModelDeploymentSpec) -> dict[str, Any]:
    """Service `<name>`: the stable track behind a Gateway, both tracks without one."""
    selector = {MODELDEPLOYMENT_LABEL: owner.name}
    if spec.traffic and spec.traffic.gateway:
        selector[TRACK_LABEL] = str(Track.STABLE)
    return _service(owner, ChildNames.of(owner.name).service, selector)


def canary_service(owner: Owner) -> dict[str, Any]:
    """Service `<name>-canary`: the canary track only."""
    selector = {MODELDEPLOYMENT_LABEL: owner.name, TRACK_LABEL: str(Track.CANARY)}
    return _service(owner, ChildNames.of(owner.name).canary_service, selector)


def http_route(owner: Owner, gateway: GatewayTraffic, canary_weight: int, mirror_percent: int = 0) -> dict[str, Any]:
    """HTTPRoute `<name>`: the entry Service with weight 100 - w, the canary Service with weight w; with a mirror
    percentage, a RequestMirror filter copying that share of requests to the canary Service (answers discarded)."""
    names = ChildNames.of(owner.name)
    rule: dict[str, Any] = {
        "backendRefs": [
            {"name": names.service, "port": SERVICE_PORT, "weight": 100 - canary_weight},
            {"name": names.canary_service, "port": SERVICE_PORT, "weight": canary_weight},
        ]
    }
    if mirror_percent > 0:
        mirror = {"backendRef": {"name": names.canary_service, "port": SERVICE_PORT}, "percent": mirror_percent}
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
    route_spec: dict[str, Any] = {
        "parentRefs": [parent.to_wire() for parent in gateway.parent_refs],
        "rules": [rule],
    }
    if gateway.hostnames:
        route_spec["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": _metadata(owner, names.route, common_labels(owner.name)),
        "spec": route_spec,
    }


def workloads(owner: Owner, spec: ModelDeploymentSpec, plan: Plan, defaults: ServingDefaults) -> list[dict[str, Any]]:
    """Deployments and Services a plan asks for (the HTTPRoute is the traffic router's)."""
    children = [deployment(owner, spec, Track.STABLE, plan.stable, defaults)]
    if plan.canary is not None:
        children.append(deployment(owner, spec, Track.CANARY, plan.canary, defaults))
    children += [entry_service(owner, spec), canary_service(owner)]
    return children


def spec_hash(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON, leaving out its own spec-hash annotation."""
    metadata = dict(manifest.get("metadata", {}))
    annotations = {k: v for k, v in metadata.get("annotations", {}).items() if k != SPEC_HASH_ANNOTATION}
    metadata["annotations"] = annotations
    canonical = json.dumps({**manifest, "metadata": metadata}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def steering_values(manifest: Mapping[str, Any]) -> tuple[Any, ...]:
    """The few values of a child that steer traffic and capacity: a Deployment's replicas, a Service's selector, an
    HTTPRoute's backend weights. Someone else changing one (a `kubectl scale` of a serving Deployment, an edited
    route weight) makes the child differ from what its spec hash claims, so it is applied again. Only values the
    API server neither defaults nor normalizes and admission has no business rewriting, so an untouched child always
    compares equal (no apply loop); images, say, are left out, as registry-mirror policies rewrite them."""
    spec = manifest.get("spec") or {}
    match manifest.get("kind"):
        case "Deployment":
            return (spec.get("replicas"),)
        case "Service":
            return (spec.get("selector"),)
        case "HTTPRoute":
            refs = (ref for rule in spec.get("rules") or [] for ref in rule.get("backendRefs") or [])
            return tuple((ref.get("name"), ref.get("weight")) for ref in refs)
    return ()


def with_spec_hash(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest annotated with its own spec hash."""
    metadata = dict(manifest["metadata"])
    metadata["annotations"] = {**metadata.get("annotations", {}), SPEC_HASH_ANNOTATION: spec_hash(manifest)}
    return {**manifest, "metadata": metadata}
