"""spec.rollout.match in the pure core: when the HTTPRoute sends matched requests to the canary alone (from the first
live step until the rollout ends, a matched-only first step of 0 included), how those rules are rendered, and the
specs that cannot have them."""

from __future__ import annotations

import copy
import re
from typing import Any

from sluice.api.v1alpha1 import CookieMatch, GatewayTraffic, Phase, RouteMatch
from sluice.core.children import Owner, cookie_expression, http_route, steering_values
from sluice.core.validation import problems
from unit.core.support import ERRORING, HEALTHY, Simulation, at_first_step, deployed, make_spec

GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}
TESTERS: list[dict[str, Any]] = [
    {"headers": [{"name": "x-tester", "value": "yes"}]},
    {"cookie": {"name": "canary", "value": "always"}},
]
OWNER = Owner(name="fraud", namespace="ml", uid="u1")
IMAGE = "ghcr.io/sluice-dev/sluice-serving:0.1.0"


def matched(steps: list[int], **rollout: Any) -> Simulation:
    """Stable 1.0.0 behind a Gateway with the testers' matches and these steps (interval 1m)."""
    return deployed(
        make_spec("1.0.0", traffic=GATEWAY, rollout={"steps": steps, "interval": "1m", "match": TESTERS, **rollout})
    )


def routed_matches(simulation: Simulation) -> int:
    assert simulation.plan is not None
    return len(simulation.plan.canary_matches)


def test_matched_requests_go_to_the_canary_from_its_first_step_until_promotion_and_not_after() -> None:
    simulation = matched([20, 50])
    simulation.set_version("2.0.0")
    simulation.reconcile()
    assert simulation.status.phase is Phase.PROGRESSING
    assert routed_matches(simulation) == 0, "the canary is not ready: nothing goes to it"
    simulation.reconcile()
    assert (simulation.status.current_step, routed_matches(simulation)) == (0, 2)
    simulation.check(HEALTHY)
    assert (simulation.status.canary_weight, routed_matches(simulation)) == (50, 2)
    simulation.paused = True
    simulation.reconcile()
    assert (simulation.status.phase, routed_matches(simulation)) == (Phase.PAUSED, 2)
    simulation.paused = False
    simulation.reconcile()
    simulation.check(HEALTHY)
    assert (simulation.status.phase, routed_matches(simulation)) == (Phase.PROMOTING, 2)
    plan = simulation.reconcile()
    assert (plan.status.phase, plan.canary_weight, routed_matches(simulation)) == (Phase.STABLE, 0, 0), "together"


def test_a_rollback_removes_the_matches_in_the_same_plan_as_the_weight() -> None:
    simulation = matched([20, 50])
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.reconcile()
    plan = simulation.check(ERRORING)
    assert plan.status.phase is Phase.ROLLED_BACK
    assert (plan.canary_weight, plan.canary_matches) == (0, ())


def test_a_first_step_of_zero_serves_the_matched_requests_alone_and_is_checked_like_any_step() -> None:
    simulation = matched([0, 50])
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.reconcile()
    assert (simulation.status.current_step, simulation.status.canary_weight, routed_matches(simulation)) == (0, 0, 2)
    assert "CanaryReady" in simulation.event_reasons()
    simulation.check(HEALTHY)
    assert (simulation.status.current_step, simulation.status.canary_weight) == (1, 50)


def test_no_matches_are_routed_before_the_canary_passed_its_gates() -> None:
    shadow = {"percent": 50, "checks": 1, "minAgreement": 0.9}
    simulation = matched([10], shadow=shadow)
    simulation.set_version("2.0.0")
    simulation.reconcile()
    simulation.reconcile()
    assert simulation.status.phase is Phase.SHADOWING
    assert routed_matches(simulation) == 0
    simulation.check(HEALTHY)
    assert (simulation.status.phase, simulation.status.current_step, routed_matches(simulation)) == (
        Phase.PROGRESSING,
        0,
        2,
    )


def test_without_matches_the_plan_routes_none() -> None:
    simulation = at_first_step(make_spec("1.0.0", traffic=GATEWAY))
    assert routed_matches(simulation) == 0


