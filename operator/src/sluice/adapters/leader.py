"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection package does it.

Only the replica holding the Lease runs the operator; the others wait. The decision (is the Lease free, expired or
ours?) is the pure `decide`; `LeaseElector` around it only reads and writes the Lease, with optimistic concurrency
(every update carries the resourceVersion it read, so of two replicas racing for the same Lease one gets a 409).

Like client-go, a Lease held by someone else expires `leaseDurationSeconds` after *this* process last saw it
change (not after its renewTime), so clocks skewed between nodes do not matter. The holder gives up (and the
operator exits) when it has not renewed for `renew_deadline`, which is shorter than the lease duration: it stops
acting before anyone else may take over.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import platform
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from sluice.adapters.kube import KubeApi

log = logging.getLogger(__name__)

LEASE_API = "/apis/coordination.k8s.io/v1"


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults: a 15 s lease, renewed every 5 s, given up after 10 s without a renewal."""

    lease_duration: timedelta = timedelta(seconds=15)
    renew_deadline: timedelta = timedelta(seconds=10)
    renew_period: timedelta = timedelta(seconds=5)
    retry_period: timedelta = timedelta(seconds=2)


@dataclass(frozen=True)
class LeaseRecord:
    """The leader-election fields of a Lease's spec."""

    holder: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Observation:
    """A Lease record and when this process first saw it (its local clock)."""

    record: LeaseRecord
    seen_at: datetime


class Action(enum.Enum):
    CREATE = "create"
    """No Lease yet: create it, held by us."""
    ACQUIRE = "acquire"
    """Free (released) or expired: take it over."""
    RENEW = "renew"
    """Ours: renew it."""
    WAIT = "wait"
    """Someone else holds it and it has not expired."""


@dataclass(frozen=True)
class Decision:
    action: Action
    record: LeaseRecord | None
    """What to write (None with WAIT)."""


