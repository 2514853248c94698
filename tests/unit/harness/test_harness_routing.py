"""The harness's Gateway stand-in picks an HTTPRoute rule as Gateway API says: the match with precedence (Exact
path, longest prefix, method, most headers, most query parameters), then the first rule."""

from __future__ import annotations

from harness.routing import Request, select_rule
from sluice.api.v1alpha1 import GatewayTraffic, RouteMatch
from sluice.core.children import Owner, http_route

INFER = "/v2/models/fraud/infer"


def rule(name: str, *matches: dict[str, object]) -> dict[str, object]:
    return {"name": name, "matches": list(matches)}


def prefix(value: str, **conditions: object) -> dict[str, object]:
    return {"path": {"type": "PathPrefix", "value": value}, **conditions}


def header(name: str, value: str, kind: str = "Exact") -> dict[str, str]:
    return {"type": kind, "name": name, "value": value}


def chosen(rules: list[dict[str, object]], request: Request) -> object:
    selected = select_rule(rules, request)
    return None if selected is None else selected["name"]


def test_a_match_with_more_headers_wins_over_an_earlier_rule_with_fewer() -> None:
    rules = [
        rule("weighted", prefix("/v2/models/fraud")),
        rule("testers", prefix("/v2/models/fraud", headers=[header("x-tester", "yes")])),
    ]
    assert chosen(rules, Request(INFER, headers={"X-Tester": "yes"})) == "testers", "header names are case-insensitive"
    assert chosen(rules, Request(INFER, headers={"x-tester": "no"})) == "weighted"
    assert chosen(rules, Request(INFER)) == "weighted"


def test_path_precedence_comes_before_headers_and_ties_go_to_the_first_rule() -> None:
    rules = [
        rule("short", prefix("/v2", headers=[header("x-tester", "yes")])),
        rule("long", prefix("/v2/models/fraud")),
        rule("exact", {"path": {"type": "Exact", "value": INFER}}),
        rule("exact-too", {"path": {"type": "Exact", "value": INFER}}),
    ]
    assert chosen(rules, Request(INFER, headers={"x-tester": "yes"})) == "exact"
    assert chosen(rules, Request("/v2/models/fraud/ready", headers={"x-tester": "yes"})) == "long"
    assert chosen(rules, Request("/v2/health/ready", headers={"x-tester": "yes"})) == "short"
    assert chosen(rules, Request("/v1/models/fraud")) is None


def test_query_parameters_and_regular_expressions_count_as_gateways_read_them() -> None:
    rules = [
        rule("weighted", prefix("/v2/models/fraud")),
        rule("query", prefix("/v2/models/fraud", queryParams=[header("canary", "1")])),
        rule("regex", prefix("/v2/models/fraud", headers=[header("x-team", "^ml-", "RegularExpression")])),
    ]
    assert chosen(rules, Request(INFER, query={"canary": "1"})) == "query"
    assert chosen(rules, Request(INFER, headers={"x-team": "ml-ops"})) == "regex"
    assert chosen(rules, Request(INFER, headers={"x-team": "data-ml-ops"})) == "weighted"


def test_the_operators_match_rules_take_matched_requests_and_leave_the_others_to_the_weights() -> None:
    gateway = GatewayTraffic.model_validate({"parentRefs": [{"name": "public"}]})
    matches = [RouteMatch.model_validate({"cookie": {"name": "tier", "value": "beta"}})]
    rules = http_route(Owner("fraud", "ml", "u1"), gateway, 0, matches=matches)["spec"]["rules"]
    to_canary = select_rule(rules, Request(INFER, headers={"Cookie": "a=1; tier=beta"}))
    assert to_canary is not None
    assert to_canary["backendRefs"] == [{"name": "fraud-canary", "port": 80, "weight": 100}]
    for cookie in ("a=1; tier=betamax", "xtier=beta"):
        assert select_rule(rules, Request(INFER, headers={"Cookie": cookie})) is rules[-1], cookie
