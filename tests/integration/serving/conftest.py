"""Real sluice-serving processes on 127.0.0.1 with free ports, and the models they serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from unit.serving.support import ModelFiles, make_classifier, make_regressor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serving:
    """One `python -m sluice_serving` process; stopped (SIGTERM, then SIGKILL) when the test ends."""

    def __init__(self, env: dict[str, str], cache_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "SLUICE_HOST": "127.0.0.1",
            "PORT": str(self.port),
            "MODEL_CACHE_DIR": str(cache_dir),
            **env,
        }
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.log = cache_dir.parent / f"serving-{self.port}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "sluice_serving"], env=full_env, stdout=log, stderr=log)
        self.client = httpx.Client(base_url=self.base, timeout=30)

    def wait_listening(self) -> None:
        """Block until /v2/health/live answers (or the process exits)."""
        while self.proc.poll() is None:
            try:
                if self.client.get("/v2/health/live").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"sluice-serving exited with {self.proc.returncode}: {self.stderr()}")

    def wait_ready(self) -> None:
        self.wait_listening()
        while self.client.get("/v2/health/ready").status_code != 200:
            assert self.proc.poll() is None, self.stderr()
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit code."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def stderr(self) -> str:
        """What the process has logged so far."""
        return self.log.read_text()

    def wait_exit(self) -> tuple[int, str]:
        self.proc.wait(timeout=60)
        return self.proc.returncode, self.stderr()


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return make_classifier(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return make_regressor(tmp_path_factory.mktemp("models"))


Start = Callable[[dict[str, str]], Serving]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """`start(env)` launches a server (not waiting for it); all are stopped at the end of the test."""
    started: list[Serving] = []

    def launch(env: dict[str, str]) -> Serving:
        server = Serving(env, tmp_path / "cache")
        started.append(server)
        return server

    yield launch
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def sklearn_server(classifier: ModelFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    """A ready server for the classifier (joblib, digest pinned), shared by a test module."""
    env = {
        "MODEL_URI": str(classifier.joblib),
        "MODEL_DIGEST": classifier.digest,
        "MODEL_VERSION": "3",
        "SLUICE_TRACK": "canary",
    }
    server = Serving(env, tmp_path_factory.mktemp("cache"))
    server.wait_ready()
    yield server
    assert server.stop() == 0


HARDENED_ENV = {"SLUICE_REQUEST_TIMEOUT": "2", "SLUICE_KEEPALIVE_TIMEOUT": "4", "SLUICE_MAX_CONNECTIONS": "40"}
"""Short limits for the hostile-client tests: a request must arrive within 2 s, idle connections live 4 s (longer,
so that a trickled request cannot live on keep-alive time), at most 40 connections."""


@pytest.fixture(scope="module")
def hardened_server(classifier: ModelFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    """A ready server for the classifier with HARDENED_ENV's limits, shared by a test module."""
    env = {"MODEL_URI": str(classifier.joblib), "MODEL_DIGEST": classifier.digest, **HARDENED_ENV}
    server = Serving(env, tmp_path_factory.mktemp("cache"))
    server.wait_ready()
    yield server
    assert server.stop() == 0
