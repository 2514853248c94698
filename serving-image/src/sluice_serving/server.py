"""HTTP/1.1 transport: an asyncio protocol on the httptools parser (the stack chosen by measurement,
see docs/benchmarks.md). Keep-alive, pipelining, Expect: 100-continue, body limits, idle timeouts and a
graceful drain, with every client byte treated as hostile: the request line and headers are capped (414/431),
a request's head and body must arrive within SLUICE_REQUEST_TIMEOUT of its first byte (408), connections are
capped (503), reading pauses while the socket's write buffer is high or too many requests wait, and at most
_PER_TURN requests of one connection are answered per event-loop turn, so that no client starves the others
(docs/security.md, "The model server"). When the app answers later (an awaitable reply), the connection's
later requests wait in its queue, so that replies go out in the order of the requests (HTTP/1.1 pipelining)."""

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
"""Requests of one connection waiting for an answer before its reading pauses."""
_PER_TURN = 8
"""Requests of one connection answered per event-loop turn; the rest wait for the next turn."""


_PREFIXES: dict[tuple[int, bytes], bytes] = {}
"""The response heads up to the content length, by status and content type (the app's few)."""


def _head(status: int, content_type: bytes, length: int, close: bool, headers: bytes = b"") -> bytes:
    prefix = _PREFIXES.get((status, content_type))
    if prefix is None:
        reason = _REASONS.get(status, "Unknown")
        prefix = f"HTTP/1.1 {status} {reason}\r\ncontent-type: ".encode() + content_type + b"\r\ncontent-length: "
        if len(_PREFIXES) < 256:
            _PREFIXES[status, content_type] = prefix
    return b"%s%d\r\n%s%s\r\n" % (prefix, length, headers, b"connection: close\r\n" if close else b"")


