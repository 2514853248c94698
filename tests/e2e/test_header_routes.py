"""Header and cookie routes end to end (spec.rollout.match): matched requests reach only the canary, from its
first live step to promotion; the others follow the weights. Same harness as test_canary_rollouts (the real control
plane with kwok pods, the real operator, real `sluice-serving` processes, the real Prometheus); the load generator
plays the Gateway, taking the HTTPRoute rule Gateway API's precedence selects for each request (`harness.routing`).

Steps [0, 50] every 12 s: a first step in which the canary serves the testers alone (header `x-tester: yes`, or the
cookie `tier=beta`), then half the others. Three clients send all along: testers by header, testers by cookie, and
everyone else (with a cookie that is almost the testers' one). Each step is sampled over a window well inside it
(from 1 s after the status shows the step and the canary's process serves, for 2.5 s; a step lasts at least 12 s).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, cast

import pytest

from e2e.support import TIMEOUT, Scenario, finished
from harness.dataplane import LoadGenerator
from unit.serving.support import rows_body

pytestmark = pytest.mark.e2e

INTERVAL_SECONDS = 12
MATCH = [{"headers": [{"name": "x-tester", "value": "yes"}]}, {"cookie": {"name": "tier", "value": "beta"}}]
WINDOW_SECONDS = 2.5
CLIENTS = {
    "header": {"x-tester": "yes"},
    "cookie": {"Cookie": "session=1; tier=beta"},
    "others": {"Cookie": "session=2; tier=betamax"},
}


class Matched(Scenario):
    """The canary-rollout scenario with the testers' matches and a matched-only first step."""

    def spec(self, version: str, **analysis: Any) -> dict[str, Any]:
        spec = super().spec(version, **analysis)
        spec["rollout"].update(steps=[0, 50], interval=f"{INTERVAL_SECONDS}s", match=MATCH)
        return spec


def served(generators: dict[str, LoadGenerator]) -> dict[str, Counter[str]]:
    """Answered requests so far, per client and version."""
    return {
        client: Counter({version: count for (version, code), count in g.stats.by_version.items() if code == 200})
        for client, g in generators.items()
    }


def sample_step(scenario: Matched, generators: dict[str, LoadGenerator], step: int) -> dict[str, Counter[str]]:
    """What each client was served over a window inside `step` (failing if the step ended during it)."""
    scenario.wait(lambda: scenario.status().get("currentStep") == step, f"step {step + 1}", timeout=90)
    scenario.wait(lambda: scenario.dataplane.ready_versions()[("2.0.0", "canary")] >= 1, "the canary serving")
    time.sleep(1.0)  # the load generators see the route's change within 0.5 s
    before = served(generators)
    time.sleep(WINDOW_SECONDS)
    after = served(generators)
    assert scenario.status().get("currentStep") == step, f"step {step + 1} ended inside its sampling window"
    return {client: after[client] - before[client] for client in generators}


def route_rules(scenario: Scenario) -> list[dict[str, Any]]:
    route = scenario.custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", scenario.namespace, "httproutes", scenario.name
    )
    return cast(list[dict[str, Any]], cast(dict[str, Any], route)["spec"]["rules"])


def test_matched_requests_reach_only_the_canary_and_the_others_follow_the_weights(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    base = scenario_factory({})
    scenario = Matched(base.api_client, base.namespace, base.operator, base.dataplane, base.model)
    scenario.start_stable("1.0.0")
    body = rows_body(scenario.model.rows[:1], "FP32")
    with ExitStack() as clients:
        generators = {
            client: clients.enter_context(
                LoadGenerator(scenario.dataplane, scenario.name, body, rate=10.0, duration=TIMEOUT, headers=headers)
            )
            for client, headers in CLIENTS.items()
        }
        scenario.set_version("2.0.0")
        testers_only = sample_step(scenario, generators, 0)
        rules = route_rules(scenario)
        half = sample_step(scenario, generators, 1)
        scenario.follow(lambda s: finished("Promoted")(s) and s.get("phase") == "Stable", "2.0.0 promoted")

    assert len(rules) == 3, "one rule per match before the weighted one"
    for client in ("header", "cookie"):
        assert set(testers_only[client]) == {"2.0.0"}, (client, testers_only)
        assert set(half[client]) == {"2.0.0"}, (client, half)
    assert set(testers_only["others"]) == {"1.0.0"}, testers_only
    assert set(half["others"]) == {"1.0.0", "2.0.0"}, half
    assert len(route_rules(scenario)) == 1, "the matches go with the promotion"
