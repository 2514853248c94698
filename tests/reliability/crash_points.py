"""Where the crash tests SIGKILL the operator, recognized on its requests, and what must hold wherever it died.

The operator reaches the API server through `harness.trapproxy.TrapProxy`; `Killer.trap` sees every request
when it arrives and again once the API server has answered it, and kills the operator at these points:

- `start-up`: after start-up (Lease acquired), before its first list; the first list request after a restart,
  held before it is forwarded.
- `lease renewal`: right after renewing its Lease; a Lease PUT whose acquireTime differs from its renewTime.
- `child, then status`: after a child's server-side apply, before the reconcile's status write; an HTTPRoute
  apply giving the canary a share (a step: the route is the last child it writes).
- `between children`: in a reconcile writing several children, after the first; at a rollout's end, the
  HTTPRoute's apply taking the canary's share away while the canary Deployment still runs replicas (its
  scale-down to 0 comes next).
- `status, then Events`: after a status write recording a transition, before that transition's Events; a status
  write changing the phase or lastCheckTime.
- `random`: at a random moment, whatever the operator is doing (see `WORK_BEFORE_ARMING`).

An answered write is killed on before its answer is relayed (see harness/trapproxy.py): it took effect, and nothing
the operator does only after it has happened. After every kill the operator is restarted at once. Its Lease is
released on the dead process's behalf (what the operator does itself on SIGTERM) except after a `lease renewal`
kill: there the restart, a new identity, waits out the lease duration as a new pod would.

`Killer` arms the points with the fewest kills so far (all at once; the first to match fires), `start-up` at every
restart while it is among them, the others once the restarted operator has worked a few seconds, so every point
gets its share whatever the machine's speed and every incarnation gets some work done. `unsafe_states` checks,
from the proxy's journal of accepted writes, that no write ever leaves a state a crash must not freeze: a status
claiming what the children do not have yet, or a route sending requests to a canary without replicas.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from harness.trapproxy import Exchange
from integration.operator_support import OperatorProcess
from sluice.core.children import MODELDEPLOYMENT_LABEL, VERSION_LABEL, ChildNames

WORK_BEFORE_ARMING = (2.0, 6.0)
"""Seconds each incarnation works, from its first list, before the kill points are armed: uniformly at random
(seeded). Counted from the first list, not from the restart, so that a slow start (Python's imports take seconds on
a loaded machine) is not all an incarnation gets. A `random` kill lands at that moment."""


class Point(StrEnum):
    START_UP = "start-up"
    LEASE_RENEWAL = "lease renewal"
    CHILD_THEN_STATUS = "child, then status"
    BETWEEN_CHILDREN = "between children"
    STATUS_THEN_EVENTS = "status, then Events"
    RANDOM = "random"


@dataclass(frozen=True)
class Target:
    """What a request path names: resource (plural), namespace, object name and subresource ("" when absent)."""

    resource: str
    namespace: str
    name: str
    subresource: str

    @classmethod
    def of(cls, path: str) -> Target:
        parts = path.strip("/").split("/")
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        rest += [""] * (3 - len(rest))
        return cls(rest[0], namespace, rest[1], rest[2])


def is_list(exchange: Exchange) -> bool:
    target = Target.of(exchange.path)
    watch = exchange.query.get("watch", "") in {"true", "1"}
    return exchange.method == "GET" and bool(target.resource) and not target.name and not watch


def is_lease_renewal(exchange: Exchange) -> bool:
    """A Lease update by its holder: acquisitions (create, take-over) write acquireTime == renewTime."""
    spec = (exchange.body or {}).get("spec") or {}
    return (
        exchange.method == "PUT"
        and Target.of(exchange.path).resource == "leases"
        and spec.get("acquireTime") != spec.get("renewTime")
    )


def route_weight(route: dict[str, Any], owner: str) -> int:
    """The weight an HTTPRoute gives `owner`'s canary Service."""
    refs = [ref for rule in (route.get("spec") or {}).get("rules") or [] for ref in rule.get("backendRefs") or []]
    canary = ChildNames.of(owner).canary_service
    return next((int(ref.get("weight", 0)) for ref in refs if ref.get("name") == canary), 0)


@dataclass
class Written:
    """One ModelDeployment's children and status as its accepted writes left them."""

    route_weight: int | None = None
    """The canary's weight in the HTTPRoute."""
    stable_version: str | None = None
    canary_version: str | None = None
    canary_replicas: int | None = None
    status: dict[str, Any] = field(default_factory=dict)


