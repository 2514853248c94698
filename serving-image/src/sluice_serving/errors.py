"""What a refused request is, and the bounds on string data, shared by the REST and gRPC paths."""

from __future__ import annotations

from typing import NamedTuple


class StringLimits(NamedTuple):
    """Bounds on BYTES (string) tensor data: characters in one string and in all strings of one tensor."""

    per_string: int = 65_536
    total: int = 1 << 20


DEFAULT_STRING_LIMITS = StringLimits()


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status and the message goes in `error`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