def test_match_needs_a_gateway_and_a_first_step_of_zero_needs_a_match() -> None:
    without_gateway = make_spec("1.0.0", rollout={"steps": [10], "match": TESTERS})
    assert any("spec.rollout.match needs spec.traffic.gateway" in p for p in problems("fraud", without_gateway, IMAGE))
    zero_alone = make_spec("1.0.0", traffic=GATEWAY, rollout={"steps": [0, 10]})
    assert any("a first step of 0" in p for p in problems("fraud", zero_alone, IMAGE))
    fine = make_spec("1.0.0", traffic=GATEWAY, rollout={"steps": [0, 10], "match": TESTERS})
    assert problems("fraud", fine, IMAGE) == []


def route_with(matches: list[dict[str, Any]], weight: int = 20) -> dict[str, Any]:
    gateway = GatewayTraffic.model_validate({"parentRefs": [{"name": "public"}]})
    return http_route(OWNER, gateway, weight, matches=[RouteMatch.model_validate(m) for m in matches])


def test_each_match_is_a_rule_before_the_weighted_one_sending_the_models_paths_to_the_canary_alone() -> None:
    match = {
        "headers": [
            {"name": "x-tester", "value": "yes"},
            {"name": "x-team", "value": "ml-.*", "type": "RegularExpression"},
        ],
        "queryParams": [{"name": "canary", "value": "1"}],
    }
    rules = route_with([match, {"cookie": {"name": "canary", "value": "always"}}])["spec"]["rules"]
    assert len(rules) == 3
    weighted = rules[-1]
    assert weighted["backendRefs"] == [
        {"name": "fraud", "port": 80, "weight": 80},
        {"name": "fraud-canary", "port": 80, "weight": 20},
    ]
    for rule in rules[:2]:
        assert rule["backendRefs"] == [{"name": "fraud-canary", "port": 80, "weight": 100}]
        assert [m["path"] for m in rule["matches"]] == [m["path"] for m in weighted["matches"]]
    first = rules[0]["matches"][0]
    assert first["headers"] == [
        {"type": "Exact", "name": "x-tester", "value": "yes"},
        {"type": "RegularExpression", "name": "x-team", "value": "ml-.*"},
    ]
    assert first["queryParams"] == [{"type": "Exact", "name": "canary", "value": "1"}]
    cookie = rules[1]["matches"][0]
    assert cookie["headers"] == [
        {"type": "RegularExpression", "name": "Cookie", "value": r"^(.*;\s*)?canary=always(;.*)?$"}
    ]
    assert "queryParams" not in cookie


def test_the_cookie_expression_finds_the_cookie_among_others_and_nothing_like_it() -> None:
    expression = re.compile(cookie_expression(CookieMatch(name="tier", value="beta.1")))
    for header in ("tier=beta.1", "a=1; tier=beta.1", "tier=beta.1;b=2", "a=1;  tier=beta.1; b=2"):
        assert expression.search(header), header
        assert expression.fullmatch(header), f"{header}: Gateways matching the whole value agree"
    for header in ("tier=beta.12", "xtier=beta.1", "tier=betax1", "a=tier=beta.1", "tier=beta", "a=1; tier=beta"):
        assert not expression.search(header), header


def test_an_untouched_match_route_steers_alike_and_an_edited_header_or_dropped_rule_does_not() -> None:
    route = route_with(TESTERS)
    defaulted = copy.deepcopy(route)  # what the API server returns: backendRef defaults filled in
    for rule in defaulted["spec"]["rules"]:
        for ref in rule["backendRefs"]:
            ref.update(group="", kind="Service")
    assert steering_values(route) == steering_values(defaulted)
    edited = copy.deepcopy(defaulted)
    edited["spec"]["rules"][0]["matches"][0]["headers"][0]["value"] = "anyone"
    assert steering_values(route) != steering_values(edited)
    dropped = copy.deepcopy(defaulted)
    del dropped["spec"]["rules"][1]["matches"][2]["headers"]
    assert steering_values(route) != steering_values(dropped)
    unmatched = copy.deepcopy(defaulted)
    unmatched["spec"]["rules"] = unmatched["spec"]["rules"][-1:]
    assert steering_values(route) != steering_values(unmatched)
