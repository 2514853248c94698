"""What the operator reads that others wrote, against real loopback servers and files (issue #14, findings 1, 2
and 4): a validation dataset, a canary's answers and Prometheus' answers are read up to a byte cap and a deadline,
no redirect is followed, files are read only when regular and under the dataset directory, and no error repeats
what was read."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from sluice.adapters.metrics import CanaryQuery, PrometheusProvider
from sluice.adapters.shadow import ShadowMetrics, ShadowQuery
from sluice.adapters.validation import OTHER_VERSION, ValidationRunner
from sluice.api.v1alpha1 import ValidationSpec
from sluice.core.plan import ValidationReading
from sluice.core.validation import Allowlists

pytestmark = pytest.mark.integration

SECRET = "db_password=hunter2"
CAP = 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering every path with `handler`: its base URL and the paths it was asked."""
    asked: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        await runner.cleanup()


OFFERED = 64 * 1024 * 1024
"""What the endless servers offer before they give up: far more than any cap, little enough for a shared machine
should a reader have no cap."""
sent: list[int] = []
"""Bytes the last endless server got the reader to accept (the kernel's socket buffers included)."""


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    block = (SECRET + ",a,label\n").encode() * 1024
    sent[:] = [0]
    try:
        while sent[0] < OFFERED:
            await response.write(block)
            sent[0] += len(block)
    except (ConnectionResetError, RuntimeError):  # the reader hung up (aiohttp raises either)
        pass
    return response


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(600):
        await response.write(b"a")
        await asyncio.sleep(0.1)
    return response


async def secret_error(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500, text=SECRET)


async def no_config_maps(namespace: str, name: str, key: str) -> str | None:
    return None


def validate(runner: ValidationRunner, uri: str, timeout: str = "20s") -> ValidationReading:
    spec = ValidationSpec.model_validate({"uri": uri, "min": 0.5, "timeout": timeout})
    return asyncio.run(runner.run(spec, "ml", "iris", "1"))


def hosts(base: str) -> Allowlists:
    return Allowlists(dataset_hosts=frozenset({base.removeprefix("http://")}))


def test_an_endless_http_dataset_is_refused_at_the_byte_cap() -> None:
    async def scenario() -> ValidationReading:
        async with serving(endless) as (base, _):
            spec = ValidationSpec.model_validate({"uri": f"{base}/holdout.csv", "min": 0.5, "timeout": "60s"})
            return await ValidationRunner(no_config_maps, base, hosts(base), CAP).run(spec, "ml", "iris", "1")

    reading = asyncio.run(scenario())
    assert reading.error == f"the dataset is larger than {CAP} bytes", reading
    assert sent[0] < OFFERED / 4, f"the reader stopped near the cap, not after {sent[0]} bytes"


def test_a_dataset_host_redirect_is_not_followed() -> None:
    async def scenario() -> tuple[ValidationReading, list[str]]:
        async with serving(secret_error) as (target, target_asked):

            async def redirect(request: web.Request) -> web.StreamResponse:
                raise web.HTTPFound(f"{target}/latest/meta-data")

            async with serving(redirect) as (base, _):
                spec = ValidationSpec.model_validate({"uri": f"{base}/holdout.csv", "min": 0.5})
                reading = await ValidationRunner(no_config_maps, base, hosts(base)).run(spec, "ml", "iris", "1")
        return reading, target_asked

    reading, target_asked = asyncio.run(scenario())
    assert reading.error == "the dataset host answered HTTP 302: redirects are not followed", reading
    assert target_asked == []


def test_a_trickling_dataset_is_cut_at_the_runs_timeout() -> None:
    async def scenario() -> ValidationReading:
        async with serving(trickle) as (base, _):
            spec = ValidationSpec.model_validate({"uri": f"{base}/d.csv", "min": 0.5, "timeout": "1s"})
            return await ValidationRunner(no_config_maps, base, hosts(base)).run(spec, "ml", "iris", "1")

    started = time.monotonic()
    reading = asyncio.run(scenario())
    assert reading.error == "the run took longer than timeout 1s", reading
    assert time.monotonic() - started < 5


