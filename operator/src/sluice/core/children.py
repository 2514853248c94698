"""Desired manifests of a ModelDeployment's children, built from its metadata, spec and plan (pure, no I/O).

Children (all in the ModelDeployment's namespace, controlled by it through an owner reference):

- Deployment `<name>-stable` and, once a rollout has started, Deployment `<name>-canary`: the serving pods;
- Service `<name>`: the entry point; it selects the stable track only when a Gateway splits traffic, and both
  tracks otherwise (then the replica ratio approximates the canary weight);
- Service `<name>-canary`: the canary track only;
- HTTPRoute `<name>`, with `spec.traffic.gateway` only: the model's own paths (`model_paths`), to Service `<name>`
  (weight 100 - w) and Service `<name>-canary` (weight w); while a rollout's steps run with `spec.rollout.match`,
  one rule per match before that one, sending the matching requests to Service `<name>-canary` alone.
- HorizontalPodAutoscaler `<name>-stable`, and `<name>-canary` while a canary runs, with `spec.autoscaling` only:
  each scales its track's Deployment (`horizontal_pod_autoscaler`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sluice import contract
from sluice.api.v1alpha1 import (
    API_VERSION,
    GROUP,
    KIND,
    AutoscalingSpec,
    CookieMatch,
    GatewayTraffic,
    MatchType,
    ModelDeploymentSpec,
    RouteMatch,
    ValueMatch,
)

SERVING_PORT = 8080
SERVICE_PORT = 80
PORT_NAME = "http"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
AUTOSCALING_API_VERSION = "autoscaling/v2"

SPEC_HASH_ANNOTATION = f"{GROUP}/spec-hash"
"""sha256 of a child's desired manifest: when the observed child carries the same, applying it is skipped."""
MODELDEPLOYMENT_LABEL = f"{GROUP}/modeldeployment"
TRACK_LABEL = f"{GROUP}/track"
VERSION_LABEL = f"{GROUP}/version"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "sluice"
AUTOSCALED_ANNOTATION = f"{GROUP}/autoscaled"
"""On a serving Deployment: `"true"` while the track's HorizontalPodAutoscaler (of the same name) sets its replicas."""


class Track(StrEnum):
    """The two Deployments of a ModelDeployment."""

    STABLE = contract.TRACK_STABLE
    CANARY = contract.TRACK_CANARY


@dataclass(frozen=True)
class ServingDefaults:
    """Operator settings the builders fill in where the spec says nothing."""

    image: str
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    service_url_template: str = "http://{service}.{namespace}.svc:{port}"
    """Base URL of one of the ModelDeployment's Services (settings.canary_url_template): where an experiment's
    stable server sends the candidate's requests."""
    mlflow_tracking_uri: str = ""
    """The operator's MLflow tracking server, given to pods that serve a models:/ uri."""


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


def object_metadata(owner: Owner, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(owner)],
    }


