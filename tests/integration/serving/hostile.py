"""Raw-socket clients for hostile-request tests against a real sluice-serving process: requests sent byte by
byte, pipelined, never read or never finished, and the server's liveness and peak memory around them."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from pathlib import Path

import httpx

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
LIVE = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"


def connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def send(sock: socket.socket, data: bytes) -> bool:
    """Send `data`; False when the server has already closed (it refused early and hung up)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        return False
    return True


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, bool]:
    """What the server sends within `limit` seconds, and whether it closed the connection by then."""
    deadline = time.monotonic() + limit
    reply = b""
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                return reply, True
            reply += chunk
    except TimeoutError:
        return reply, False
    except ConnectionResetError:
        return reply, True
    return reply, False


def first_status(reply: bytes) -> int | None:
    match = STATUS.match(reply)
    return int(match.group(1)) if match else None


def statuses(reply: bytes) -> list[int]:
    return [int(code) for code in STATUS.findall(reply)]


def live_within(port: int, seconds: float = 1.0) -> bool:
    """Whether a fresh connection gets 200 from /v2/health/live within `seconds`."""
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=seconds) as client:
            return client.get("/v2/health/live").status_code == 200
    except httpx.TransportError:
        return False


class PeakRss:
    """The server process's peak resident memory (VmHWM), reset before each case (clear_refs, as root)."""

    def __init__(self, pid: int) -> None:
        self._proc = Path(f"/proc/{pid}")

    def reset(self) -> None:
        with contextlib.suppress(OSError):  # not root: the peak is then the process's lifetime peak
            (self._proc / "clear_refs").write_text("5")

    def mib(self) -> float:
        for line in (self._proc / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")
