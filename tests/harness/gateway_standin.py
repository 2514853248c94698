"""A stand-in for a Gateway controller on kwok clusters, which have none: it writes each HTTPRoute's
`status.parents` as a controller would, Accepted=True for every parent Gateway that exists, and nothing for a parent
that does not (so the operator's RouteAccepted condition sees a silent parent, as with a missing Gateway).

`ControlPlane.start` runs it as one of its components when it has kwok nodes (a real node runs Traefik, which
writes route status itself): `python tests/harness/gateway_standin.py --kubeconfig PATH` polls every half second
until stopped. `create_gateway` makes a Gateway routes can name, of GatewayClass `sluice-standin`, whose status the
harness writes as a controller would, listing FEATURES: `HTTPRouteRequestMirror` among them, because the harness's
load generator (`dataplane.py`) is the Gateway that honours the filter. The operator writes a RequestMirror filter
only through Gateways whose class lists it (docs/ml-analysis.md, "Shadow traffic").
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
CONTROLLER_NAME = "sluice.dev/gateway-standin"
GATEWAY_CLASS = "sluice-standin"
FEATURES = ("Gateway", "HTTPRoute", "HTTPRouteRequestMirror")
"""What the stand-in's GatewayClass lists in `status.supportedFeatures` (Gateway API v1.4's form)."""
POLL_SECONDS = 0.5


def accepted_parents(
    route: Mapping[str, Any], gateway_exists: Callable[[str, str], bool], now: str
) -> list[dict[str, Any]]:
    """The `status.parents` a controller of every existing Gateway writes: one Accepted entry per such parent."""
    namespace = route["metadata"]["namespace"]
    generation = int(route["metadata"].get("generation", 1))
    parents = []
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        if ref.get("kind", "Gateway") != "Gateway" or not gateway_exists(
            ref.get("namespace") or namespace, ref["name"]
        ):
            continue
        condition = {
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": "accepted by the test harness's Gateway stand-in",
            "observedGeneration": generation,
            "lastTransitionTime": now,
        }
        parents.append({"parentRef": dict(ref), "controllerName": CONTROLLER_NAME, "conditions": [condition]})
    return parents


def _essentials(parents: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            sorted(parent.get("parentRef", {}).items()),
            [(c.get("type"), c.get("status"), c.get("observedGeneration")) for c in parent.get("conditions", [])],
        )
        for parent in parents
    ]


def sync(custom: client.CustomObjectsApi) -> int:
    """One pass over every HTTPRoute; the number of route statuses written."""
    listed = cast(dict[str, Any], custom.list_cluster_custom_object(GROUP, VERSION, "gateways"))
    gateways = {(item["metadata"]["namespace"], item["metadata"]["name"]) for item in listed["items"]}
    routes = cast(dict[str, Any], custom.list_cluster_custom_object(GROUP, VERSION, "httproutes"))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    written = 0
    for route in routes["items"]:
        wanted = accepted_parents(route, lambda namespace, name: (namespace, name) in gateways, now)
        if _essentials(wanted) == _essentials((route.get("status") or {}).get("parents") or []):
            continue
        metadata = route["metadata"]
        try:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, metadata["namespace"], "httproutes", metadata["name"], {"status": {"parents": wanted}}
            )
            written += 1
        except ApiException as error:
            if error.status not in (404, 409):  # deleted meanwhile, or changed: the next pass sees it again
                raise
    return written


def create_gateway(api_client: client.ApiClient, namespace: str, name: str = "public") -> None:
    """A Gateway (and the stand-in's GatewayClass, its features in its status) that routes may name; nothing when
    they exist already."""
    custom = client.CustomObjectsApi(api_client)
    gateway_class = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GatewayClass",
        "metadata": {"name": GATEWAY_CLASS},
        "spec": {"controllerName": CONTROLLER_NAME},
    }
    gateway = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
    }
    creations: list[Callable[[], object]] = [
        lambda: custom.create_cluster_custom_object(GROUP, VERSION, "gatewayclasses", gateway_class),
        lambda: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "gateways", gateway),
    ]
    for create in creations:
        try:
            create()
        except ApiException as error:
            if error.status != 409:
                raise
    features = {"status": {"supportedFeatures": [{"name": feature} for feature in FEATURES]}}
    custom.patch_cluster_custom_object_status(GROUP, VERSION, "gatewayclasses", GATEWAY_CLASS, features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    api_client = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    custom = client.CustomObjectsApi(api_client)
    while True:
        try:
            sync(custom)
        except Exception as error:  # the API server restarting, a route changing: try again
            print(f"gateway stand-in: {error}", flush=True)
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    main()
