"""Reading what the world says beside the Deployments: the ModelDeployment's pods that cannot start, and whether the
parents of its HTTPRoute accepted it. Only counts, fixed reasons (`core.world.BLOCKING_REASONS`) and a CamelCase
reason word reach the core: no free text of a pod or a route is copied into status or Events."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from sluice.adapters.cluster import Cluster
from sluice.core.children import GATEWAY_API_VERSION, MODELDEPLOYMENT_LABEL, ChildNames, Owner
from sluice.core.plan import BlockedPods, RouteReading
from sluice.core.world import BLOCKING_REASONS, blocked_pods

log = logging.getLogger(__name__)

_REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")


def pod_reason(pod: Mapping[str, Any]) -> str | None:
    """Why a pod cannot start, when it is one of BLOCKING_REASONS: PodScheduled=False Unschedulable, or a
    container (init containers first) waiting for one of them; else None."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return "Unschedulable" if condition.get("reason") == "Unschedulable" else None
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        reason = ((container.get("state") or {}).get("waiting") or {}).get("reason")
        if reason in BLOCKING_REASONS:
            return str(reason)
    return None


async def read_blocked_pods(cluster: Cluster, owner: Owner) -> BlockedPods | None:
    """The ModelDeployment's pods that cannot start (both tracks); None when none, or when pods may not be listed."""
    try:
        pods = await cluster.list_pods(owner.namespace, f"{MODELDEPLOYMENT_LABEL}={owner.name}")
    except ApiException as error:
        if error.status != 403:
            raise
        log.warning("may not list pods in %s: the PodsCanStart condition stays True", owner.namespace)
        return None
    return blocked_pods([pod_reason(pod) for pod in pods])


def _parent_key(ref: Mapping[str, Any], namespace: str) -> tuple[str, str, str]:
    return (str(ref.get("namespace") or namespace), str(ref.get("name", "")), str(ref.get("sectionName") or ""))


def route_reading(route: Mapping[str, Any]) -> RouteReading:
    """How many parents in the route's spec accepted it (Accepted=True from any controller) and how many refused."""
    namespace = str(route["metadata"].get("namespace", ""))
    verdicts: dict[tuple[str, str, str], set[str]] = {}
    reasons: dict[tuple[str, str, str], str] = {}
    for parent in (route.get("status") or {}).get("parents") or []:
        key = _parent_key(parent.get("parentRef") or {}, namespace)
        for condition in parent.get("conditions") or []:
            if condition.get("type") == "Accepted":
                verdicts.setdefault(key, set()).add(str(condition.get("status")))
                said = str(condition.get("reason", ""))
                if condition.get("status") == "False" and _REASON.match(said):
                    reasons.setdefault(key, said)
    wanted = [_parent_key(ref, namespace) for ref in (route.get("spec") or {}).get("parentRefs") or []]
    accepted = [key for key in wanted if "True" in verdicts.get(key, set())]
    refused = [key for key in wanted if key not in accepted and "False" in verdicts.get(key, set())]
    reason = next((reasons[key] for key in refused if key in reasons), None)
    return RouteReading(parents=len(wanted), accepted=len(accepted), refused=len(refused), reason=reason)


async def read_route(cluster: Cluster, owner: Owner) -> RouteReading | None:
    """The HTTPRoute's acceptance by its parents; None before the route exists."""
    route = await cluster.read_child(GATEWAY_API_VERSION, "HTTPRoute", owner, ChildNames.of(owner.name).route)
    return route_reading(route) if route is not None else None
