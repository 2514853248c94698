"""Delivering rollout notices to webhooks, off the reconcile path.

`Notifier.send` only puts notices on a bounded in-memory queue per receiver (a full queue drops the notice and
counts it) and returns; one asyncio task per receiver posts them in order, each with bounded retries and
exponential backoff (5xx, 408, 429 and network errors are retried; another answer is final), a timeout per request,
a deadline per notice, and at most `ANSWER_BYTES` of the receiver's answer read and thrown away. No redirect is
followed. Outcomes are counted in the operator's metrics, and per ModelDeployment for its status
(`report`/`acknowledge`); a finished delivery wakes the ModelDeployment's loop so its status shows it soon.
Delivery is at most once per operator process: a notice queued when the process stops is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

from sluice.adapters.bounded_http import IDENTITY, RefusedAnswerError, read_capped
from sluice.adapters.receivers import Receiver, SecretReceivers
from sluice.adapters.telemetry import NOTIFICATION_ATTEMPTS, NOTIFICATION_QUEUE, NOTIFICATIONS
from sluice.core.notification_bodies import body
from sluice.core.notifications import DeliveryReport, RolloutNotice

log = logging.getLogger(__name__)

ObjectKey = tuple[str, str]
"""(namespace, name) of a ModelDeployment."""
ANSWER_BYTES = 64 * 1024
"""At most this much of a receiver's answer is read (and discarded)."""
SEEN_LIMIT = 4096
"""Event ids remembered per process to send each event to each receiver once."""
_RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard one notice is tried (operator settings notification_*)."""

    attempts: int = 5
    backoff: float = 1.0
    """Wait before the first retry; doubled after each, up to `max_backoff`."""
    max_backoff: float = 30.0
    timeout: float = 10.0
    """One request, answer included."""
    deadline: float = 300.0
    """All attempts of one notice: no retry starts after it."""
    queue_size: int = 100
    """Notices waiting per receiver; more are dropped."""


@dataclass
class _Counts:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    latest_failed: bool | None = None

    def report(self) -> DeliveryReport:
        return DeliveryReport(self.delivered, self.failed, self.dropped, self.latest_failed)


@dataclass(frozen=True)
class _Item:
    key: ObjectKey
    receiver: Receiver
    notice: RolloutNotice


@dataclass
class Notifier:
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    on_outcome: Callable[[ObjectKey], None] | None = None
    """Told the ModelDeployment whose notice's delivery ended (main: wake its loop)."""
    transport: httpx.AsyncBaseTransport | None = None
    """For tests: an in-process transport instead of the network."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    _queues: dict[str, asyncio.Queue[_Item]] = field(default_factory=dict)
    _workers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _counts: dict[ObjectKey, _Counts] = field(default_factory=dict)
    _seen: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)
    _client: httpx.AsyncClient | None = None

    def send(self, key: ObjectKey, receivers: Iterable[Receiver], notices: Iterable[RolloutNotice]) -> None:
        """Queue each notice for each receiver (once per event id); never waits."""
        for notice in notices:
            for receiver in receivers:
                if (receiver.name, notice.id) in self._seen:
                    continue
                self._remember((receiver.name, notice.id))
                try:
                    self._queue(receiver.name).put_nowait(_Item(key, receiver, notice))
                except asyncio.QueueFull:
                    log.warning("%s/%s: notification queue of %s full; %s dropped", *key, receiver.name, notice.event)
                    NOTIFICATIONS.labels(receiver.name, "dropped").inc()
                    self._ended(key, "dropped")
                NOTIFICATION_QUEUE.labels(receiver.name).set(self._queue(receiver.name).qsize())

    def report(self, key: ObjectKey) -> DeliveryReport:
        """Deliveries of `key`'s notices that ended and were not acknowledged yet."""
        counts = self._counts.get(key)
        return counts.report() if counts is not None else DeliveryReport()

    def acknowledge(self, key: ObjectKey, report: DeliveryReport) -> None:
        """`report` is in the status now: count only what ended since."""
        counts = self._counts.get(key)
        if counts is None:
            return
        counts.delivered -= report.delivered
        counts.failed -= report.failed
        counts.dropped -= report.dropped
        if counts.report() == DeliveryReport(latest_failed=counts.latest_failed):
            del self._counts[key]

    def forget(self, key: ObjectKey) -> None:
        """`key` is gone: drop its counts (its queued notices are still sent)."""
        self._counts.pop(key, None)

    async def close(self) -> None:
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        if self._client is not None:
            await self._client.aclose()

    def _remember(self, seen: tuple[str, str]) -> None:
        self._seen[seen] = None
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)

    def _queue(self, receiver: str) -> asyncio.Queue[_Item]:
        queue = self._queues.get(receiver)
        if queue is None:
            queue = self._queues[receiver] = asyncio.Queue(self.policy.queue_size)
            self._workers[receiver] = asyncio.create_task(self._work(receiver, queue), name=f"notify {receiver}")
        return queue

    def _ended(self, key: ObjectKey, outcome: str) -> None:
        counts = self._counts.setdefault(key, _Counts())
        counts.delivered += outcome == "delivered"
        counts.failed += outcome == "failed"
        counts.dropped += outcome == "dropped"
        counts.latest_failed = outcome != "delivered"
        if self.on_outcome is not None:
            self.on_outcome(key)

    async def _work(self, receiver: str, queue: asyncio.Queue[_Item]) -> None:
        while True:
            item = await queue.get()
            NOTIFICATION_QUEUE.labels(receiver).set(queue.qsize())
            try:
                delivered = await self._deliver(item)
            except Exception:  # a bug here must not end the receiver's worker
                log.exception("%s/%s: notifying %s failed", *item.key, receiver)
                delivered = False
            outcome = "delivered" if delivered else "failed"
            NOTIFICATIONS.labels(receiver, outcome).inc()
            if not delivered:
                log.warning("%s/%s: %s notification to %s given up", *item.key, item.notice.event, receiver)
            self._ended(item.key, outcome)

    async def _deliver(self, item: _Item) -> bool:
        """Post the notice until the receiver takes it, refuses it, or the attempts or the deadline run out."""
        payload, content_type = body(item.notice, item.receiver.body_format)
        content = json.dumps(payload).encode()
        headers = {**IDENTITY, "content-type": content_type, "user-agent": "sluice-operator"}
        started, wait = self.clock(), self.policy.backoff
        for attempt in range(1, self.policy.attempts + 1):
            result = await self._attempt(item.receiver.url, content, headers)
            NOTIFICATION_ATTEMPTS.labels(item.receiver.name, result).inc()
            if result == "2xx":
                return True
            retried = result in ("5xx", "error", "408", "429")
            late = self.clock() - started + wait > self.policy.deadline
            if not retried or attempt == self.policy.attempts or late:
                return False
            await self.sleep(wait)
            wait = min(wait * 2, self.policy.max_backoff)
        return False

    async def _attempt(self, url: str, content: bytes, headers: dict[str, str]) -> str:
        """One POST: `2xx`, `3xx` (not followed), `4xx`, `5xx`, `408`, `429`, or `error` (no answer in time). Once
        the status line is in, it is the result, whatever happens to the rest of the answer."""
        client = self._http()
        code: int | None = None
        try:
            async with (
                asyncio.timeout(self.policy.timeout),
                client.stream("POST", url, content=content, headers=headers) as response,
            ):
                code = response.status_code
                with contextlib.suppress(RefusedAnswerError, httpx.HTTPError, httpx.StreamError):
                    await read_capped(response, ANSWER_BYTES, "the receiver's answer")
        except (httpx.HTTPError, TimeoutError, OSError):
            if code is None:
                return "error"
        return str(code) if code in _RETRIED_STATUSES else f"{code // 100}xx"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.policy.timeout)
            self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=self.transport)
        return self._client


@dataclass
class Notifications:
    """What the reconciler needs to notify: the notifier, the receivers' Secret, the operator's default receivers."""

    notifier: Notifier
    receivers: SecretReceivers
    default_receivers: tuple[str, ...] = ()
