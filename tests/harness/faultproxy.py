"""A fault-injecting reverse proxy on 127.0.0.1 in front of the API server, for the reliability tests.

Like the counting proxy (tests/integration/operator_support.py) it forwards plain HTTP from the operator to the
API server over TLS, streaming (watches included). At a configured rate, drawn from a seeded random generator,
it answers a request itself instead:

- `500`: 500 Internal Server Error with a Kubernetes `Status` body;
- `429`: 429 Too Many Requests with `Retry-After: 1` (what API priority and fairness sends);
- `409`: 409 Conflict, for writes only (what a write on a stale resourceVersion gets);
- `drop`: the connection closed without an answer;
- `stall` (watch requests only): the response headers are sent, then nothing, until the client gives up
  or `stall_seconds` pass.

`stall_watches(path_part)` stalls every watch whose path contains `path_part` from then on, and what is already
streaming stops flowing, until `resume_watches()`: the deterministic stall the readiness test needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from harness.loopback_proxy import WRITE_METHODS, LoopbackProxy, hang_up

FAULTS = ("500", "429", "409", "drop", "stall")


@dataclass
class FaultPlan:
    """Which faults, how often (`rate`: the probability that one request gets a fault), and the seed."""

    rate: float = 0.0
    weights: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(FAULTS, 1.0))
    seed: int = 0
    stall_seconds: float = 30.0


def _status(code: int, reason: str, message: str) -> str:
    return json.dumps(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}
    )


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "") in {"true", "1"}


class FaultProxy(LoopbackProxy):
    """Plain HTTP on 127.0.0.1 -> the API server over TLS, injecting faults by `plan`; counts what it injected."""

    def __init__(self, upstream_url: str, ca_file: Path, plan: FaultPlan) -> None:
        super().__init__(upstream_url, ca_file, thread_name="fault-proxy")
        self.plan = plan
        self._random = random.Random(plan.seed)
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self._stalled_watch_paths: list[str] = []
        self._flowing = asyncio.Event()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self.plan.rate = rate

    def stall_watches(self, path_part: str) -> None:
        """Stall every watch whose path contains `path_part`: new ones get headers only, open ones stop flowing."""
        with self._lock:
            self._stalled_watch_paths.append(path_part)
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume_watches(self) -> None:
        with self._lock:
            self._stalled_watch_paths.clear()
        self._loop.call_soon_threadsafe(self._flowing.set)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"forwarded": self.forwarded, **{fault: self.injected[fault] for fault in FAULTS}}

    def _choose(self, request: web.Request) -> str | None:
        with self._lock:
            if any(part in request.path for part in self._stalled_watch_paths) and _is_watch(request):
                self.injected["stall"] += 1
                return "stall-held"
            if self._random.random() >= self.plan.rate:
                self.forwarded += 1
                return None
            possible = {
                fault: weight
                for fault, weight in self.plan.weights.items()
                if weight > 0
                and (fault != "409" or request.method in WRITE_METHODS)
                and (fault != "stall" or _is_watch(request))
            }
            if not possible:
                self.forwarded += 1
                return None
            fault = self._random.choices(list(possible), weights=list(possible.values()))[0]
            self.injected[fault] += 1
            return fault

    async def _serve(self) -> str:
        self._flowing.set()
        return await super()._serve()

    async def _shutdown(self) -> None:
        self._flowing.set()
        await super()._shutdown()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._choose(request)
        if fault == "500":
            return web.Response(
                status=500, text=_status(500, "InternalError", "injected fault"), content_type="application/json"
            )
        if fault == "429":
            return web.Response(
                status=429,
                headers={"Retry-After": "1"},
                text=_status(429, "TooManyRequests", "injected fault: too many requests, please try again later"),
                content_type="application/json",
            )
        if fault == "409":
            await request.read()
            return web.Response(
                status=409,
                text=_status(409, "Conflict", "injected fault: the object has been modified; please apply again"),
                content_type="application/json",
            )
        if fault == "drop":
            await request.read()
            hang_up(request)
        if fault in {"stall", "stall-held"}:
            return await self._stall(request, held=fault == "stall-held")
        return await self._forward(request)

    async def _stall(self, request: web.Request, *, held: bool) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        with contextlib.suppress(ConnectionResetError):
            await response.prepare(request)
            if held:
                while not self._flowing.is_set():
                    await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(self.plan.stall_seconds)
            await response.write_eof()
        return response

    async def _interrupt(self, request: web.Request) -> bool:
        """An open watch on a stalled path stops flowing: hold it until resumed, then end it without the rest."""
        if not _is_watch(request):
            return False
        with self._lock:
            stalled = any(part in request.path for part in self._stalled_watch_paths)
        if not stalled:
            return False
        while not self._flowing.is_set():
            await asyncio.sleep(0.2)
        return True