class Writes:
    """Per ModelDeployment, what the accepted writes so far left (fed in order, from the journal or live)."""

    def __init__(self) -> None:
        self.objects: dict[str, Written] = {}

    def owner(self, exchange: Exchange) -> str | None:
        """The ModelDeployment a write is about (its own status, or a child labelled with its name)."""
        target = Target.of(exchange.path)
        if target.resource == "modeldeployments":
            return target.name
        labels = ((exchange.body or {}).get("metadata") or {}).get("labels") or {}
        owner = labels.get(MODELDEPLOYMENT_LABEL)
        return owner if isinstance(owner, str) else None

    def of(self, owner: str) -> Written:
        """What the writes counted so far left of `owner`."""
        return self.objects.get(owner, Written())

    def before(self, exchange: Exchange) -> Written:
        """What the earlier writes left of the object `exchange` is about (`exchange` not yet counted)."""
        return self.of(self.owner(exchange) or "")

    def add(self, exchange: Exchange) -> None:
        owner = self.owner(exchange)
        if owner is None or not exchange.accepted or exchange.method != "PATCH":
            return
        written = self.objects.setdefault(owner, Written())
        target, body = Target.of(exchange.path), exchange.body or {}
        names = ChildNames.of(owner)
        spec = body.get("spec") or {}
        if target.resource == "modeldeployments" and target.subresource == "status":
            written.status = dict(body.get("status") or {})
        elif target.resource == "httproutes":
            written.route_weight = route_weight(body, owner)
        elif target.resource == "deployments":
            version = (((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL)
            if target.name == names.stable_deployment:
                written.stable_version = version
            elif target.name == names.canary_deployment:
                written.canary_version, written.canary_replicas = version, spec.get("replicas")


def is_transition(status: dict[str, Any], earlier: dict[str, Any]) -> bool:
    """A status that records a check or a phase change: its reconcile posts Events after writing it."""
    return any(status.get(key) != earlier.get(key) for key in ("phase", "lastCheckTime"))


def point_of(exchange: Exchange, writes: Writes) -> Point | None:
    """The kill point `exchange` is, given the writes before it (`writes` does not count it yet)."""
    if exchange.status is None:
        return Point.START_UP if is_list(exchange) else None
    if not (exchange.is_write and exchange.accepted):
        return None
    if is_lease_renewal(exchange):
        return Point.LEASE_RENEWAL
    owner = writes.owner(exchange)
    if owner is None or exchange.method != "PATCH":
        return None
    target, earlier, body = Target.of(exchange.path), writes.before(exchange), exchange.body or {}
    if target.resource == "httproutes":
        weight = route_weight(body, owner)
        if weight == 0 and (earlier.canary_replicas or 0) > 0:
            return Point.BETWEEN_CHILDREN
        return Point.CHILD_THEN_STATUS if weight > 0 else None
    if target.subresource == "status" and is_transition(body.get("status") or {}, earlier.status):
        return Point.STATUS_THEN_EVENTS
    return None


def _status_claims(owner: str, status: dict[str, Any], children: Written) -> list[str]:
    """What a status write claims that the children (as written before it) do not have."""
    claims = [
        (
            "canary weight",
            int(status.get("canaryWeight") or 0),
            children.route_weight,
            children.route_weight is not None,
        ),
        (
            "stable version",
            status.get("stableVersion"),
            children.stable_version,
            status.get("phase") != "Promoting" and bool(status.get("stableVersion")),
        ),
        ("canary version", status.get("canaryVersion"), children.canary_version, bool(status.get("canaryVersion"))),
    ]
    return [
        f"{owner}: status ({status.get('phase')}) says {what} {claimed} while its children have {actual}"
        for what, claimed, actual, applies in claims
        if applies and claimed != actual
    ]


def unsafe_states(journal: Iterable[Exchange]) -> list[str]:
    """Violations, from the accepted writes in order: states a crash must never freeze. A status write claiming a
    canary weight, stable version or canary version its children do not have yet; an HTTPRoute giving the canary
    a share while the canary Deployment runs no replicas."""
    writes, problems = Writes(), []
    for exchange in journal:
        owner = writes.owner(exchange)
        if owner is None:
            continue
        if Target.of(exchange.path).subresource == "status":
            problems += _status_claims(owner, (exchange.body or {}).get("status") or {}, writes.before(exchange))
        writes.add(exchange)
        after = writes.of(owner)
        if (after.route_weight or 0) > 0 and after.canary_replicas == 0:
            problems.append(f"{owner}: its HTTPRoute gives the canary {after.route_weight}% and it has no replicas")
    return problems


def grant_leases(api_client: ApiClient, namespace: str, service_account_namespace: str) -> None:
    """The chart's leader-election Role (get, create, update Leases) in `namespace`, bound to the operator's
    ServiceAccount (`sluice-operator` in `service_account_namespace`, as `create_operator_identity` makes it)."""
    rbac, name = client.RbacAuthorizationV1Api(api_client), "sluice-leader-election"
    rule = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    rbac.create_namespaced_role(namespace, client.V1Role.model_validate({"metadata": {"name": name}, "rules": [rule]}))
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding.model_validate(
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [
                    {"kind": "ServiceAccount", "name": "sluice-operator", "namespace": service_account_namespace}
                ],
            }
        ),
    )


