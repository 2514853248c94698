"""Log lines carry the ModelDeployment and rollout step of the reconcile that logged them, as text or JSON."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sluice.adapters import logs
from sluice.settings import LogFormat, Settings


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("sluice.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield stream, handler
    logger.removeHandler(handler)


async def reconcile_loop(namespace: str, name: str, step: str) -> None:
    """As a reconcile loop does: its own task, context set, a line logged (also from a worker thread)."""
    logs.reconciling(namespace, name)
    logs.at_step(step)
    logging.getLogger("sluice.test-logs").info("applying %s", "Deployment")
    await asyncio.to_thread(logging.getLogger("sluice.test-logs").warning, "from a thread")


def test_every_json_line_of_a_reconcile_carries_namespace_name_and_step(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, handler = captured
    handler.setFormatter(logs.JsonFormatter())

    async def two_loops() -> None:
        await asyncio.gather(
            asyncio.create_task(reconcile_loop("ml", "fraud", "Progressing 2/3 (25%)")),
            asyncio.create_task(reconcile_loop("ads", "ctr", "Stable")),
        )
        logging.getLogger("sluice.test-logs").info("outside")

    asyncio.run(two_loops())

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_message = {(line["namespace"], line["name"], line["message"]): line for line in lines}
    assert by_message[("ml", "fraud", "applying Deployment")]["step"] == "Progressing 2/3 (25%)"
    assert by_message[("ml", "fraud", "from a thread")]["level"] == "WARNING"
    assert by_message[("ads", "ctr", "applying Deployment")]["step"] == "Stable"
    assert by_message[("", "", "outside")]["step"] == ""
    assert {tuple(sorted(line)) for line in lines} == {
        ("level", "logger", "message", "name", "namespace", "step", "time")
    }


def test_a_json_line_carries_the_traceback(captured: tuple[io.StringIO, logging.Handler]) -> None:
    stream, handler = captured
    handler.setFormatter(logs.JsonFormatter())
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("sluice.test-logs").exception("failed")

    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "failed"
    assert "ValueError: boom" in line["exception"]


def test_text_lines_name_the_object_and_step(captured: tuple[io.StringIO, logging.Handler]) -> None:
    stream, handler = captured
    handler.setFormatter(logs.TextFormatter())

    asyncio.run(reconcile_loop("ml", "fraud", "Progressing 1/3 (10%)"))
    logging.getLogger("sluice.test-logs").info("idle")

    first, _, last = stream.getvalue().splitlines()
    assert first.endswith("INFO sluice.test-logs: [ml/fraud Progressing 1/3 (10%)] applying Deployment")
    assert last.endswith("INFO sluice.test-logs: idle")


@contextmanager
def configured(level: str, log_format: LogFormat) -> Iterator[None]:
    """`logs.configure` for the block, the root and third-party loggers restored after it."""
    root = logging.getLogger()
    quieted = ("kopf", "httpx", "httpcore")
    saved = (list(root.handlers), root.level, [logging.getLogger(name).level for name in quieted])
    try:
        logs.configure(level, log_format)
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level_before in zip(quieted, saved[2], strict=True):
            logging.getLogger(name).setLevel(level_before)


def test_kopf_handler_successes_are_not_logged_but_its_warnings_and_sluices_lines_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with configured("INFO", "text"):
        logging.getLogger("kopf.objects").info("Handler 'services' succeeded.")
        logging.getLogger("kopf.objects").warning("Handler 'services' failed temporarily: boom")
        logging.getLogger("kopf.activities.startup").info("Activity 'startup' succeeded.")
        logging.getLogger("sluice.handlers").info("Handler of nothing succeeded.")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "Handler 'services' failed temporarily: boom",
        "Activity 'startup' succeeded.",
        "Handler of nothing succeeded.",
    ]


def test_describe_step() -> None:
    assert logs.describe_step("Progressing", 1, 3, 25) == "Progressing 2/3 (25%)"
    assert logs.describe_step("Stable", None, 3, 0) == "Stable"
    assert logs.describe_step(None, None, 3, 0) == "New"


def test_the_log_format_setting_accepts_text_and_json_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_command_line([]).log_format == "text"
    monkeypatch.setenv("SLUICE_LOG_FORMAT", "JSON")
    assert Settings.from_command_line([]).log_format == "json"
    with pytest.raises(ValueError, match="log_format"):
        Settings.from_command_line(["--log-format", "xml"])


def test_no_request_url_of_httpx_is_logged_even_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    """A notification webhook's URL carries its token: httpx's request lines must never reach the log."""
    with configured("DEBUG", "json"):
        logging.getLogger("httpx").info('HTTP Request: POST https://hooks.example.com/T0/secret "HTTP/1.1 200 OK"')
        logging.getLogger("httpcore.connection").debug("connect_tcp.started host='hooks.example.com'")
        logging.getLogger("httpx").warning("a warning still shows")
    err = capsys.readouterr().err
    assert "hooks.example.com" not in err
    assert "a warning still shows" in err
