"""The serving Deployments: the pod template (the model server container, its env, probes, volumes, resources
and security context), and every Deployment and Service a plan asks for (`workloads`)."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from sluice import contract
from sluice.api.durations import parse_duration
from sluice.api.v1alpha1 import GROUP, Capacity, ModelDeploymentSpec, ModelStatus, ServingSpec
from sluice.core.children import (
    AUTOSCALED_ANNOTATION,
    MODELDEPLOYMENT_LABEL,
    PORT_NAME,
    SERVICE_PORT,
    SERVING_PORT,
    TRACK_LABEL,
    ChildNames,
    Owner,
    ServingDefaults,
    Track,
    canary_service,
    entry_service,
    horizontal_pod_autoscaler,
    object_metadata,
    parse_pvc_uri,
    track_labels,
)
from sluice.core.plan import Assignment, Plan, WorkloadPlan
from sluice.core.podfields import (
    STARTUP_PROBE_PERIOD_SECONDS,
    env_from,
    pod_metadata,
    pod_spec_fields,
    startup_timing,
)
from sluice.core.rollout.revisions import revision_hash

CONTAINER_NAME = "server"
MODEL_CACHE_DIR = "/var/cache/sluice"
PVC_MOUNT_DIR = "/mnt/models"
RUN_AS_ID = 65532
METRICS_PATH = "/metrics"
READINESS_PATH = "/v2/health/ready"
LIVENESS_PATH = "/v2/health/live"
PRESTOP_SLEEP_SECONDS = 5
"""A deleted serving pod keeps answering this long before its SIGTERM: the time EndpointSlices, kube-proxy and a
Gateway take to stop sending it new requests, so that scale-down and promotion drop none."""
DRAIN_TIMEOUT_ENV = "SLUICE_DRAIN_TIMEOUT"
DEFAULT_DRAIN_SECONDS = 25
"""sluice_serving's drain after SIGTERM unless spec.serving.env sets SLUICE_DRAIN_TIMEOUT: it stops listening,
answers what it received and closes its connections (serving-image config.py has the same default)."""
TERMINATION_MARGIN_SECONDS = 5
TMP_SIZE_LIMIT = "256Mi"
"""sizeLimit of the serving container's /tmp emptyDir; the model cache's is its ephemeral-storage limit."""
REVISION_ANNOTATION = f"{GROUP}/revision"
"""On a serving Deployment (not its pods): the hash of the revision its template runs."""
EXPERIMENT_ANNOTATION = f"{GROUP}/experiment"
"""On the stable Deployment during an experiment: the id of the experiment its template assigns arms for."""
EXPERIMENT_ENV = (
    contract.ENV_EXPERIMENT_ID,
    contract.ENV_EXPERIMENT_HEADER,
    contract.ENV_EXPERIMENT_SPLIT,
    contract.ENV_EXPERIMENT_CANDIDATE_URL,
    contract.ENV_EXPERIMENT_CANDIDATE_VERSION,
    contract.ENV_EXPOSURE_LOG,
)

REFERENCE_ENV = (
    contract.ENV_REFERENCE_MODEL_URI,
    contract.ENV_REFERENCE_MODEL_FORMAT,
    contract.ENV_REFERENCE_MODEL_DIGEST,
)
"""The stable model a canary compares itself with in the shadow phase (serving-image shadow.py)."""
REFERENCE_MOUNT_DIR = "/mnt/reference-model"
RESERVED_ENV = frozenset(
    {contract.ENV_MODEL_NAME, contract.ENV_MODEL_VERSION, contract.ENV_MODEL_URI, contract.ENV_MODEL_FORMAT,
     contract.ENV_MODEL_DIGEST, contract.ENV_TRACK, contract.ENV_PORT, contract.ENV_MODEL_CACHE_DIR, *REFERENCE_ENV,
     *EXPERIMENT_ENV, contract.ENV_MLFLOW_TRACKING_URI}
)  # fmt: skip
"""Variables the operator sets on every serving container; spec.serving.env may not override them."""

_QUANTITY_SUFFIXES = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)([KMGTPE]i|[numkMGTPE])?$")


def parse_quantity(text: str | int) -> Decimal:
    """A Kubernetes quantity (`500m`, `2`, `1Gi`, `1e3`) as a number; ValueError when it is not one."""
    match = _QUANTITY.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a quantity such as 500m, 2 or 1Gi")
    try:
        return Decimal(match.group(1)) * _QUANTITY_SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a quantity such as 500m, 2 or 1Gi") from None


def resources(serving: ServingSpec | None, defaults: ServingDefaults) -> dict[str, dict[str, str]]:
    """Requests and limits for every resource named: the spec's over the defaults, kept consistent.

    A request above the default limit raises the limit; a limit below the default request lowers the request.
    Every requested resource gets a limit (no limit default: the request).
    """
    user = serving.resources if serving and serving.resources else None
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
        {"name": contract.ENV_MODEL_NAME, "value": owner.name},
        {"name": contract.ENV_MODEL_VERSION, "value": model.version},
        {"name": contract.ENV_MODEL_URI, "value": uri},
        {"name": contract.ENV_MODEL_FORMAT, "value": str(model.format)},
        {"name": contract.ENV_MODEL_DIGEST, "value": model.digest or ""},
        {"name": contract.ENV_TRACK, "value": str(track)},
        {"name": contract.ENV_PORT, "value": str(SERVING_PORT)},
        {"name": contract.ENV_MODEL_CACHE_DIR, "value": MODEL_CACHE_DIR},
    ]


def _reference_env(reference: ModelStatus | None) -> list[dict[str, str]]:
    if reference is None:
        return []
    pvc = parse_pvc_uri(reference.uri)
    uri = f"file://{REFERENCE_MOUNT_DIR}/{pvc[1]}" if pvc else reference.uri
    values = (uri, str(reference.format), reference.digest or "")
    return [{"name": name, "value": value} for name, value in zip(REFERENCE_ENV, values, strict=True)]


def _experiment_env(owner: Owner, assignment: Assignment | None, defaults: ServingDefaults) -> list[dict[str, str]]:
    """The stable track's assignment during an experiment; the candidate's URL from the operator's own naming."""
    if assignment is None:
        return []
    service = ChildNames.of(owner.name).canary_service
    url = defaults.service_url_template.format(service=service, namespace=owner.namespace, port=SERVICE_PORT)
    values = (
        assignment.experiment_id,
        assignment.header,
        str(assignment.split),
        url,
        assignment.candidate_version,
        "true" if assignment.exposure_log else "false",
    )
    return [{"name": name, "value": value} for name, value in zip(EXPERIMENT_ENV, values, strict=True)]