def observe(previous: Observation | None, record: LeaseRecord, now: datetime) -> Observation:
    """Remember `record`, keeping when it was first seen if it has not changed since."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def decide(
    observed: Observation | None, *, identity: str, now: datetime, lease_duration: timedelta = timedelta(seconds=15)
) -> Decision:
    """What a candidate called `identity` should do about the Lease it has just read (None: it does not exist)."""
    ours = LeaseRecord(
        holder=identity,
        lease_duration_seconds=int(lease_duration.total_seconds()),
        acquire_time=now,
        renew_time=now,
        transitions=0,
    )
    if observed is None:
        return Decision(Action.CREATE, ours)
    record = observed.record
    if record.holder == identity:
        return Decision(
            Action.RENEW, replace(ours, acquire_time=record.acquire_time or now, transitions=record.transitions)
        )
    taken_over = replace(ours, transitions=record.transitions + 1)
    if not record.holder:
        return Decision(Action.ACQUIRE, taken_over)
    duration = timedelta(seconds=record.lease_duration_seconds) if record.lease_duration_seconds else lease_duration
    if observed.seen_at + duration <= now:
        return Decision(Action.ACQUIRE, taken_over)
    return Decision(Action.WAIT, None)


def default_identity() -> str:
    """The pod name (POD_NAME, else the hostname, which is the pod name in a pod) and a random suffix."""
    return f"{os.environ.get('POD_NAME') or platform.node() or 'sluice'}_{secrets.token_hex(4)}"


# --- I/O -----------------------------------------------------------------------------------------------------------


def _format_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def record_of(lease: Mapping[str, Any]) -> LeaseRecord:
    spec: Mapping[str, Any] = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        lease_duration_seconds=spec.get("leaseDurationSeconds"),
        acquire_time=_parse_time(spec.get("acquireTime")),
        renew_time=_parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def spec_of(record: LeaseRecord) -> dict[str, Any]:
    return {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "acquireTime": _format_time(record.acquire_time),
        "renewTime": _format_time(record.renew_time),
        "leaseTransitions": record.transitions,
    }


class LeadershipLostError(RuntimeError):
    """The Lease could not be renewed within the renew deadline, or someone else holds it now."""


class LeaseElector:
    """Acquires, renews and releases one Lease for `identity`."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        clock: Callable[[], datetime],
        timing: LeaseTiming = LeaseTiming(),
    ) -> None:
        self.namespace, self.name, self.identity = namespace, name, identity
        self._api = api
        self._clock = clock
        self._timing = timing
        self._observed: Observation | None = None
        self._resource_version: str | None = None
        self._last_renewed: datetime | None = None
        self._logged_holder: str | None = None

    @property
    def _path(self) -> str:
        return f"{LEASE_API}/namespaces/{self.namespace}/leases/{self.name}"

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the Lease, decide, write. True when we hold it afterwards."""
        lease = await self._api.get(self._path)
        now = self._clock()
        if lease is None:
            self._observed, self._resource_version = None, None
        else:
            self._observed = observe(self._observed, record_of(lease), now)
            self._resource_version = lease.get("metadata", {}).get("resourceVersion")
        decision = decide(self._observed, identity=self.identity, now=now, lease_duration=self._timing.lease_duration)
        if decision.action is Action.WAIT or decision.record is None:
            holder = self._observed.record.holder if self._observed else None
            if holder != self._logged_holder:
                log.info("leader election: lease %s/%s is held by %s; waiting", self.namespace, self.name, holder)
                self._logged_holder = holder
            return False
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec_of(decision.record),
        }
        try:
            if decision.action is Action.CREATE:
                written = await self._api.request("POST", f"{LEASE_API}/namespaces/{self.namespace}/leases", body=body)
            else:
                body["metadata"]["resourceVersion"] = self._resource_version
                written = await self._api.request("PUT", self._path, body=body)
        except ApiException as error:
            if error.status == 409:  # another candidate wrote it first: read again next round
                log.info("leader election: lost a race for lease %s/%s", self.namespace, self.name)
                return False
            raise
        self._observed = Observation(record_of(written), now)
        self._resource_version = written.get("metadata", {}).get("resourceVersion")
        self._last_renewed = now
        if decision.action is not Action.RENEW:
            log.info("leader election: %s acquired lease %s/%s", self.identity, self.namespace, self.name)
        return True

    async def acquire(self) -> None:
        """Block until this process holds the Lease."""
        log.info("leader election: %s is a candidate for lease %s/%s", self.identity, self.namespace, self.name)
        while True:
            try:
                if await self.try_acquire_or_renew():
                    return
            except Exception as error:  # the API server is unavailable: keep trying
                log.warning(
                    "leader election: could not read or write lease %s/%s: %s", self.namespace, self.name, error
                )
            await asyncio.sleep(self._timing.retry_period.total_seconds())

    async def keep_renewing(self) -> None:
        """Renew every renew period; raise LeadershipLostError when the renew deadline passes without a renewal, or
        when someone else holds the Lease. Runs until cancelled otherwise."""
        while True:
            await asyncio.sleep(self._timing.renew_period.total_seconds())
            while True:
                try:
                    if await self.try_acquire_or_renew():
                        break
                    holder = self._observed.record.holder if self._observed else None
                    if holder and holder != self.identity:
                        raise LeadershipLostError(f"lease {self.namespace}/{self.name} is now held by {holder}")
                except LeadershipLostError:
                    raise
                except Exception as error:
                    log.warning("leader election: could not renew lease %s/%s: %s", self.namespace, self.name, error)
                assert self._last_renewed is not None
                if self._clock() - self._last_renewed >= self._timing.renew_deadline:
                    raise LeadershipLostError(
                        f"lease {self.namespace}/{self.name} not renewed for {self._timing.renew_deadline}"
                    )
                await asyncio.sleep(self._timing.retry_period.total_seconds())

    async def release(self) -> None:
        """Give the Lease up (if we still hold it) so a standby takes over at once; best effort."""
        if self._observed is None or self._observed.record.holder != self.identity:
            return
        record = replace(self._observed.record, holder=None, lease_duration_seconds=1, renew_time=self._clock())
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": self._resource_version},
            "spec": spec_of(record),
        }
        try:
            await self._api.request("PUT", self._path, body=body)
            log.info("leader election: released lease %s/%s", self.namespace, self.name)
        except Exception as error:
            log.warning("leader election: could not release lease %s/%s: %s", self.namespace, self.name, error)
