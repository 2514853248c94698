"""What-if replay: the check times it steps through, the decisions it reports, and its table.

Readings come from a scripted source keyed by check time (as the core tests pass readings to `decide`); the
replay against the real Prometheus, compared with a live rollout, is in tests/e2e/test_ml_drift.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from sluice.adapters.metrics import CanaryQuery
from sluice.api.v1alpha1 import ModelDeploymentSpec, Verdict
from sluice.cli.replay import Decision, ReplayedCheck, render_table, replay
from sluice.core.drift import CountKind, Counts
from sluice.core.plan import AnalysisReading
from unit.core.support import ERRORING, HEALTHY, QUIET, T0, make_spec

SPEC = make_spec("2.0.0", analysis={"maxPredictionPSI": 0.2, "minDriftSamples": 100, "maxInconclusiveChecks": 2})
SAME = Counts(CountKind.CLASSES, canary={"0": 50, "1": 50}, stable={"0": 200, "1": 200})
GOOD = replace(HEALTHY, predictions=SAME)


class Script:
    """Readings by check time (minutes after T0); records every query."""

    def __init__(self, readings: dict[int, AnalysisReading]) -> None:
        self.readings = readings
        self.queries: list[CanaryQuery] = []

    async def read(self, query: CanaryQuery) -> AnalysisReading:
        self.queries.append(query)
        assert query.at is not None
        return self.readings[int((query.at - T0).total_seconds() // 60)]


def run(
    readings: dict[int, AnalysisReading], minutes: int = 30, start_step: int = 0, spec: ModelDeploymentSpec = SPEC
) -> list[ReplayedCheck]:
    script = Script(readings)
    checks = asyncio.run(
        replay(
            spec,
            script,
            T0,
            T0 + timedelta(minutes=minutes),
            namespace="ml",
            name="fraud",
            canary_version="2.0.0",
            stable_version="1.0.0",
            start_step=start_step,
        )
    )
    for query in script.queries:
        assert (query.namespace, query.name, query.version, query.stable_version) == ("ml", "fraud", "2.0.0", "1.0.0")
        assert (query.window, query.predictions, query.features) == (timedelta(minutes=1), True, False)
    return checks


def times(checks: list[ReplayedCheck]) -> list[datetime]:
    return [check.check.time for check in checks]


def test_a_healthy_canary_advances_every_interval_then_would_be_promoted() -> None:
    checks = run({1: GOOD, 2: GOOD, 3: GOOD})
    assert times(checks) == [T0 + timedelta(minutes=minute) for minute in (1, 2, 3)]
    assert [(c.check.step, c.check.weight, c.decision) for c in checks] == [
        (0, 10, Decision.ADVANCE),
        (1, 25, Decision.ADVANCE),
        (2, 50, Decision.PROMOTE),
    ]


def test_a_gateway_routed_canary_is_replayed_as_if_its_route_was_accepted() -> None:
    routed = SPEC.model_copy(
        update={"traffic": make_spec(traffic={"gateway": {"parentRefs": [{"name": "public"}]}}).traffic}
    )
    checks = run({1: GOOD, 2: GOOD, 3: GOOD}, spec=routed)
    assert [(c.check.step, c.decision) for c in checks] == [
        (0, Decision.ADVANCE),
        (1, Decision.ADVANCE),
        (2, Decision.PROMOTE),
    ]


def test_inconclusive_checks_hold_and_drift_rolls_back_where_the_operator_would() -> None:
    drifted = replace(GOOD, predictions=Counts(CountKind.CLASSES, {"1": 100}, {"0": 200, "1": 200}))
    checks = run({1: replace(QUIET, predictions=SAME), 2: GOOD, 3: drifted})
    assert [(c.check.verdict, c.decision) for c in checks] == [
        (Verdict.INCONCLUSIVE, Decision.HOLD),
        (Verdict.PASSED, Decision.ADVANCE),
        (Verdict.FAILED, Decision.ROLLBACK),
    ]
    assert checks[-1].status.history[-1].reason == "AnalysisFailed"


def test_the_window_end_stops_the_replay_and_a_later_step_can_be_the_start() -> None:
    assert len(run({1: GOOD, 2: GOOD, 3: GOOD}, minutes=2)) == 2
    checks = run({1: ERRORING}, start_step=2)
    assert [(c.check.step, c.decision) for c in checks] == [(2, Decision.ROLLBACK)]


def test_the_table_shows_values_bounds_verdicts_and_the_outcome() -> None:
    drifted = replace(GOOD, predictions=Counts(CountKind.CLASSES, {"1": 100}, {"0": 200, "1": 200}))
    table = render_table(run({1: GOOD, 2: drifted}), SPEC.rollout.steps)
    lines = table.splitlines()
    assert lines[0].split() == [
        "TIME",
        "STEP",
        "WEIGHT",
        "requestCount>=20",
        "errorRate<=1%",
        "latencyP99<=500ms",
        "predictionPSI<=0.2",
        "VERDICT",
        "DECISION",
    ]
    assert lines[1].split() == ["12:01:00", "1/3", "10%", "120", "0.1%", "80ms", "0", "Passed", "advance"]
    assert lines[2].split() == [
        "12:02:00",
        "2/3",
        "25%",
        "120",
        "0.1%",
        "80ms",
        "4.604",
        "FAIL",
        "Failed",
        "rollback",
    ]
    assert lines[-1].startswith("outcome: rolled back (AnalysisFailed): prediction PSI 4.60432 above maxPredictionPSI")
