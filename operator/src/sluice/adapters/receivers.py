"""The notification receivers: the one Secret the admin names (chart value notifications.secretName), read by name
with `get` (the only Secret the operator may read) and kept for `SECRET_TTL_SECONDS`.

Each key `<receiver>` holds that receiver's webhook URL (http or https); an optional key `<receiver>.format` holds
its body format, `cloudevents` (the default) or `slack`. An entry with another name, URL or format is left out,
unlogged: a URL carries its token, so no URL is ever logged, written to status or posted in an Event.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kubernetes.client.exceptions import ApiException

from sluice.api.v1alpha1 import RECEIVER_PATTERN
from sluice.core.notification_bodies import BodyFormat
from sluice.core.notifications import ReceiverBook

log = logging.getLogger(__name__)

SECRET_TTL_SECONDS = 30.0
"""How long a reading of the Secret is used: a changed URL is picked up within this."""
MAX_RECEIVERS = 32
MAX_URL_LENGTH = 2048
FORMAT_SUFFIX = ".format"


@dataclass(frozen=True)
class Receiver:
    name: str
    url: str = field(repr=False)
    body_format: BodyFormat


@dataclass(frozen=True)
class Receivers:
    """The Secret's receivers by name, or why there are none (a fixed text)."""

    by_name: Mapping[str, Receiver] = field(default_factory=dict)
    problem: str | None = None

    def book(self) -> ReceiverBook:
        return ReceiverBook(frozenset(self.by_name), self.problem)


def parse_receivers(data: Mapping[str, str]) -> dict[str, Receiver]:
    """The valid receivers of a Secret's `data` (base64 values), at most MAX_RECEIVERS, in name order."""
    decoded = {key: _decode(value) for key, value in data.items()}
    found: dict[str, Receiver] = {}
    for name in sorted(decoded):
        url = decoded[name]
        if re.fullmatch(RECEIVER_PATTERN, name) is None or len(name) > 63 or url is None or not _is_webhook(url):
            continue
        try:
            body_format = BodyFormat((decoded.get(name + FORMAT_SUFFIX) or BodyFormat.CLOUDEVENTS).strip().lower())
        except ValueError:
            continue
        found[name] = Receiver(name, url, body_format)
        if len(found) == MAX_RECEIVERS:
            break
    return found


def _decode(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _is_webhook(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return len(url) <= MAX_URL_LENGTH and parts.scheme in ("http", "https") and bool(parts.hostname)


class SecretReceivers:
    """The receivers of one Secret, read through `get` (KubeApi.get) at most every `ttl` seconds."""

    def __init__(
        self,
        get: Callable[[str], Awaitable[dict[str, Any] | None]] | None,
        namespace: str,
        name: str,
        ttl: float = SECRET_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._get, self._namespace, self._name = get, namespace, name
        self._ttl, self._clock = ttl, clock
        self._read_at: float | None = None
        self._receivers = Receivers(problem="the operator has no notification Secret (notifications.secretName)")

    async def read(self) -> Receivers:
        if self._get is None or not self._name:
            return self._receivers
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._ttl:
            self._receivers, self._read_at = await self._read(self._get), now
        return self._receivers

    async def _read(self, get: Callable[[str], Awaitable[dict[str, Any] | None]]) -> Receivers:
        where = f"the notification Secret {self._namespace}/{self._name}"
        try:
            secret = await get(f"/api/v1/namespaces/{self._namespace}/secrets/{self._name}")
        except ApiException as error:
            log.warning("%s could not be read: HTTP %s", where, error.status)
            return Receivers(problem=f"{where} could not be read (HTTP {error.status})")
        except Exception as error:  # a timeout, a refused connection: try again after the ttl
            log.warning("%s could not be read: %s", where, type(error).__name__)
            return Receivers(problem=f"{where} could not be read ({type(error).__name__})")
        if secret is None:
            return Receivers(problem=f"{where} does not exist")
        return Receivers(parse_receivers(secret.get("data") or {}))
