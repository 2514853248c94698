"""The Kubernetes edge: read ModelDeployments and their children, apply children, write status, post Events.

Every request goes through `KubeApi`, a thin JSON client over the official client's connection and
credentials (kubeconfig or in-cluster). Children are written with server-side apply under one field manager,
and only when their desired manifest's hash differs from the one the observed child carries; status is written
through the status subresource only when it differs from what was read.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import platform
import re
import secrets
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sluice.adapters.cluster import ChildConflictError, ChildRejectedError, ObservedWorkloads
from sluice.adapters.deployments import owns_replicas, replicas_manager, replicas_of, replicas_patch
from sluice.adapters.telemetry import KUBE_REQUESTS, KUBE_WRITES
from sluice.api.v1alpha1 import API_VERSION, KIND, PLURAL, ModelDeploymentStatus
from sluice.core.children import (
    GATEWAY_API_VERSION,
    SPEC_HASH_ANNOTATION,
    ChildNames,
    Owner,
    spec_hash,
    steering_values,
    with_spec_hash,
)
from sluice.core.plan import EventRecord

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
_PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "HTTPRoute": "httproutes",
    "Gateway": "gateways",
    "ConfigMap": "configmaps",
    "Pod": "pods",
    "Event": "events",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    KIND: PLURAL,
}
_EVENT_MESSAGE_LIMIT = 1024
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
"""Kubernetes verbs of the HTTP methods KubeApi sends (it reads single objects, and lists one ModelDeployment's
pods; no watch)."""
POD_LIST_LIMIT = 200
"""At most this many pods per list: enough to count a ModelDeployment's blocked pods."""


KUBE_CONCURRENCY = 32
"""Kubernetes requests in flight at once (worker threads and pooled connections). asyncio's default executor has
min(32, cores + 4) threads, 6 on 2 cores, and the client's pool 5 per core: with a thousand ModelDeployments
reconciling, `make bench` found the operator waiting on those few slots while the API server had capacity left."""


def load_api_client() -> client.ApiClient:
    """An API client from the in-cluster service account, else from the kubeconfig (KUBECONFIG or ~/.kube), with a
    connection pool for `KUBE_CONCURRENCY` requests in flight."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = KUBE_CONCURRENCY
    return client.ApiClient(configuration)


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """REST path of a namespaced object (or of its collection when name is None)."""
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{_PLURALS[kind]}"
    return path if name is None else f"{path}/{name}"


class KubeApi:
    """JSON requests to the API server, run in a worker thread so the event loop never blocks."""

    def __init__(self, api_client: client.ApiClient, timeout: float, concurrency: int = KUBE_CONCURRENCY) -> None:
        self._api_client = api_client
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="kube-api")

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """The decoded response; raises ApiException for error statuses."""
        if method != "GET":
            KUBE_WRITES.labels(method).inc()
        verb = _VERBS.get(method, method.lower())
        try:
            call = functools.partial(self._request, method, path, query or {}, body, content_type)
            response = await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(contextvars.copy_context().run, call)
            )
        except ApiException as error:
            KUBE_REQUESTS.labels(verb, str(error.status)).inc()
            raise
        except Exception:
            KUBE_REQUESTS.labels(verb, "none").inc()
            raise
        KUBE_REQUESTS.labels(verb, "2xx").inc()
        return response

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when it does not exist (or its API is not served)."""
        try:
            return await self.request("GET", path)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _request(
        self, method: str, path: str, query: Mapping[str, str], body: Mapping[str, Any] | None, content_type: str
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        payload: dict[str, Any] | bytes | None = dict(body) if body is not None else None
        if body is not None:
            headers["Content-Type"] = content_type
            if "yaml" in content_type:
                payload = yaml_safe_json(body)
        serialized = self._api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query.items()),
            header_params=headers,
            body=payload,
            auth_settings=["BearerToken"],
        )
        response = self._api_client.call_api(*serialized, _request_timeout=self._timeout)
        response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        decoded: dict[str, Any] = json.loads(response.data) if response.data else {}
        return decoded


_NOT_YAML_PRINTABLE = re.compile("[\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff\\ufeff\\ufffe\\uffff]")


