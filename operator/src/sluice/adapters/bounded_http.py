"""Bounded HTTP reads for everything the operator fetches that others wrote (a validation dataset, a canary's
answers, Prometheus' answers): bodies are read as they stream in and refused past a byte cap, never decompressed,
and an error says what failed in fixed words, never what was read."""

from __future__ import annotations

import httpx

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""A body larger than this is refused: a validation dataset, one canary answer, one Prometheus answer."""
IDENTITY = {"accept-encoding": "identity"}
"""Request headers asking for no compression: a byte cap on what is read must also bound what is held."""


class BodyTooLargeError(ValueError):
    """A body was larger than its cap, or compressed; the message names what and the cap, nothing read."""


async def read_capped(response: httpx.Response, max_bytes: int, what: str) -> bytes:
    """The body, read as it streams in, refused once it is larger than `max_bytes` (at most one network chunk
    past it is held)."""
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        raise BodyTooLargeError(f"{what} is compressed; only identity encoding is read")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError(f"{what} is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