def test_files_are_read_only_when_regular_and_under_the_dataset_directory(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (tmp_path / "token").write_text(SECRET)
    (datasets / "zero.csv").symlink_to("/dev/zero")
    (datasets / "token.csv").symlink_to(tmp_path / "token")
    os.mkfifo(datasets / "fifo.csv")
    with open(datasets / "huge.csv", "wb") as huge:
        huge.truncate(CAP + 1)
    runner = ValidationRunner(no_config_maps, "http://127.0.0.1:9", Allowlists(dataset_dir=str(datasets)), CAP)
    outside = "spec.validation.uri: the file resolves outside the operator's dataset directory"
    assert validate(runner, (datasets / "zero.csv").as_uri()).error == outside
    assert validate(runner, (datasets / "token.csv").as_uri()).error == outside
    assert validate(runner, (datasets / "fifo.csv").as_uri(), "2s").error == "the dataset is not a regular file"
    assert validate(runner, (datasets / "huge.csv").as_uri()).error == f"the dataset is larger than {CAP} bytes"
    closed = ValidationRunner(no_config_maps, "http://127.0.0.1:9")
    assert "reads no file:// datasets" in (validate(closed, (datasets / "huge.csv").as_uri()).error or "")


def test_the_canarys_answers_are_capped_and_never_quoted(tmp_path: Path) -> None:
    dataset = tmp_path / "d.csv"
    dataset.write_text("a,label\n1,0\n")
    allow = Allowlists(dataset_dir=str(tmp_path))

    async def scenario(handler: Handler) -> ValidationReading:
        async with serving(handler) as (base, _):
            spec = ValidationSpec.model_validate({"uri": dataset.as_uri(), "min": 0.5})
            return await ValidationRunner(no_config_maps, base, allow, CAP).run(spec, "ml", "iris", "1")

    assert asyncio.run(scenario(endless)).error == f"the canary's model metadata answer is larger than {CAP} bytes"
    assert asyncio.run(scenario(secret_error)).error == "the canary answered model metadata with HTTP 500"

    async def another_version(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/infer"):
            return web.json_response({"model_version": SECRET, "outputs": [{"name": "y", "data": [0]}]})
        return web.json_response({"inputs": [{"name": "x"}], "outputs": [{"name": "y"}]})

    assert asyncio.run(scenario(another_version)).error == OTHER_VERSION


def test_prometheus_error_bodies_are_not_copied_and_its_answers_are_capped() -> None:
    query = CanaryQuery("ml", "iris", "2", timedelta(minutes=1))
    shadow_query = ShadowQuery("ml", "iris", "2", timedelta(minutes=1))

    async def scenario(handler: Handler) -> tuple[str | None, str | None]:
        async with serving(handler) as (base, _):
            reading = await PrometheusProvider(base, 10.0).read(query)
            shadow = await ShadowMetrics(base, 10.0).read(shadow_query)
        return reading.error, shadow.error

    for error in asyncio.run(scenario(secret_error)):
        assert error is not None
        assert "answered a query with HTTP 500" in error
        assert "hunter2" not in error
    for error in asyncio.run(scenario(endless)):
        assert error is not None
        assert "Prometheus' answer is larger than 16777216 bytes" in error
        assert "hunter2" not in error


async def redirect_to_metadata(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")


def test_a_trickling_or_redirecting_prometheus_is_cut_at_its_timeout_and_never_followed() -> None:
    query = CanaryQuery("ml", "iris", "2", timedelta(minutes=1))

    async def scenario(handler: Handler) -> tuple[str | None, float, list[str]]:
        async with serving(handler) as (base, asked):
            started = time.monotonic()
            reading = await PrometheusProvider(base, 1.0).read(query)
            return reading.error, time.monotonic() - started, asked

    error, took, _ = asyncio.run(scenario(trickle))
    assert error is not None
    assert "timed out (no answer within 1s)" in error
    assert took < 10, "one query's body is cut at the timeout, not read for the 60 s the server trickles"
    error, _, asked = asyncio.run(scenario(redirect_to_metadata))
    assert error is not None
    assert "redirects are not followed" in error
    assert asked == ["/api/v1/query"], "the redirect target is never asked"
