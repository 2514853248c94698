"""spec.rollout.match: requests (by header, cookie or query parameter) the HTTPRoute sends to the canary alone."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.meta import ApiModel, cel

MAX_MATCHES = 8
"""Match rules a rollout may add to the HTTPRoute (Gateway API allows 16 rules; one is the weighted rule)."""
MAX_CONDITIONS = 8
"""Headers (or query parameters) one match may require, all of them (Gateway API allows 16)."""
TOKEN_PATTERN = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"
"""An HTTP header or query parameter name, as Gateway API's HTTPHeaderName (RFC 7230 token characters)."""
COOKIE_PATTERN = r"^[A-Za-z0-9_.-]+$"
"""A cookie name or value the `cookie` form takes: letters, digits, `_`, `.` and `-` (no regular expression
meta-characters but `.`, which the rendered expression escapes)."""


class MatchType(StrEnum):
    """How a header or query parameter value is compared, as in Gateway API."""

    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"
    """The Gateway's own regular-expression dialect (RE2 for Envoy-based Gateways, Go's regexp for Traefik)."""


class ValueMatch(ApiModel):
    """One header or query parameter a request must carry."""

    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=TOKEN_PATTERN,
        description="Header (case-insensitive) or query parameter (case-sensitive) name.",
        examples=["x-canary"],
    )
    value: str = Field(min_length=1, max_length=512, description="The value, or a regular expression.")
    type: MatchType = Field(
        default=MatchType.EXACT, description="Exact (when left out) or RegularExpression (the Gateway's dialect)."
    )


class CookieMatch(ApiModel):
    """A cookie the request must carry, rendered as a RegularExpression match on the Cookie header."""

    name: str = Field(min_length=1, max_length=64, pattern=COOKIE_PATTERN, examples=["tester"])
    value: str = Field(min_length=1, max_length=256, pattern=COOKIE_PATTERN, examples=["yes"])


def _all_of(what: str) -> Any:
    """The field of a match's headers or query parameters: a short list keyed by name."""
    return Field(
        default=None,
        min_length=1,
        max_length=MAX_CONDITIONS,
        description=f"{what} the request must carry, all of them (names unique).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class RouteMatch(ApiModel):
    """Requests that go to the canary alone while it serves live steps: every header, the cookie and every query
    parameter given must match (an HTTPRoute match, combined with the model's own paths)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.headers) || has(self.cookie) || has(self.queryParams)",
                    "a match needs at least one of headers, cookie and queryParams",
                ),
                cel(
                    "!has(self.cookie) || !has(self.headers) "
                    "|| !self.headers.exists(h, h.name.matches('^[Cc][Oo][Oo][Kk][Ii][Ee]$'))",
                    "a match with a cookie may not also match the Cookie header",
                    ".cookie",
                ),
            ]
        }
    )

    headers: list[ValueMatch] | None = _all_of("Headers")
    cookie: CookieMatch | None = Field(
        default=None,
        description="A cookie `name=value` the request must carry: a RegularExpression match on the Cookie header "
        "(`^(.*;\\s*)?name=value(;.*)?$`).",
    )
    query_params: list[ValueMatch] | None = _all_of("Query parameters")
