"""HTTP/1.1 transport: an asyncio protocol on the httptools parser (the stack chosen by measurement,
see docs/benchmarks.md). Keep-alive, pipelining, Expect: 100-continue, body limits, idle timeouts and a
graceful drain."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from http import HTTPStatus
from typing import cast

import httptools

from sluice_serving.app import App, Reply, error

log = logging.getLogger("sluice_serving.server")
access_log = logging.getLogger("sluice_serving.access")

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_MAX_PIPELINE = 32


def _head(status: int, content_type: bytes, length: int, close: bool, headers: bytes = b"") -> bytes:
    reason = _REASONS.get(status, "Unknown")
    connection = b"connection: close\r\n" if close else b""
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: ".encode()
        + content_type
        + f"\r\ncontent-length: {length}\r\n".encode()
        + headers
        + connection
        + b"\r\n"
    )


class _Request:
    __slots__ = ("body", "keep_alive", "method", "path", "started")

    def __init__(self, method: str, path: str, body: bytes, keep_alive: bool, started: float) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive
        self.started = started


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._app = server.app
        self._max_body = server.app.cfg.max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._body_size = 0
        self._rejected = False  # the current request got its 413 early; its body is discarded
        self._in_message = False
        self._queue: deque[_Request] = deque()
        self._busy = False  # a reply is waiting (injected latency); later requests queue behind it
        self._paused = False
        self._closing = False
        self.last_active = time.monotonic()

    @property
    def idle(self) -> bool:
        return not (self._in_message or self._busy or self._queue)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._closing = True

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, f"malformed HTTP request: {exc}")

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._body = []
        self._body_size = 0
        self._rejected = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 14 and name.lower() == b"content-length":
            try:
                too_large = int(value) > self._max_body
            except ValueError:
                too_large = False  # the parser rejects it
            if too_large:
                self._reject_too_large()
        elif (
            len(name) == 6
            and name.lower() == b"expect"
            and value.lower() == b"100-continue"
            and not self._rejected
            and self._transport is not None
        ):
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._rejected:
            return
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._body = []
            self._reject_too_large()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._rejected:
            self._close()
            return
        parser = self._parser
        request = _Request(
            parser.get_method().decode("ascii", "replace"),
            self._url.split(b"?", 1)[0].decode("latin-1"),
            b"".join(self._body),
            parser.should_keep_alive() and not self._closing,
            time.perf_counter(),
        )
        if self._busy or self._queue:
            self._queue.append(request)
            if len(self._queue) >= _MAX_PIPELINE and self._transport is not None:
                self._transport.pause_reading()
                self._paused = True
        else:
            self._process(request)

    # request processing

    def _process(self, request: _Request) -> None:
        self._server.in_flight += 1
        reply = self._app.handle(request.method, request.path, request.body)
        if reply.delay > 0:
            self._busy = True
            self._app.metrics.in_flight_inc()
            asyncio.get_running_loop().call_later(reply.delay, self._finish_delayed, request, reply)
        else:
            self._respond(request, reply)

    def _finish_delayed(self, request: _Request, reply: Reply) -> None:
        self._busy = False
        self._app.metrics.in_flight_dec()
        self._respond(request, reply)
        while self._queue and not self._busy and not self._closing:
            self._process(self._queue.popleft())
        if self._paused and not self._queue and self._transport is not None and not self._closing:
            self._paused = False
            self._transport.resume_reading()

    def _respond(self, request: _Request, reply: Reply) -> None:
        self._server.in_flight -= 1
        close = not request.keep_alive or self._server.draining
        self._write(reply, request.method == "HEAD", close)
        if reply.endpoint is not None:
            self._app.metrics.record(reply.endpoint, reply.status, time.perf_counter() - request.started)
        if self._server.access_log:
            access_log.info(
                "request",
                extra={"method": request.method, "path": request.path, "status": reply.status},
            )
        if close:
            self._close()

    def _write(self, reply: Reply, head_only: bool, close: bool) -> None:
        if self._transport is None or self._closing:
            return
        head = _head(reply.status, reply.content_type, len(reply.body), close, reply.headers)
        self._transport.write(head if head_only else head + reply.body)

    def _reject_too_large(self) -> None:
        if self._rejected:
            return
        self._rejected = True
        limit = self._max_body
        reply = error(413, f"the request body is larger than SLUICE_MAX_BODY_BYTES ({limit} bytes)")
        self._write(reply, False, True)

    def _fail(self, status: int, message: str) -> None:
        self._write(error(status, message), False, True)
        self._close()

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def shut(self) -> None:
        """Close the connection now."""
        self._close()

    def expire(self, now: float, timeout: float) -> None:
        """Close the connection if it has been idle, or stuck in a half-sent request, for `timeout`."""
        if (self.idle or self._in_message) and now - self.last_active >= timeout:
            self._close()


class Server:
    """The listening socket, its connections, and the drain on shutdown."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.connections: set[HttpProtocol] = set()
        self.in_flight = 0
        self.draining = False
        self.access_log = app.cfg.access_log
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int, reuse_port: bool = False) -> int:
        """Listen (`reuse_port`: alongside the other worker processes); return the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpProtocol(self), host, port, reuse_address=True, reuse_port=reuse_port or None, backlog=1024
        )
        self._sweeper = asyncio.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        timeout = self.app.cfg.keepalive_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 2))
            now = time.monotonic()
            for conn in list(self.connections):
                conn.expire(now, timeout)

    async def drain(self, timeout: float) -> None:
        """Stop accepting, answer what was received (closing each connection after its last reply),
        close idle connections, and give up after `timeout` seconds."""
        self.draining = True
        self.app.draining = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + timeout
        while True:
            for conn in [c for c in self.connections if c.idle]:
                conn.shut()
            if not self.connections and self.in_flight == 0:
                break
            if time.monotonic() >= deadline:
                log.warning("drain timed out", extra={"in_flight": self.in_flight})
                break
            await asyncio.sleep(0.05)
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.shut()
