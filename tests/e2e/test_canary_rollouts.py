"""Canary rollouts end to end: the real control plane (kwok pods), the real `sluice-operator` subprocess (least
privilege, behind the counting proxy), real `sluice-serving` processes standing in for the pods
(`harness.dataplane`), the real Prometheus scraping them, and a load generator splitting traffic by the HTTPRoute.

Scenarios: a good version promoted through every step; a version failing half its requests and a slow version
rolled back on their own metrics; no traffic never promoted; Prometheus unreachable never promoted (rolled back
as AnalysisErrored); the operator SIGKILLed at the second step and restarted continues from there; manual promote,
promote-full and abort through the `sluice.dev/action` and `sluice.dev/action-id` annotations. Last, with the
operator under the Helm chart's identity instead (its rendered RBAC applied, its ServiceAccount's token, its env):
one ModelDeployment promotes a good version, then rolls back a bad one, and the operator is never Forbidden.

Timing: interval 5 s, steps [20, 50], minRequests 10. The bad and slow versions fail on their own metrics, through
the operator's PromQL, with nothing mocked.

Rollback bound for a failing version (from its first step's start, `status.stepStartedAt`, to canary weight 0):
a check is due one interval after the step starts and reads the last interval; a failed check rolls back at
once (maxFailedChecks 1). A kwok pod is Ready before its stand-in process has loaded the model, so the first
check may see too few requests and be Inconclusive (onInconclusive Hold: it waits one more interval). Bound:
2 x interval + 10 s (scrape every 1 s, file-SD refresh, reconcile and polling slack) = 20 s.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable

import pytest

from e2e.support import (
    CHART_IDENTITY,
    INTERVAL_SECONDS,
    ROLLBACK_BOUND_SECONDS,
    STEPS,
    UNREACHABLE_PROMETHEUS,
    Scenario,
    finished,
    load,
)
from integration.operator_support import condition
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.e2e


def test_a_good_version_is_promoted_through_every_step(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({})
    scenario.start_stable("1.0.0")
    with load(scenario) as generator:
        scenario.set_version("2.0.0")
        timeline = scenario.follow(
            lambda s: finished("Promoted")(s) and s.get("phase") == "Stable", "2.0.0 promoted", timeout=90
        )
    status = scenario.status()
    assert status["stableVersion"] == "2.0.0"
    assert status["history"][-1]["version"] == "2.0.0"
    assert [w for w in timeline.weights if w > 0][:2] == STEPS, f"every step in order: {timeline.weights}"
    assert condition(scenario.get(), "Progressing").get("reason") == "Promoted"
    assert scenario.route_weights()[f"{scenario.name}-canary"] == 0
    served = generator.stats.by_version
    assert served[("2.0.0", 200)] > 0, served
    assert served[("1.0.0", 200)] > 0, served
    assert not [key for key in served if key[1] != 200], served


def test_a_version_with_half_its_requests_failing_is_rolled_back_within_the_bound(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({"2.0.0-bad": {"SLUICE_FAULT_ERROR_RATE": "0.5"}})
    scenario.start_stable("1.0.0")
    with load(scenario) as generator:
        scenario.set_version("2.0.0-bad")
        timeline = scenario.follow(lambda s: finished("RolledBack")(s) and s.get("phase") == "RolledBack", "rollback")
    status = scenario.status()
    entry = status["history"][-1]
    assert (entry["version"], entry["reason"]) == ("2.0.0-bad", "AnalysisFailed"), entry
    assert "error rate" in entry["message"], entry
    assert "above maxErrorRate" in entry["message"], entry
    assert "error rate" in condition(scenario.get(), "Progressing")["message"]
    assert status["stableVersion"] == "1.0.0"
    assert scenario.route_weights()[f"{scenario.name}-canary"] == 0
    assert max(timeline.weights) == STEPS[0], f"never past the first step: {timeline.weights}"
    print(f"bad version: first step to weight 0 in {timeline.seconds_to_zero:.1f} s (bound {ROLLBACK_BOUND_SECONDS} s)")
    assert timeline.seconds_to_zero <= ROLLBACK_BOUND_SECONDS
    assert generator.stats.by_version[("2.0.0-bad", 500)] > 0, generator.stats.by_version


def test_a_slow_version_is_rolled_back_on_p99_latency(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({"2.0.0-slow": {"SLUICE_FAULT_LATENCY": "0.3"}})
    scenario.start_stable("1.0.0", maxLatencyP99="100ms")
    with load(scenario):
        scenario.set_version("2.0.0-slow")
        timeline = scenario.follow(lambda s: finished("RolledBack")(s) and s.get("phase") == "RolledBack", "rollback")
    entry = scenario.status()["history"][-1]
    assert (entry["version"], entry["reason"]) == ("2.0.0-slow", "AnalysisFailed"), entry
    assert "latency" in entry["message"].lower(), entry
    assert "maxLatencyP99" in entry["message"], entry
    assert "error rate" not in entry["message"], entry
    print(
        f"slow version: first step to weight 0 in {timeline.seconds_to_zero:.1f} s (bound {ROLLBACK_BOUND_SECONDS} s)"
    )
    assert timeline.seconds_to_zero <= ROLLBACK_BOUND_SECONDS


def test_a_canary_without_traffic_is_never_promoted(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({})
    scenario.start_stable("1.0.0")
    scenario.set_version("2.0.0")
    scenario.wait(lambda: scenario.status().get("canaryWeight") == STEPS[0], "the first step")
    observe_until = time.monotonic() + 5 * INTERVAL_SECONDS
    seen: set[int] = set()
    while time.monotonic() < observe_until:
        status = scenario.status()
        seen.add(int(status.get("canaryWeight", 0)))
        assert status.get("phase") == "Progressing", status
        time.sleep(0.5)
    status = scenario.status()
    assert seen == {STEPS[0]}, seen
    assert status["stableVersion"] == "1.0.0"
    assert status["passedChecks"] == 0
    assert status["inconclusiveChecks"] >= 3, status
    assert status["lastCheck"]["verdict"] == "Inconclusive", status["lastCheck"]
    assert condition(scenario.get(), "Progressing").get("reason") == "InconclusiveHold"
    assert not any(entry["outcome"] == "Promoted" for entry in status.get("history") or [])


def test_a_canary_is_not_promoted_while_prometheus_cannot_answer(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({})
    scenario.start_stable("1.0.0", prometheus={"url": UNREACHABLE_PROMETHEUS}, maxConsecutiveErrors=2)
    with load(scenario) as generator:
        scenario.set_version("2.0.0")
        timeline = scenario.follow(lambda s: finished("RolledBack")(s) and s.get("phase") == "RolledBack", "rollback")
    status = scenario.status()
    entry = status["history"][-1]
    assert (entry["version"], entry["reason"]) == ("2.0.0", "AnalysisErrored"), entry
    assert status["stableVersion"] == "1.0.0"
    assert status["passedChecks"] == 0
    assert status["lastCheck"]["verdict"] == "Errored", status["lastCheck"]
    assert max(timeline.weights) == STEPS[0], timeline.weights
    assert generator.stats.by_version[("2.0.0", 200)] > 0, "the canary had traffic; only its metrics were unreadable"


def test_a_restarted_operator_continues_from_the_recorded_step(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({})
    scenario.start_stable("1.0.0")
    with load(scenario):
        scenario.set_version("2.0.0")
        scenario.follow(lambda s: s.get("canaryWeight") == STEPS[1], "the second step")
        before = scenario.status()
        assert scenario.operator.record is not None
        os.kill(scenario.operator.record.pid, signal.SIGKILL)
        scenario.operator.stop()
        time.sleep(INTERVAL_SECONDS / 2)
        mid = scenario.status()
        assert (mid["currentStep"], mid["stepStartedAt"]) == (1, before["stepStartedAt"]), mid
        scenario.operator.start()
        timeline = scenario.follow(lambda s: finished("Promoted")(s) and s.get("phase") == "Stable", "promotion")
    assert STEPS[0] not in timeline.weights, f"the first step ran again after the restart: {timeline.weights}"
    status = scenario.status()
    assert status["stableVersion"] == "2.0.0"
    assert status["history"][-1]["outcome"] == "Promoted"


def test_manual_promote_promote_full_and_abort(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({})
    scenario.start_stable("1.0.0", maxInconclusiveChecks=100)

    def act(action: str, request_id: str) -> None:
        annotations = {"sluice.dev/action": action, "sluice.dev/action-id": request_id}
        scenario.custom.patch_namespaced_custom_object(
            GROUP, VERSION, scenario.namespace, PLURAL, scenario.name, {"metadata": {"annotations": annotations}}
        )

    scenario.set_version("2.0.0")  # no traffic: only a person can move it on
    scenario.follow(lambda s: s.get("canaryWeight") == STEPS[0], "the first step")
    act("promote", "req-1")
    scenario.follow(lambda s: s.get("canaryWeight") == STEPS[1], "the second step after promote")
    assert scenario.status()["lastHandledActionId"] == "req-1"
    act("promote-full", "req-2")
    scenario.follow(lambda s: finished("Promoted")(s) and s.get("phase") == "Stable", "promote-full")
    assert scenario.status()["stableVersion"] == "2.0.0"

    scenario.set_version("3.0.0")
    scenario.follow(lambda s: s.get("canaryWeight") == STEPS[0], "3.0.0 at the first step")
    act("abort", "req-3")
    scenario.follow(finished("Aborted"), "abort")
    status = scenario.status()
    assert status["stableVersion"] == "2.0.0"
    assert status["history"][-1]["reason"] == "Aborted", status["history"][-1]
    assert "req-3" in status["history"][-1]["message"]
    assert scenario.route_weights()[f"{scenario.name}-canary"] == 0


@pytest.mark.parametrize("operator", [CHART_IDENTITY], indirect=True)
def test_the_chart_identity_promotes_a_good_version_and_rolls_back_a_bad_one(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
) -> None:
    scenario = scenario_factory({"3.0.0-bad": {"SLUICE_FAULT_ERROR_RATE": "0.5"}})
    scenario.start_stable("1.0.0")
    with load(scenario):
        scenario.set_version("2.0.0")
        scenario.follow(lambda s: finished("Promoted")(s) and s.get("phase") == "Stable", "2.0.0 promoted")
        assert scenario.status()["stableVersion"] == "2.0.0"
        scenario.set_version("3.0.0-bad")
        scenario.follow(lambda s: finished("RolledBack")(s) and s.get("phase") == "RolledBack", "rollback")
    status = scenario.status()
    entry = status["history"][-1]
    assert (entry["version"], entry["reason"]) == ("3.0.0-bad", "AnalysisFailed"), entry
    assert status["stableVersion"] == "2.0.0"
    assert scenario.route_weights()[f"{scenario.name}-canary"] == 0
    log = scenario.operator.log_path.read_text()
    assert "Forbidden" not in log, scenario.operator.log_tail()
    # a status code, not a number in a timestamp ("01:48:01,403") or a path
    assert not re.search(r"(?<![\w.:,/-])403(?![\w.:/-])", log), scenario.operator.log_tail()