def _registry_env(defaults: ServingDefaults, model: ModelStatus, reference: ModelStatus | None) -> list[dict[str, str]]:
    """The operator's MLflow tracking server, for a pod whose model (or reference) is a pinned models:/ uri."""
    uris = (model.uri, reference.uri if reference else "")
    if not any(uri.startswith("models:/") for uri in uris):
        return []
    return [{"name": contract.ENV_MLFLOW_TRACKING_URI, "value": defaults.mlflow_tracking_uri}]


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


def _user_env(serving: ServingSpec | None) -> list[dict[str, Any]]:
    """spec.serving.env as the container's env; a variable with valueFrom has no (empty) value beside it."""
    wire = [env.to_wire() for env in (serving.env or [])] if serving else []
    return [{k: v for k, v in env.items() if k != "value" or "valueFrom" not in env} for env in wire]


def _container(
    owner: Owner, workload: WorkloadPlan, track: Track, defaults: ServingDefaults, *, startup_seconds: int
) -> dict[str, Any]:
    """The serving container. Its startup probe allows `startup_seconds` (the rollout's progressDeadline, unless
    spec.serving.startupProbe says) for the model to download and load before liveness applies; preStop keeps it
    serving while it leaves the endpoints."""
    model, reference, serving = workload.model, workload.reference, workload.serving
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
        "image": (serving.image if serving else None) or defaults.image,
        "ports": [{"name": PORT_NAME, "containerPort": SERVING_PORT, "protocol": "TCP"}],
        "env": [
            *_model_env(owner, model, track),
            *_reference_env(reference),
            *_experiment_env(owner, workload.assignment, defaults),
            *_registry_env(defaults, model, reference),
            *_user_env(serving),
        ],
        **env_from(serving),
        "resources": resources(serving, defaults),
        "startupProbe": {
            **_http_probe(READINESS_PATH, STARTUP_PROBE_PERIOD_SECONDS),
            **startup_timing(serving, startup_seconds),
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


POD_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(SERVING_PORT),
    "prometheus.io/path": METRICS_PATH,
    "kubectl.kubernetes.io/default-container": CONTAINER_NAME,
}


def deployment(
    owner: Owner, spec: ModelDeploymentSpec, track: Track, workload: WorkloadPlan, defaults: ServingDefaults
) -> dict[str, Any]:
    """The Deployment of one track, serving `workload.model` on `workload.replicas` pods."""
    labels = track_labels(owner.name, track, workload.model.version)
    progress_deadline = max(1, round(parse_duration(spec.rollout.progress_deadline).total_seconds()))
    container = _container(owner, workload, track, defaults, startup_seconds=progress_deadline)
    metadata = object_metadata(owner, ChildNames.of(owner.name).deployment(track), labels)
    metadata["annotations"] = {REVISION_ANNOTATION: revision_hash(workload.model, workload.serving)}
    if workload.assignment is not None:
        metadata["annotations"][EXPERIMENT_ANNOTATION] = workload.assignment.experiment_id
    replicas = {"replicas": workload.replicas}
    if workload.autoscaling is not None:  # its HPA's: sluice applies none (see adapters.kube.apply_autoscaled)
        metadata["annotations"][AUTOSCALED_ANNOTATION] = "true"
        replicas = {}
    drain = PRESTOP_SLEEP_SECONDS + drain_seconds(_user_env(workload.serving)) + TERMINATION_MARGIN_SECONDS
    max_surge: int | str = 1 if spec.rollout.capacity is Capacity.NEUTRAL else "25%"  # Neutral: one pod over
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            **replicas,
            "selector": {"matchLabels": {MODELDEPLOYMENT_LABEL: owner.name, TRACK_LABEL: str(track)}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": max_surge}},
            "progressDeadlineSeconds": progress_deadline,
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": pod_metadata(workload.serving, labels, POD_ANNOTATIONS),
                "spec": {
                    "terminationGracePeriodSeconds": drain,
                    **pod_spec_fields(workload.serving),
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


def workloads(owner: Owner, spec: ModelDeploymentSpec, plan: Plan, defaults: ServingDefaults) -> list[dict[str, Any]]:
    """Deployments, Services and HorizontalPodAutoscalers a plan asks for (the HTTPRoute is the traffic router's),
    each HPA after its Deployment."""
    tracks = [(Track.STABLE, plan.stable)] + ([(Track.CANARY, plan.canary)] if plan.canary is not None else [])
    children = []
    for track, workload in tracks:
        children.append(deployment(owner, spec, track, workload, defaults))
        if spec.autoscaling is not None and workload.autoscaling is not None:
            bounds = workload.autoscaling
            hpa = horizontal_pod_autoscaler(owner, track, spec.autoscaling, bounds.min_replicas, bounds.max_replicas)
            children.append(hpa)
    return [*children, entry_service(owner, spec), canary_service(owner)]
