"""A Gateway that mirrors, for the kwok cluster: a GatewayClass whose status lists `HTTPRouteRequestMirror` and a
Gateway of that class. No Gateway controller runs beside kwok, so the harness writes the class's status itself, as
a controller implementing RequestMirror would; the harness's load generator (`dataplane.py`) is the Gateway that
honours the filter. The operator writes a RequestMirror filter only through such Gateways (docs/ml-analysis.md,
"Shadow traffic").
"""

from __future__ import annotations

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

GROUP, VERSION = "gateway.networking.k8s.io", "v1"
MIRRORING_CLASS = "sluice-harness-mirror"
"""The GatewayClass the harness writes as supporting RequestMirror (its controller is the load generator)."""
FEATURES = ("Gateway", "HTTPRoute", "HTTPRouteRequestMirror")


def ensure_mirroring_class(api_client: ApiClient, name: str = MIRRORING_CLASS) -> None:
    """GatewayClass `name` (created unless it exists), its status listing FEATURES in Gateway API v1.4's form."""
    custom = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": "sluice.dev/test-harness"},
    }
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, "gatewayclasses", body)
    except ApiException as error:
        if error.status != 409:
            raise
    status = {"status": {"supportedFeatures": [{"name": feature} for feature in FEATURES]}}
    custom.patch_cluster_custom_object_status(GROUP, VERSION, "gatewayclasses", name, status)


def create_mirroring_gateway(api_client: ApiClient, namespace: str, name: str = "public") -> None:
    """Gateway `namespace/name` of the mirroring class (which is ensured first), with one HTTP listener."""
    ensure_mirroring_class(api_client)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": MIRRORING_CLASS, "listeners": [{"name": "web", "protocol": "HTTP", "port": 80}]},
    }
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(GROUP, VERSION, namespace, "gateways", body)
