"""A plain-HTTP proxy on 127.0.0.1 to the API server over TLS, streaming (watches included), on its own thread.

The base of the test proxies that sit between the operator and kube-apiserver: `CountingProxy` records every
request, `FaultProxy` injects faults, `TrapProxy` cuts the operator off at chosen requests. Subclasses override
`_handle` (what to do with a request), `_answered` (whether to relay the API server's answer at all) and
`_interrupt` (whether a streamed response stops early).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path
from typing import NoReturn, Self

from aiohttp import ClientSession, ClientTimeout, web

HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length"})
"""Headers of one hop; content-encoding passes through untouched (the proxy never decompresses)."""
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def hang_up(request: web.Request) -> NoReturn:
    """Close the client's connection without an answer (what a crashed or unreachable server does)."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError  # aiohttp drops the handler of a gone connection quietly


class LoopbackProxy:
    """Forwards every request to `upstream_url` (TLS, verified with `ca_file`); `url` is where it listens."""

    def __init__(self, upstream_url: str, ca_file: Path, thread_name: str) -> None:
        self._upstream = upstream_url.rstrip("/")
        self._tls = ssl.create_default_context(cafile=str(ca_file))
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=thread_name, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.url = ""

    def start(self) -> Self:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    async def _serve(self) -> str:
        self._session = ClientSession(timeout=ClientTimeout(total=None, sock_connect=10), auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        return await self._forward(request)

    async def _answered(self, request: web.Request, status: int) -> bool:
        """Called once the API server has answered with `status`, before anything is relayed: True hangs up instead
        (the request took effect at the API server; the client never hears of it)."""
        return False

    async def _interrupt(self, request: web.Request) -> bool:
        """Called before each streamed chunk: True ends the response there (the rest is not sent)."""
        return False

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method, self._upstream + request.path_qs, headers=headers, data=body or None, ssl=self._tls
        ) as upstream:
            if await self._answered(request, upstream.status):
                hang_up(request)
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            with contextlib.suppress(ConnectionResetError):  # the operator hung up (a watch it stopped)
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    if await self._interrupt(request):
                        break
                    await response.write(chunk)
                await response.write_eof()
            return response