class _Request:
    __slots__ = ("body", "header_length", "keep_alive", "key", "method", "path", "started")

    def __init__(  # noqa: PLR0917 (one field each)
        self,
        method: str,
        path: str,
        body: bytes,
        keep_alive: bool,
        started: float,
        header_length: bytes | None,
        key: bytes | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive
        self.started = started
        self.header_length = header_length
        """The Inference-Header-Content-Length header (the binary tensor data extension), if any."""
        self.key = key
        """The entity key header's value during an experiment, if any."""


class _RefusedError(Exception):
    """Raised from a parser callback after the connection was answered and closed: stop parsing its bytes."""


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: Server) -> None:
        cfg = server.app.cfg
        self._server = server
        self._app = server.app
        self._max_body = cfg.max_body_bytes
        self._max_url = cfg.max_url_bytes
        self._max_head = cfg.max_header_bytes
        self._max_message = cfg.max_body_bytes + cfg.max_header_bytes  # body with chunk framing and trailers
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._body_size = 0
        self._in_head = True  # between requests or in a request's head: received bytes count as head bytes
        self._head_bytes = 0
        self._header_bytes = 0  # names and values of the current request's headers
        self._message_bytes = 0  # bytes received after the current request's head
        self._in_message = False
        self._message_started = 0.0  # monotonic time of the current request's first byte
        self._expect_continue = False
        self._header_length: bytes | None = None
        experiment = server.app.experiment
        self._key_header = experiment.header if experiment is not None else None  # the entity key's header
        self._key: bytes | None = None
        self._upgrade = False  # the current request asks for a protocol upgrade: answer it, then close
        self._upgraded = False  # the parser stopped at an upgrade; later bytes are not HTTP/1.1
        self._queue: deque[_Request] = deque()
        self._pending: asyncio.Future[Reply] | None = None  # a reply the app gives later; later requests queue
        self._handled = 0  # requests answered in the current read
        self._queue_scheduled = False
        self._reading_paused = False
        self._writing_paused = False
        self._closing = False
        self.last_active = time.monotonic()

    @property
    def idle(self) -> bool:
        return not (self._in_message or self._pending or self._queue)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._loop = asyncio.get_running_loop()
        connections = self._server.connections
        if len(connections) >= self._server.max_connections:
            self._fail(503, "too many connections (SLUICE_MAX_CONNECTIONS); retry later")
            return
        connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._closing = True

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._serve_queue()

    def data_received(self, data: bytes) -> None:
        if self._closing or self._upgraded:
            return
        self._handled = 0
        if self._in_head:
            self._head_bytes += len(data)
        elif self._in_message:  # body and trailers: the parser buffers trailers whole, so count raw bytes too
            self._message_bytes += len(data)
            if self._message_bytes > self._max_message:
                self._refuse_large_body()
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgraded = True  # the request was answered (or is being); its reply closes the connection
            return
        except httptools.HttpParserError as exc:
            if not self._closing:  # else a callback refused the request and answered it
                self._fail(400, f"malformed HTTP request: {exc}")
            return
        if self._in_head and self._head_bytes > self._max_head:
            self._refuse_large_head()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._in_message = True
        self._message_started = time.monotonic()
        self._url = b""
        self._header_bytes = 0
        self._body = []
        self._body_size = 0
        self._expect_continue = False
        self._header_length = None
        self._key = None
        self._upgrade = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_url:
            self._fail(414, f"the request target is longer than SLUICE_MAX_URL_BYTES ({self._max_url} bytes)")
            raise _RefusedError

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_bytes > self._max_head:  # a whole head in one read is never counted by data_received
            self._refuse_large_head()
            raise _RefusedError
        if len(name) == 14 and name.lower() == b"content-length":
            try:
                too_large = int(value) > self._max_body
            except ValueError:
                too_large = False  # the parser rejects it
            if too_large:
                self._refuse_large_body()
                raise _RefusedError
        elif len(name) == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        elif len(name) == 31 and name.lower() == b"inference-header-content-length":
            self._header_length = value
        elif self._key_header is not None and name.lower() == self._key_header:
            self._key = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._message_bytes = 0
        parser = self._parser
        if parser.should_upgrade():
            if parser.get_method() == b"CONNECT":
                self._fail(405, "CONNECT is not supported")
                raise _RefusedError
            self._upgrade = True
        if self._expect_continue and self._transport is not None:
            method, path = self._method_and_path()
            if self._app.accepts_body(method, path):
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            else:  # answer without the body, which is never read
                reply = self._app.handle(method, path, b"")
                assert isinstance(reply, Reply), "a request whose body is not read never reaches the model"
                self._write(reply, method == "HEAD", True)
                self._close()
                raise _RefusedError

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._refuse_large_body()
            raise _RefusedError
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._in_head = True
        method, path = self._method_and_path()
        request = _Request(
            method,
            path,
            b"".join(self._body),
            self._parser.should_keep_alive() and not self._upgrade and not self._closing,
            time.monotonic(),
            self._header_length,
            self._key,
        )
        if self._pending or self._queue or self._writing_paused or self._handled >= _PER_TURN:
            self._queue.append(request)
            self._update_reading()
            self._schedule_queue()
        else:
            self._handled += 1
            self._process(request)

    # request processing

    def _method_and_path(self) -> tuple[str, str]:
        return self._parser.get_method().decode("ascii", "replace"), self._url.split(b"?", 1)[0].decode("latin-1")

    def _process(self, request: _Request) -> None:
        self._server.in_flight += 1
        reply = self._app.handle(request.method, request.path, request.body, request.header_length, request.key)
        if isinstance(reply, Reply):
            self._respond(request, reply)
            return
        self._app.metrics.in_flight_inc()
        self._pending = asyncio.ensure_future(reply)
        self._pending.add_done_callback(lambda done: self._finish_later(request, done))

    def _finish_later(self, request: _Request, done: asyncio.Future[Reply]) -> None:
        self._pending = None
        self._app.metrics.in_flight_dec()
        self._respond(request, done.result())
        self._serve_queue()

    def _schedule_queue(self) -> None:
        if not self._queue_scheduled and self._loop is not None:
            self._queue_scheduled = True
            self._loop.call_soon(self._serve_queue)

    def _serve_queue(self) -> None:
        """Answer up to _PER_TURN waiting requests, and come back next turn for more."""
        self._queue_scheduled = False
        for _ in range(_PER_TURN):
            if not self._queue or self._pending or self._writing_paused or self._closing:
                break
            self._process(self._queue.popleft())
        else:
            if self._queue:
                self._schedule_queue()
        self._update_reading()

    def _update_reading(self) -> None:
        """Read while the write buffer is low and few requests wait; pause otherwise."""
        pause = self._writing_paused or len(self._queue) >= _MAX_PIPELINE
        if pause != self._reading_paused and self._transport is not None and not self._closing:
            self._reading_paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    def _respond(self, request: _Request, reply: Reply) -> None:
        self._server.in_flight -= 1
        close = not request.keep_alive or self._server.draining
        self._write(reply, request.method == "HEAD", close)
        self.last_active = now = time.monotonic()  # (one clock for both; on Linux it is perf_counter's)
        if reply.endpoint is not None:
            self._app.metrics.record(reply.endpoint, reply.status, now - request.started)
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

    def _refuse_large_head(self) -> None:
        self._fail(431, f"the request head is larger than SLUICE_MAX_HEADER_BYTES ({self._max_head} bytes)")

    def _refuse_large_body(self) -> None:
        """413 and close: the rest of the body is never read."""
        self._fail(413, f"the request body is larger than SLUICE_MAX_BODY_BYTES ({self._max_body} bytes)")

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

    def expire(self, now: float, keepalive_timeout: float, request_timeout: float) -> None:
        """Close the connection when a request has not fully arrived `request_timeout` after its first byte
        (408), or when it has been idle for `keepalive_timeout` since its last reply. Bytes that start no
        request (stray CRLFs) do not keep an idle connection open."""
        if self._in_message:
            if now - self._message_started >= request_timeout:
                self._fail(408, "the request did not arrive within SLUICE_REQUEST_TIMEOUT")
        elif self.idle and now - self.last_active >= keepalive_timeout:
            self._close()


class Server:
    """The listening socket, its connections, and the drain on shutdown."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.connections: set[HttpProtocol] = set()
        self.in_flight = 0
        self.draining = False
        self.access_log = app.cfg.access_log
        self.max_connections = app.cfg.max_connections
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
        keepalive, request = self.app.cfg.keepalive_timeout, self.app.cfg.request_timeout
        while True:
            await asyncio.sleep(min(1.0, keepalive / 2, request / 2))
            now = time.monotonic()
            for conn in list(self.connections):
                conn.expire(now, keepalive, request)

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
