"""A loopback proxy in front of the API server that journals the operator's writes and can cut it off at chosen
requests, for the crash tests (tests/reliability/crash_points.py says where they cut).

For every request `TrapProxy` asks its `trap` twice: when the request arrives (`Exchange.status` is None; nothing
has been forwarded) and once the API server has answered it (`status` set; nothing relayed yet). When `trap`
returns True the proxy relays nothing and hangs up. The crash tests SIGKILL the operator inside `trap`, so the
operator dies *waiting for that answer*: a write trapped after its answer has taken effect at the API server, and
nothing the operator does only after that write has happened. That is the crash between write A and write B. (A
kill right after forwarding A without holding its answer would race the operator: by the time the signal lands it
may have read A's answer and sent B.) Requests the operator had sent on other connections before it died go on as
they would after a real crash: a write the proxy has read is carried through to the API server (and journaled),
a read dies with the connection.

`journal()`: every write the API server accepted (2xx), in the order its answers arrived, with the parsed body.
For the writes of one object that is the order they took effect, which the invariants in
tests/reliability/crash_points.py check.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from harness.loopback_proxy import WRITE_METHODS, LoopbackProxy, hang_up


@dataclass(frozen=True)
class Exchange:
    """One request of the operator's: what it asked, with which body, and (once answered) the API server's status."""

    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    """The JSON body parsed (server-side apply bodies are JSON too), None when empty or not JSON."""
    status: int | None = None

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


_EXCHANGE = web.RequestKey("exchange", Exchange)
Trap = Callable[[Exchange], bool]
"""Runs on the proxy's event loop for every exchange, before forwarding and after the answer: True hangs up."""


class TrapProxy(LoopbackProxy):
    """Plain HTTP on 127.0.0.1 -> the API server over TLS; `trap` decides where to hang up; writes are journaled."""

    def __init__(self, upstream_url: str, ca_file: Path, trap: Trap) -> None:
        super().__init__(upstream_url, ca_file, thread_name="trap-proxy")
        self._trap = trap
        self._journal: list[Exchange] = []

    def journal(self) -> list[Exchange]:
        with self._lock:
            return list(self._journal)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        exchange = Exchange(request.method, request.path, dict(request.query), _parsed(await request.read()))
        request[_EXCHANGE] = exchange
        if self._trap(exchange):
            hang_up(request)
        if exchange.is_write:  # carried through (and journaled) even if the operator dies meanwhile
            return await asyncio.shield(self._forward(request))
        return await self._forward(request)

    async def _answered(self, request: web.Request, status: int) -> bool:
        exchange = replace(request[_EXCHANGE], status=status)
        if exchange.is_write and exchange.accepted:
            with self._lock:
                self._journal.append(exchange)
        return self._trap(exchange)
