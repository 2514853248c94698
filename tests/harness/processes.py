"""Child processes of the harness: free loopback ports, logged launches, readiness polling, stopping by PID.

Every process is started in its own session with its output appended to a log file. Stopping works by PID alone
(SIGTERM, then SIGKILL after a grace period), so `python -m harness down` can stop processes that an earlier command
started; the process's start time, read from /proc, guards against a recycled PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


class ProcessExitedError(RuntimeError):
    """A harness process exited while the harness still needed it."""


def free_ports(count: int) -> list[int]:
    """Free TCP ports on the loopback interface, all held open together so that none is handed out twice."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """One free TCP port on the loopback interface."""
    return free_ports(1)[0]


def _process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None when there is no live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start_time = fields[0], int(fields[19])
    if state in {"Z", "X"}:
        return None
    return start_time


def _reap(pid: int) -> None:
    """Collect the exit status of `pid` if it is our child, so that it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass(frozen=True)
class ProcessRecord:
    """What identifies a started process across commands: its PID and its kernel start time."""

    name: str
    pid: int
    start_time: int
    log_path: Path

    def is_alive(self) -> bool:
        _reap(self.pid)
        return _process_start_time(self.pid) == self.start_time

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "start_time": self.start_time, "log_path": str(self.log_path)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            log_path=Path(data["log_path"]),
        )


def launch(
    name: str,
    command: Sequence[str | Path],
    log_path: Path,
    *,
    die_with_parent: bool,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start `command` in a new session, stdout and stderr appended to `log_path`.

    With `die_with_parent` the kernel sends the process SIGTERM when the calling thread dies (for test sessions;
    via util-linux `setpriv --pdeathsig`, which execs the command in place); without it the process outlives the
    caller (for `python -m harness up`). Call it from a long-lived thread: the parent-death signal follows the
    thread that forked.
    """
    argv = [str(part) for part in command]
    setpriv = shutil.which("setpriv")
    if die_with_parent and setpriv:
        argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(str(part) for part in command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    start_time = _process_start_time(process.pid)
    if start_time is None:
        raise ProcessExitedError(f"{name} exited at once; log: {log_path}\n{tail(log_path)}")
    return ProcessRecord(name=name, pid=process.pid, start_time=start_time, log_path=log_path)


def stop_processes(records: Iterable[ProcessRecord], grace_seconds: float = 10.0) -> None:
    """Stop the given processes by PID: SIGTERM to all, then SIGKILL to those still alive after the grace period."""
    alive = [record for record in records if record.is_alive()]
    for record in alive:
        _signal(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [record for record in alive if record.is_alive()]
    for record in alive:
        _signal(record.pid, signal.SIGKILL)
    for record in alive:
        while record.is_alive():
            time.sleep(0.02)


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 256 * lines))
            data = log.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    watched: Sequence[ProcessRecord] = (),
    interval: float = 0.1,
) -> None:
    """Poll `condition` until it holds; fail early when a watched process exits, or after `timeout` seconds.

    Exceptions raised by `condition` count as "not yet" and the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            if condition():
                return
            last_error = None
        except Exception as error:
            last_error = error
        for record in watched:
            if not record.is_alive():
                raise ProcessExitedError(
                    f"{record.name} (pid {record.pid}) exited while waiting for {what}; "
                    f"log {record.log_path}:\n{tail(record.log_path)}"
                )
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def http_ok(url: str, ssl_context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True when a GET of `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ssl_context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