def _service(owner: Owner, name: str, selector: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_metadata(owner, name, common_labels(owner.name)),
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


def model_paths(name: str) -> list[dict[str, Any]]:
    """HTTPRoute matches of the paths the serving image answers for model `name` alone: the V2 model's metadata,
    readiness, infer and versions (`/v2/models/<name>` and below; a PathPrefix matches whole path segments, so not
    `/v2/models/<name>-other`), and the V1 model and `:predict` (one segment each, so Exact). Server-wide paths
    (`/v2/health/*`, `/metrics`) are not routed: several ModelDeployments share a listener and hostname."""
    return [
        {"path": {"type": "PathPrefix", "value": f"/v2/models/{name}"}},
        {"path": {"type": "Exact", "value": f"/v1/models/{name}"}},
        {"path": {"type": "Exact", "value": f"/v1/models/{name}:predict"}},
    ]


def cookie_expression(cookie: CookieMatch) -> str:
    """The Cookie header regular expression of `name=value` among the request's cookies (`a=1; name=value; b=2`),
    anchored at both ends so Gateways that match the whole value (Envoy) and those that search in it (Traefik) agree;
    its `.` written `[.]`, which every Gateway's dialect (RE2, Go, PCRE) reads alike."""
    pair = f"{cookie.name}={cookie.value}".replace(".", "[.]")
    return rf"^(.*;\s*)?{pair}(;.*)?$"


def _value_match(match: ValueMatch) -> dict[str, str]:
    return {"type": str(match.type), "name": match.name, "value": match.value}


def _conditions(match: RouteMatch) -> dict[str, Any]:
    """The headers (the cookie as a Cookie header expression) and query parameters of an HTTPRoute match, each with
    its type written out (the API server's default, Exact, would otherwise make the route differ from this)."""
    headers = [_value_match(header) for header in match.headers or []]
    if match.cookie is not None:
        expression = cookie_expression(match.cookie)
        headers.append({"type": str(MatchType.REGULAR_EXPRESSION), "name": "Cookie", "value": expression})
    conditions: dict[str, Any] = {"headers": headers} if headers else {}
    if match.query_params:
        conditions["queryParams"] = [_value_match(param) for param in match.query_params]
    return conditions


def match_rules(name: str, matches: Sequence[RouteMatch]) -> list[dict[str, Any]]:
    """One HTTPRoute rule per match: the model's own paths, each with the match's conditions, to the canary Service
    alone. Gateway API ranks a match with the same path and more headers (or query parameters) above the weighted
    rule's, so a matching request takes this rule whatever the weights."""
    backend = {"name": ChildNames.of(name).canary_service, "port": SERVICE_PORT, "weight": 100}
    return [
        {"matches": [{**path, **_conditions(match)} for path in model_paths(name)], "backendRefs": [backend]}
        for match in matches
    ]


def http_route(
    owner: Owner,
    gateway: GatewayTraffic,
    canary_weight: int,
    mirror_percent: int = 0,
    matches: Sequence[RouteMatch] = (),
) -> dict[str, Any]:
    """HTTPRoute `<name>`: the model's own paths to the entry Service with weight 100 - w and the canary Service
    with weight w; with a mirror percentage, a RequestMirror filter copying that share of requests to the canary
    Service (answers discarded); before that rule, one per match sending the matching requests to the canary
    alone (`match_rules`)."""
    names = ChildNames.of(owner.name)
    rule: dict[str, Any] = {
        "matches": model_paths(owner.name),
        "backendRefs": [
            {"name": names.service, "port": SERVICE_PORT, "weight": 100 - canary_weight},
            {"name": names.canary_service, "port": SERVICE_PORT, "weight": canary_weight},
        ],
    }
    if mirror_percent > 0:
        mirror = {"backendRef": {"name": names.canary_service, "port": SERVICE_PORT}, "percent": mirror_percent}
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
    route_spec: dict[str, Any] = {
        "parentRefs": [parent.to_wire() for parent in gateway.parent_refs],
        "rules": [*match_rules(owner.name, matches), rule],
    }
    if gateway.hostnames:
        route_spec["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": object_metadata(owner, names.route, common_labels(owner.name)),
        "spec": route_spec,
    }


def horizontal_pod_autoscaler(
    owner: Owner, track: Track, autoscaling: AutoscalingSpec, min_replicas: int, max_replicas: int
) -> dict[str, Any]:
    """HorizontalPodAutoscaler `<name>-<track>` (autoscaling/v2): the track's Deployment, scaled on
    spec.autoscaling's metrics between the track's bounds."""
    name = ChildNames.of(owner.name).deployment(track)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
    }
    if autoscaling.metrics:
        spec["metrics"] = [metric.to_wire() for metric in autoscaling.metrics]
    return {
        "apiVersion": AUTOSCALING_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_metadata(owner, name, {**common_labels(owner.name), TRACK_LABEL: str(track)}),
        "spec": spec,
    }


def spec_hash(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON, leaving out its own spec-hash annotation."""
    metadata = dict(manifest.get("metadata", {}))
    annotations = {k: v for k, v in metadata.get("annotations", {}).items() if k != SPEC_HASH_ANNOTATION}
    metadata["annotations"] = annotations
    canonical = json.dumps({**manifest, "metadata": metadata}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def steering_values(manifest: Mapping[str, Any]) -> tuple[Any, ...]:
    """The few values of a child that steer traffic and capacity: a Deployment's replicas, a Service's selector, an
    HTTPRoute's matches (paths, headers, query parameters, each with its type) and backend weights, an HPA's bounds
    and target. Someone else changing one (a `kubectl scale` of a serving Deployment, an edited route weight, path or
    header) makes the child differ from what its spec hash claims, so it is applied again. Only values the API
    server neither defaults nor normalizes and admission has no business rewriting, so an untouched child always
    compares equal (no apply loop; a header match's type, which the server defaults, is always written); images,
    say, are left out, as registry-mirror policies rewrite them."""
    spec = manifest.get("spec") or {}
    match manifest.get("kind"):
        case "Deployment":
            return (spec.get("replicas"),)
        case "HorizontalPodAutoscaler":
            return (spec.get("minReplicas"), spec.get("maxReplicas"), (spec.get("scaleTargetRef") or {}).get("name"))
        case "Service":
            return (spec.get("selector"),)
        case "HTTPRoute":
            rules = spec.get("rules") or []
            refs = (ref for rule in rules for ref in rule.get("backendRefs") or [])
            matches = (match for rule in rules for match in rule.get("matches") or [])
            return (*((ref.get("name"), ref.get("weight")) for ref in refs), *(_match_values(m) for m in matches))
    return ()


def _match_values(match: Mapping[str, Any]) -> tuple[Any, ...]:
    """An HTTPRoute match's path, headers and query parameters (type, name and value of each)."""
    path = match.get("path") or {}
    conditions = ((kind, item) for kind in ("headers", "queryParams") for item in match.get(kind) or [])
    return (
        (path.get("type"), path.get("value")),
        *((kind, item.get("type"), item.get("name"), item.get("value")) for kind, item in conditions),
    )


def with_spec_hash(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest annotated with its own spec hash."""
    metadata = dict(manifest["metadata"])
    metadata["annotations"] = {**metadata.get("annotations", {}), SPEC_HASH_ANNOTATION: spec_hash(manifest)}
    return {**manifest, "metadata": metadata}
