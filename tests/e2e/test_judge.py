"""Why compareToStable exists, end to end: a stable version that itself fails 3% of its requests, and a canary that
fails 8% (5 points worse). An absolute `maxErrorRate: 10%` passes that canary; `compareToStable.maxErrorRateIncrease`
rolls it back, from the two tracks' real request counts in Prometheus (real `sluice-serving` processes with
`SLUICE_FAULT_ERROR_RATE`, the real operator and its PromQL, nothing mocked).

Timing: steps [50, 80] every 20 s at 60 requests/s, so each check's window holds hundreds of canary requests: the
absolute check's 8% against its 10% bound is then rarely unlucky (and `maxFailedChecks: 3` absorbs that), and the
judge needs about 700 canary requests (docs/judge.md) to call the canary worse: under a minute at 30 requests/s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from e2e.support import TIMEOUT, Scenario, finished
from harness.dataplane import LoadGenerator
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from unit.serving.support import rows_body

pytestmark = pytest.mark.e2e

FAULTS = {"1.0.0": {"SLUICE_FAULT_ERROR_RATE": "0.03"}, "2.0.0": {"SLUICE_FAULT_ERROR_RATE": "0.08"}}
ABSOLUTE = {"maxErrorRate": 0.1, "maxFailedChecks": 3}
RELATIVE = {**ABSOLUTE, "compareToStable": {"maxErrorRateIncrease": 0.02}}


def deploy_stable(scenario: Scenario, analysis: dict[str, Any]) -> None:
    spec = scenario.spec("1.0.0", **analysis)
    spec["rollout"] = {"steps": [50, 80], "interval": "20s", "progressDeadline": "2m"}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": scenario.name}}
    scenario.custom.create_namespaced_custom_object(GROUP, VERSION, scenario.namespace, PLURAL, {**body, "spec": spec})
    scenario.wait(
        lambda: (
            scenario.status().get("phase") == "Stable" and scenario.dataplane.ready_versions()[("1.0.0", "stable")] >= 1
        ),
        "1.0.0 Stable with a ready serving process",
    )


def roll_out(scenario: Scenario, outcome: str) -> dict[str, Any]:
    """Roll 2.0.0 out under 60 requests/s until the rollout ends with `outcome`; the history entry."""
    body = rows_body(scenario.model.rows[:1], "FP32")
    with LoadGenerator(scenario.dataplane, scenario.name, body, rate=60.0, duration=TIMEOUT + 240):
        scenario.set_version("2.0.0")
        scenario.follow(finished(outcome), f"2.0.0 {outcome}", timeout=TIMEOUT + 120)
    entry: dict[str, Any] = scenario.status()["history"][-1]
    return entry


def test_a_canary_5_points_worse_than_a_stable_failing_3_percent_is_rolled_back_by_the_relative_bound(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory(FAULTS)
    deploy_stable(scenario, RELATIVE)
    entry = roll_out(scenario, "RolledBack")
    assert (entry["version"], entry["reason"]) == ("2.0.0", "AnalysisFailed"), entry
    assert "worse than maxErrorRateIncrease 2 points" in entry["message"], entry
    check = scenario.status()["lastCheck"]
    increase = next(metric for metric in check["metrics"] if metric["name"] == "errorRateIncrease")
    assert increase["verdict"] == "Failed", increase
    assert increase["lower"] > 0.02, increase
    assert increase["canaryRequests"] > 0, increase
    assert increase["stableRequests"] > 0, increase


def test_the_same_canary_judged_by_max_error_rate_alone_is_promoted(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory(FAULTS)
    deploy_stable(scenario, ABSOLUTE)
    entry = roll_out(scenario, "Promoted")
    assert entry["version"] == "2.0.0", entry
    assert scenario.status()["stableVersion"] == "2.0.0"
