"""Log lines as text or JSON, each carrying the ModelDeployment being reconciled and its rollout step.

The reconcile loop of one ModelDeployment is one asyncio task; `reconciling(namespace, name)` and `at_step(step)`
set context variables in that task (worker threads started with asyncio.to_thread inherit them), and a filter
on the root handler copies them onto every record, so lines from sluice, Kopf or the Kubernetes client logged
while reconciling carry `namespace`, `name` and `step` (empty strings outside a reconcile).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

_NAMESPACE: ContextVar[str] = ContextVar("sluice_namespace", default="")
_NAME: ContextVar[str] = ContextVar("sluice_name", default="")
_STEP: ContextVar[str] = ContextVar("sluice_step", default="")
CONTEXT_FIELDS = ("namespace", "name", "step")
"""Keys of the JSON lines; the LogRecord attributes are `sluice_<key>` (a record's `name` is its logger's)."""
_ATTRIBUTES = tuple(f"sluice_{field}" for field in CONTEXT_FIELDS)


def reconciling(namespace: str, name: str) -> None:
    """Mark the current task as the reconcile loop of namespace/name (its step unknown until read)."""
    _NAMESPACE.set(namespace)
    _NAME.set(name)
    _STEP.set("")


def at_step(step: str) -> None:
    """The rollout step of the current reconcile, e.g. `Progressing 2/3 (25%)` or `Stable`."""
    _STEP.set(step)


def describe_step(phase: str | None, current_step: int | None, steps: int, weight: int) -> str:
    """`Progressing 2/3 (25%)`; just the phase when no step runs; `New` before the first status."""
    label = phase or "New"
    if current_step is None:
        return label
    return f"{label} {current_step + 1}/{steps} ({weight}%)"


class ContextFilter(logging.Filter):
    """Copy the reconcile context onto every record (never overriding an explicit `extra`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for attribute, variable in zip(_ATTRIBUTES, (_NAMESPACE, _NAME, _STEP), strict=True):
            if not hasattr(record, attribute):
                setattr(record, attribute, variable.get())
        return True


class QuietHandlerSuccess(logging.Filter):
    """Drop Kopf's `Handler '...' succeeded.` (INFO, one per watch event: sluice's handlers only wake a loop, so
    at INFO every child event of every rollout would log a line that says nothing); Kopf's warnings and errors,
    and everything else, pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not record.name.startswith("kopf."):
            return True
        message = record.getMessage()
        return not (message.startswith("Handler ") and message.endswith(" succeeded."))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, namespace, name, step, and
    `exception` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field, attribute in zip(CONTEXT_FIELDS, _ATTRIBUTES, strict=True):
            line[field] = str(getattr(record, attribute, ""))
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`<time> <level> <logger>: [namespace/name step] message`; no brackets outside a reconcile."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(where)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        namespace, name, step = (str(getattr(record, attribute, "")) for attribute in _ATTRIBUTES)
        where = f"{namespace}/{name}" if name else ""
        if step:
            where = f"{where} {step}" if where else step
        record.where = f"[{where}] " if where else ""
        return super().format(record)


def configure(level: str, log_format: LogFormat) -> None:
    """Log to stderr at `level` in `log_format` (replacing any handlers), Kopf at INFO or above, httpx and httpcore
    at WARNING or above: they log every request's URL, and a notification webhook's URL carries its token."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(QuietHandlerSuccess())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("kopf").setLevel(max(logging.INFO, logging.getLevelName(level)))
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