@dataclass(frozen=True)
class LeaseRef:
    api_client: ApiClient
    namespace: str
    name: str

    def release(self) -> None:
        """Clear the holder, as the operator's own release on SIGTERM does (nothing when there is no Lease yet)."""
        try:
            client.CoordinationV1Api(self.api_client).patch_namespaced_lease(
                self.name,
                self.namespace,
                {"spec": {"holderIdentity": None}},
                _content_type="application/merge-patch+json",
            )
        except ApiException as error:
            if error.status != 404:
                raise


class Killer:
    """SIGKILLs the operator at the kill points (see the module docstring) and restarts it, in a thread; `trap` is
    the `TrapProxy`'s."""

    def __init__(self, operator: OperatorProcess, lease: LeaseRef, seed: int) -> None:
        self._operator = operator
        self._lease = lease
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._writes = Writes()
        self._armed: frozenset[Point] = frozenset()
        self._pending: frozenset[Point] = frozenset()
        """Armed at `_arm_at` (None until the running incarnation's first list)."""
        self._arm_at: float | None = None
        self._fired: Point | None = None
        self._running = False
        self.kills: Counter[Point] = Counter()
        self.exits = 0
        """Times the operator exited by itself (e.g. a leader that could not renew in time) and was restarted."""
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)

    def start(self) -> Killer:
        self._running = True
        with self._lock:
            self._arm(restarted=False)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._armed, self._pending = frozenset(), frozenset()
        self._wake.set()
        self._thread.join(timeout=60)

    def covered(self, minimum: int) -> bool:
        with self._lock:
            return all(self.kills[point] >= minimum for point in Point)

    def trap(self, exchange: Exchange) -> bool:
        with self._lock:
            point = point_of(exchange, self._writes)
            if exchange.status is not None and exchange.is_write:
                self._writes.add(exchange)
            if exchange.status is None and is_list(exchange) and self._arm_at is None:
                self._arm_at = time.monotonic() + self._random.uniform(*WORK_BEFORE_ARMING)
            return point is not None and point in self._armed and self._kill(point)

    def _kill(self, point: Point) -> bool:
        """SIGKILL the operator for `point` (the lock held); False when it is not running."""
        record = self._operator.record
        if record is None or not record.is_alive():
            return False
        os.kill(record.pid, signal.SIGKILL)
        self._armed, self._pending, self._fired = frozenset(), frozenset(), point
        self.kills[point] += 1
        self._wake.set()
        return True

    def _arm(self, *, restarted: bool) -> None:
        """Choose the points with the fewest kills: `start-up` alone, armed at once, right after a restart when it is
        among them; else the others, armed once the operator has worked a while (the lock held)."""
        self._armed, self._pending, self._arm_at = frozenset(), frozenset(), None
        if restarted and self.kills[Point.START_UP] == min(self.kills[point] for point in Point):
            self._armed = frozenset({Point.START_UP})
            return
        running = [point for point in Point if point is not Point.START_UP]
        fewest = min(self.kills[point] for point in running)
        self._pending = frozenset(point for point in running if self.kills[point] == fewest)
        if not restarted:  # already working
            self._arm_at = time.monotonic() + self._random.uniform(*WORK_BEFORE_ARMING)

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=0.2)
            with self._lock:
                self._wake.clear()
                if not self._running:
                    return
                if self._pending and self._arm_at is not None and time.monotonic() >= self._arm_at:
                    self._armed, self._pending = self._pending, frozenset()
                    if Point.RANDOM in self._armed:
                        self._kill(Point.RANDOM)
                fired, self._fired = self._fired, None
                exited = fired is None and not self._operator.is_running()
                if exited:
                    self._armed, self._pending = frozenset(), frozenset()
                    self.exits += 1
            if fired is None and not exited:
                continue
            self._operator.stop()
            if fired is not Point.LEASE_RENEWAL:
                self._lease.release()
            self._operator.start()
            with self._lock:
                if self._running:
                    self._arm(restarted=True)

    def table(self) -> str:
        """Kills per point, as a Markdown table."""
        rows = [f"| {point} | {self.kills[point]} |" for point in Point]
        return "\n".join(["| kill point | SIGKILLs |", "| --- | --- |", *rows])
