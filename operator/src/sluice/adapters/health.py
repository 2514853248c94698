"""The operator's readiness probe: not ready while its ModelDeployment watch is known to lag behind the API server.

Kopf delivers ModelDeployment events from one watch stream; the reconcile loops also read each object directly
(every resync at the latest). `WatchLag` compares the two: when a direct read returns a resourceVersion the watch
has not delivered, the watch owes that change; when it still owes it `stall_after` later (no event, no relist
in between), the watch is stalled and the operator is not ready. Kopf itself reconnects a silent stream after
`settings.watching.inactivity_timeout` (the API server sends a bookmark about every minute), and the
reconnected stream delivers what was missed, so readiness comes back on its own.

A standby (waiting for the leader-election Lease) is ready: it has no watch, and a not-ready standby would block
a Deployment's rolling update forever.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger(__name__)

ObjectKey = tuple[str, str]


@dataclass
class WatchLag:
    """What the watch delivered versus what direct reads saw, per ModelDeployment."""

    stall_after: timedelta
    clock: Callable[[], datetime]
    leading: bool = False
    """False while a standby waits for the Lease."""
    _delivered: dict[ObjectKey, str] = field(default_factory=dict)
    _owed_since: dict[ObjectKey, datetime] = field(default_factory=dict)
    _last_delivery: datetime | None = None

    def delivered(self, key: ObjectKey, resource_version: str | None) -> None:
        """The watch delivered an event (or a relisting) of `key`: it owes nothing for it any more."""
        self._last_delivery = self.clock()
        if resource_version:
            self._delivered[key] = resource_version
        self._owed_since.pop(key, None)

    def read(self, key: ObjectKey, resource_version: str | None) -> None:
        """A direct read of `key` returned `resource_version`; the watch owes it unless it delivered it already."""
        if not resource_version or self._delivered.get(key) == resource_version:
            self._owed_since.pop(key, None)
            return
        self._owed_since.setdefault(key, self.clock())

    def forget(self, key: ObjectKey) -> None:
        self._delivered.pop(key, None)
        self._owed_since.pop(key, None)

    def stalled(self) -> dict[ObjectKey, timedelta]:
        """The objects whose change the watch has owed for longer than `stall_after`, and for how long."""
        now = self.clock()
        return {key: now - since for key, since in self._owed_since.items() if now - since > self.stall_after}

    def report(self) -> tuple[bool, dict[str, object]]:
        """(ready, details) for the probe."""
        if not self.leading:
            return True, {"ready": True, "role": "standby"}
        stalled = self.stalled()
        details: dict[str, object] = {
            "ready": not stalled,
            "role": "leader",
            "lastWatchDelivery": self._last_delivery.isoformat() if self._last_delivery else None,
            "stalledWatch": {f"{ns}/{name}": round(age.total_seconds(), 1) for (ns, name), age in stalled.items()},
        }
        return not stalled, details


async def serve_readiness(endpoint: str, lag: WatchLag) -> web.AppRunner:
    """Serve GET <path of `endpoint`> (e.g. http://0.0.0.0:8082/readyz): 200 when ready, 503 when not, with JSON."""
    parts = urlsplit(endpoint)
    if not parts.hostname or not parts.port:
        raise ValueError(f"readiness endpoint {endpoint!r} needs a host and a port")

    async def readyz(_: web.Request) -> web.Response:
        ready, details = lag.report()
        if not ready:
            log.warning("not ready: the ModelDeployment watch is stalled: %s", details["stalledWatch"])
        return web.Response(status=200 if ready else 503, text=json.dumps(details), content_type="application/json")

    app = web.Application()
    app.router.add_get(parts.path or "/", readyz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, parts.hostname, parts.port).start()
    return runner