def yaml_safe_json(body: Mapping[str, Any]) -> bytes:
    """`body` as JSON that is also valid YAML, for server-side apply (application/apply-patch+yaml).

    JSON is YAML except where the API server's YAML decoder differs: json.dumps escapes characters beyond the BMP as
    surrogate pairs (YAML has no surrogates), and writes DEL and C1 control characters raw (YAML allows them only
    escaped; NEL, like LS and PS, is a line break there and would be folded; a BOM is refused). So: characters
    unescaped, except those, which get their \\uXXXX escape.
    """
    text = json.dumps(body, ensure_ascii=False)
    return _NOT_YAML_PRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text).encode()


def _rejection(error: ApiException) -> str:
    """The message of a 422 Status, else the raw body."""
    try:
        return str(json.loads(error.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(error.body)


def is_controlled_by(obj: Mapping[str, Any], owner: Owner) -> bool:
    references = obj.get("metadata", {}).get("ownerReferences", [])
    return any(ref.get("controller") and ref.get("uid") == owner.uid for ref in references)


def needs_apply(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    """True unless the observed child carries the desired manifest's spec hash and its steering values."""
    if observed is None:
        return True
    annotations = observed.get("metadata", {}).get("annotations") or {}
    if annotations.get(SPEC_HASH_ANNOTATION) != spec_hash(desired):
        return True
    if desired.get("kind") == "Deployment" and "replicas" not in desired.get("spec", {}):
        return False  # autoscaled: the replicas are its HPA's, not sluice's to repair
    return steering_values(observed) != steering_values(desired)


def parse_status(body: Mapping[str, Any]) -> ModelDeploymentStatus:
    """The status as read; an unreadable one (never written by this operator) counts as empty."""
    try:
        return ModelDeploymentStatus.model_validate(body.get("status") or {})
    except ValueError:
        log.warning("status of %s is unreadable; starting from an empty status", body["metadata"].get("name"))
        return ModelDeploymentStatus()


class KubeCluster:
    """The real `Cluster`: KubeApi requests under one field manager."""

    def __init__(self, api: KubeApi, field_manager: str) -> None:
        self.api = api
        self._field_manager = field_manager
        self._instance = platform.node() or "sluice"

    async def read_model_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.api.get(object_path(API_VERSION, KIND, namespace, name))

    async def read_workloads(self, owner: Owner) -> ObservedWorkloads:
        names = ChildNames.of(owner.name)
        stable, canary = await asyncio.gather(
            self.read_child("apps/v1", "Deployment", owner, names.stable_deployment),
            self.read_child("apps/v1", "Deployment", owner, names.canary_deployment),
        )
        return ObservedWorkloads(stable=stable, canary=canary)

    async def read_child(self, api_version: str, kind: str, owner: Owner, name: str) -> dict[str, Any] | None:
        """A child as read; ChildConflictError when its name is taken by an object this owner does not control."""
        observed = await self.api.get(object_path(api_version, kind, owner.namespace, name))
        if observed is not None and not is_controlled_by(observed, owner):
            raise ChildConflictError(
                f"{kind} {owner.namespace}/{name} exists and is not controlled by ModelDeployment {owner.name}"
            )
        return observed

    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str | None:
        """A ConfigMap key's text (the validation gate's dataset); None when the ConfigMap or the key is missing."""
        config_map = await self.api.get(object_path("v1", "ConfigMap", namespace, name))
        value = ((config_map or {}).get("data") or {}).get(key)
        return value if isinstance(value, str) else None

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        query = {"labelSelector": selector, "limit": str(POD_LIST_LIMIT)}
        listed = await self.api.request("GET", object_path("v1", "Pod", namespace), query=query)
        return list(listed.get("items") or [])

    async def read_gateway(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.api.get(object_path(GATEWAY_API_VERSION, "Gateway", namespace, name))

    async def read_gateway_class(self, name: str) -> dict[str, Any] | None:
        return await self.api.get(f"/apis/{GATEWAY_API_VERSION}/gatewayclasses/{name}")

    async def apply(self, desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
        """Server-side apply `desired` unless `observed` already carries its hash; True when it wrote."""
        if not needs_apply(desired, observed):
            return False
        await self._server_side_apply(with_spec_hash(desired))
        return True

    async def _server_side_apply(self, body: Mapping[str, Any], manager: str | None = None, force: bool = True) -> None:
        """One apply request; ChildRejectedError on 422 (a 409 conflict is the caller's)."""
        metadata = body["metadata"]
        path = object_path(body["apiVersion"], body["kind"], metadata["namespace"], metadata["name"])
        log.info("applying %s %s/%s", body["kind"], metadata["namespace"], metadata["name"])
        query = {"fieldManager": manager or self._field_manager, "force": str(force).lower()}
        try:
            await self.api.request("PATCH", path, query=query, body=body, content_type=APPLY_PATCH)
        except ApiException as error:
            if error.status != 422:
                raise
            raise ChildRejectedError(f"the API server rejected a child: {_rejection(error)}") from error

    async def apply_autoscaled(
        self, desired: Mapping[str, Any], observed: Mapping[str, Any] | None, floor: int
    ) -> bool:
        """Apply a Deployment its HPA scales (`desired` has no replicas; see `adapters.deployments`): created at
        `floor` replicas, raised to it when it runs fewer (only as of `observed`: a Deployment changed since is
        left for the next reconcile), never lowered; ownership of the replicas handed to the replicas manager."""
        current, replicas = replicas_of(observed), replicas_manager(self._field_manager)
        if observed is None:
            body = with_spec_hash(desired)
            await self._server_side_apply({**body, "spec": {**body["spec"], "replicas": max(floor, 1)}})
            await self._replicas(replicas_patch(desired, max(floor, 1)), replicas, force=False)
            return True
        if current < floor:
            patch = replicas_patch(observed, floor, observed["metadata"].get("resourceVersion"))
            if not await self._replicas(patch, replicas, force=True):
                return False
        elif owns_replicas(observed, self._field_manager):  # same value: shared, unless the HPA just changed it
            await self._replicas(replicas_patch(observed, current), replicas, force=False)
        return await self.apply(desired, observed)

    async def _replicas(self, patch: Mapping[str, Any], manager: str, *, force: bool) -> bool:
        """Apply only the replicas under `manager`; False on a conflict (409): the Deployment changed since it was
        read, or (not forced) someone else set another count since."""
        try:
            await self._server_side_apply(patch, manager, force)
        except ApiException as error:
            if error.status != 409:
                raise
            return False
        return True

    async def apply_child(self, desired: Mapping[str, Any], owner: Owner) -> bool:
        """Read the child, then apply it when it differs; True when it wrote."""
        observed = await self.read_child(desired["apiVersion"], desired["kind"], owner, desired["metadata"]["name"])
        return await self.apply(desired, observed)

    async def delete_child(self, api_version: str, kind: str, owner: Owner, name: str) -> bool:
        """Delete a child this owner controls, if it exists; True when it deleted."""
        observed = await self.api.get(object_path(api_version, kind, owner.namespace, name))
        if observed is None or not is_controlled_by(observed, owner):
            return False
        log.info("deleting %s %s/%s", kind, owner.namespace, name)
        try:
            await self.api.request("DELETE", object_path(api_version, kind, owner.namespace, name))
        except ApiException as error:
            if error.status != 404:
                raise
        return True

    async def write_status(self, body: Mapping[str, Any], status: ModelDeploymentStatus) -> bool:
        """Apply the complete status through the status subresource when it differs from the one read.

        The read resourceVersion goes along, so a status decided on a stale read fails with 409 Conflict.
        """
        if parse_status(body).to_wire() == status.to_wire():
            return False
        metadata = body["metadata"]
        path = object_path(API_VERSION, KIND, metadata["namespace"], metadata["name"]) + "/status"
        await self.api.request(
            "PATCH",
            path,
            query={"fieldManager": self._field_manager, "force": "true"},
            body={
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {
                    "name": metadata["name"],
                    "namespace": metadata["namespace"],
                    "resourceVersion": metadata["resourceVersion"],
                },
                "status": status.to_wire(),
            },
            content_type=APPLY_PATCH,
        )
        return True

    async def post_event(self, body: Mapping[str, Any], record: EventRecord, now: datetime) -> None:
        """A core/v1 Event about the ModelDeployment, stamped `now`."""
        metadata = body["metadata"]
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{metadata['name']}.{secrets.token_hex(8)}", "namespace": metadata["namespace"]},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "resourceVersion": metadata.get("resourceVersion", ""),
            },
            "type": str(record.type),
            "reason": record.reason,
            "message": record.message[:_EVENT_MESSAGE_LIMIT],
            "source": {"component": "sluice", "host": self._instance},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        log.info("event %s %s on %s/%s: %s", record.type, record.reason, metadata["namespace"], metadata["name"],
                 record.message)  # fmt: skip
        await self.api.request("POST", object_path("v1", "Event", metadata["namespace"]), body=event)
