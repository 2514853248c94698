"""Bounded HTTP reads for everything the operator fetches that others wrote (a validation dataset, a canary's
answers, Prometheus' answers): bodies are read as they stream in and refused past a byte cap or a deadline, never
decompressed, redirects never followed, and an error says what failed in fixed words, never what was read.
`read_capped` serves httpx (the validation gate); `capped_session` serves requests, under prometheus-api-client."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import httpx
import requests

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""A body larger than this is refused: a validation dataset, one canary answer, one Prometheus answer."""
IDENTITY = {"accept-encoding": "identity"}
"""Request headers asking for no compression: a byte cap on what is read must also bound what is held."""


class RefusedAnswerError(ValueError):
    """An answer refused unread: larger than its cap, compressed, or a redirect; the message names what and why,
    nothing read."""


async def read_capped(response: httpx.Response, max_bytes: int, what: str) -> bytes:
    """The body, read as it streams in, refused once it is larger than `max_bytes` (at most one network chunk
    past it is held)."""
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        raise RefusedAnswerError(f"{what} is compressed; only identity encoding is read")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > max_bytes:
            raise RefusedAnswerError(f"{what} is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def capped_session(max_bytes: int, timeout: float, what: str) -> requests.Session:
    """A requests session whose every answer is read as it streams in, before the caller sees it: refused past
    `max_bytes`, past `timeout` seconds from the request's start, when compressed, or when it is a redirect (none
    is followed). A response hook runs before requests reads a body, so nothing larger is ever held."""
    session = requests.Session()
    session.headers.update(IDENTITY)
    session.hooks["response"].append(partial(_read_within_bounds, max_bytes=max_bytes, timeout=timeout, what=what))
    return session


def _read_within_bounds(
    response: requests.Response, *_args: Any, max_bytes: int, timeout: float, what: str, **_kwargs: Any
) -> requests.Response:
    deadline = time.monotonic() - response.elapsed.total_seconds() + timeout
    try:
        response._content = _body_within_bounds(response, max_bytes, deadline, timeout, what)
    except Exception:
        response.close()
        raise
    return response


def _body_within_bounds(
    response: requests.Response, max_bytes: int, deadline: float, timeout: float, what: str
) -> bytes:
    if response.is_redirect:
        raise RefusedAnswerError(f"{what} is a redirect (HTTP {response.status_code}); redirects are not followed")
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        raise RefusedAnswerError(f"{what} is compressed; only identity encoding is read")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.raw.stream(64 * 1024, decode_content=False):
        size += len(chunk)
        if size > max_bytes:
            raise RefusedAnswerError(f"{what} is larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise requests.exceptions.Timeout(f"{what} took longer than {timeout:g}s")
        chunks.append(chunk)
    return b"".join(chunks)
