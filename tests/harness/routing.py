"""Which rule of an HTTPRoute a request takes, as Gateway API defines it (the HTTPRouteRule `matches` docs).

A match applies when its path (Exact: the whole path; PathPrefix: whole segments of it), its method, every header
(names case-insensitive) and every query parameter do; a RegularExpression value is searched for, as Go's regexp
does for Traefik (anchor with `^...$` for a whole-value match). Of the matches that apply, the one with precedence
wins, continuing on ties: an Exact path, the longest PathPrefix, a method, the most headers, the most query
parameters, then the first rule in list order. A rule without matches matches every path (prefix `/`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EVERY_PATH: dict[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}}
"""The match of a rule that lists none (Gateway API's default)."""


@dataclass(frozen=True)
class Request:
    """What routing looks at: the path, the method, the headers and the query parameters."""

    path: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


def _path_applies(path_match: Mapping[str, Any], path: str) -> bool:
    kind, value = path_match.get("type", "PathPrefix"), str(path_match.get("value", "/"))
    if kind == "Exact":
        return path == value
    prefix = value.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or prefix == ""


def _value_applies(condition: Mapping[str, Any], actual: str | None) -> bool:
    if actual is None:
        return False
    if condition.get("type", "Exact") == "RegularExpression":
        return re.search(str(condition["value"]), actual) is not None
    return actual == str(condition["value"])


def applies(match: Mapping[str, Any], request: Request) -> bool:
    """Whether every condition of one HTTPRoute match holds for the request."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    return (
        _path_applies(match.get("path") or EVERY_PATH["path"], request.path)
        and match.get("method", request.method) == request.method
        and all(_value_applies(h, headers.get(h["name"].lower())) for h in match.get("headers") or [])
        and all(_value_applies(q, request.query.get(q["name"])) for q in match.get("queryParams") or [])
    )


def precedence(match: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """Gateway API's order among matches that apply: higher wins."""
    path = match.get("path") or EVERY_PATH["path"]
    exact = path.get("type") == "Exact"
    return (
        int(exact),
        0 if exact else len(path.get("value", "/")),
        int("method" in match),
        len(match.get("headers") or []),
        len(match.get("queryParams") or []),
    )


def select_rule(rules: Sequence[Mapping[str, Any]], request: Request) -> Mapping[str, Any] | None:
    """The rule the request takes; None when no rule's match applies (a Gateway answers 404)."""
    candidates = [
        (precedence(match), -index)
        for index, rule in enumerate(rules)
        for match in rule.get("matches") or [EVERY_PATH]
        if applies(match, request)
    ]
    if not candidates:
        return None
    _, negative_index = max(candidates)
    return rules[-negative_index]
