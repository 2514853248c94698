"""One reconcile loop per ModelDeployment: it runs `Reconciler.reconcile`, then sleeps until woken or its next
timer; a conflict is retried after a second, any other failure with exponential backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta

from kubernetes.client.exceptions import ApiException

from sluice.adapters import logs, telemetry
from sluice.adapters.telemetry import RECONCILE_SECONDS, RECONCILES
from sluice.reconciler import ObjectGoneError, Reconciler

log = logging.getLogger(__name__)

ObjectKey = tuple[str, str]
"""(namespace, name) of a ModelDeployment."""

_CONFLICT_RETRY = timedelta(seconds=1)
_MAX_FAILURE_BACKOFF_SECONDS = 300.0
RESYNC_SPREAD = 0.1


@dataclass
class _Loop:
    task: asyncio.Task[None]
    wake: asyncio.Event


@dataclass
class Loops:
    """One reconcile loop per ModelDeployment: it runs, then sleeps until woken or its next timer."""

    reconciler: Reconciler
    resync: timedelta
    """The longest sleep: a loop with no timer of its own looks again after 90-100% of this (spread, so that objects
    created together do not all resync at once)."""
    _loops: dict[ObjectKey, _Loop] = field(default_factory=dict)

    def wake(self, key: ObjectKey, *, start: bool = True) -> None:
        """Reconcile `key` soon, starting its loop if it has none (and `start`)."""
        loop = self._loops.get(key)
        if loop is None and start:
            wake = asyncio.Event()
            loop = self._loops[key] = _Loop(asyncio.create_task(self._run(key, wake), name=f"reconcile {key}"), wake)
        if loop is not None:
            loop.wake.set()

    def running(self, key: ObjectKey) -> bool:
        return key in self._loops

    def stop(self, key: ObjectKey) -> None:
        loop = self._loops.pop(key, None)
        if loop is not None:
            loop.task.cancel()
        telemetry.forget(*key)

    async def stop_all(self) -> None:
        loops = list(self._loops.values())
        self._loops.clear()
        for loop in loops:
            loop.task.cancel()
        await asyncio.gather(*(loop.task for loop in loops), return_exceptions=True)

    async def _run(self, key: ObjectKey, wake: asyncio.Event) -> None:
        logs.reconciling(*key)
        failures = 0
        while True:
            wake.clear()
            started = time.monotonic()
            outcome = "ok"
            try:
                requeue_after = await self.reconciler.reconcile(*key)
                failures = 0
            except ObjectGoneError:
                current = self._loops.get(key)
                if current is not None and current.wake is wake:
                    del self._loops[key]
                    telemetry.forget(*key)
                return
            except Exception as error:
                if isinstance(error, ApiException) and error.status == 409:
                    log.info("%s/%s changed while it was reconciled; looking again", *key)
                    outcome, requeue_after = "conflict", _CONFLICT_RETRY
                elif isinstance(error, ApiException) and "NamespaceTerminating" in str(error.body):
                    log.info("%s/%s: its namespace is being deleted", *key)
                    outcome, requeue_after = "conflict", self.resync
                else:
                    outcome = "error"
                    failures += 1
                    backoff = min(2.0**failures, _MAX_FAILURE_BACKOFF_SECONDS)
                    log.exception("%s/%s: reconcile failed (%d in a row); retrying in %.0fs", *key, failures, backoff)
                    requeue_after = timedelta(seconds=backoff)
            RECONCILES.labels(outcome).inc()
            RECONCILE_SECONDS.observe(time.monotonic() - started)
            resync = self.resync * (1 - RESYNC_SPREAD * random.random())
            wait = resync if requeue_after is None else min(requeue_after, resync)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation (stop, stop_all) that
            # arrives while the wake-up completes, and the stopped loop would run on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait.total_seconds()):
                    await wake.wait()
