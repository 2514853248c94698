"""Whether the HTTPRoute's parent Gateways implement RequestMirror: each Gateway's GatewayClass, its
`status.supportedFeatures`, read for the core (`core.rollout.mirror` decides what to do with it).

Gateway API v1.4 publishes the features as objects (`[{name: HTTPRouteRequestMirror}, ...]`); releases before
v1.2 published plain strings; both are read. Only two fixed facts leave this module per parent: the class's name (an
object name the API server validated) and one `MirrorSupport` value; nothing else read is reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from sluice.adapters.cluster import Cluster
from sluice.api.v1alpha1 import GatewayTraffic
from sluice.core.plan import MirrorSupport, ParentGateway
from sluice.core.rollout.mirror import MIRROR_FEATURE

_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
"""A DNS subdomain: what a Gateway's or GatewayClass's name must be (the Gateway API's name fields are looser)."""
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""A DNS label: what a namespace's name must be."""


def supported_features(gateway_class: Mapping[str, Any]) -> frozenset[str] | None:
    """The feature names in a GatewayClass's status.supportedFeatures; None when it publishes none (absent or
    empty: the API omits an empty list, so the two cannot be told apart)."""
    listed = (gateway_class.get("status") or {}).get("supportedFeatures")
    if not isinstance(listed, list) or not listed:
        return None
    names = (item.get("name") if isinstance(item, Mapping) else item for item in listed)
    return frozenset(name for name in names if isinstance(name, str))


def _failure(error: ApiException) -> MirrorSupport:
    return MirrorSupport.FORBIDDEN if error.status == 403 else MirrorSupport.UNREADABLE


async def parent_gateway(cluster: Cluster, namespace: str, name: str, asserted: frozenset[str]) -> ParentGateway:
    """One parent Gateway's support: LISTED or NOT_LISTED from its class's supportedFeatures, ASSERTED for a class
    the operator's admin named (its status is not read), else why it is unknown."""
    gateway = f"{namespace}/{name}"
    if not (_NAMESPACE.match(namespace) and _OBJECT_NAME.match(name)):
        return ParentGateway(gateway, None, MirrorSupport.MISSING)  # no object has that name: nothing to request
    try:
        found = await cluster.read_gateway(namespace, name)
    except ApiException as error:
        return ParentGateway(gateway, None, _failure(error))
    if found is None:
        return ParentGateway(gateway, None, MirrorSupport.MISSING)
    class_name = (found.get("spec") or {}).get("gatewayClassName")
    if not isinstance(class_name, str) or not _OBJECT_NAME.match(class_name):
        return ParentGateway(gateway, None, MirrorSupport.UNREADABLE)
    if class_name in asserted:
        return ParentGateway(gateway, class_name, MirrorSupport.ASSERTED)
    try:
        gateway_class = await cluster.read_gateway_class(class_name)
    except ApiException as error:
        return ParentGateway(gateway, class_name, _failure(error))
    if gateway_class is None:
        return ParentGateway(gateway, class_name, MirrorSupport.MISSING)
    features = supported_features(gateway_class)
    if features is None:
        return ParentGateway(gateway, class_name, MirrorSupport.NOT_PUBLISHED)
    listed = MIRROR_FEATURE in features
    return ParentGateway(gateway, class_name, MirrorSupport.LISTED if listed else MirrorSupport.NOT_LISTED)


async def parent_gateways(
    cluster: Cluster, namespace: str, traffic: GatewayTraffic, asserted: frozenset[str] = frozenset()
) -> tuple[ParentGateway, ...]:
    """Every distinct parent Gateway of the route (a parentRef without a namespace is in `namespace`, the
    ModelDeployment's), in spec order."""
    keys = dict.fromkeys((parent.namespace or namespace, parent.name) for parent in traffic.parent_refs)
    return tuple([await parent_gateway(cluster, ns, name, asserted) for ns, name in keys])
