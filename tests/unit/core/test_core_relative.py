"""compareToStable in the rollout: the canary judged against stable, steps that wait for evidence, the step clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sluice.api.v1alpha1 import Outcome, Phase, Verdict
from sluice.core.analysis import shown
from sluice.core.conditions import PROGRESSING
from sluice.core.plan import AnalysisReading, Comparison, TrackCounts
from sluice.core.relative import ERROR_RATE_INCREASE, SLOW_REQUESTS_INCREASE
from sluice.core.rollout import check_window
from unit.core.support import Simulation, at_first_step, make_spec


def judged_spec(**analysis: Any) -> Any:
    wire = {"maxErrorRate": 0.1, "compareToStable": {"maxErrorRateIncrease": 0.02}, **analysis}
    return make_spec(rollout={"steps": [20, 50], "interval": "1m", "progressDeadline": "10m"}, analysis=wire)


def both(
    canary: tuple[float, float], stable: tuple[float, float], slow: tuple[float, float] = (0, 0)
) -> AnalysisReading:
    """A reading of (requests, errors) per track; `slow` of each track's requests took more than 250ms."""

    def track(counts: tuple[float, float], slow_requests: float) -> TrackCounts:
        requests, errors = counts
        buckets = {"0.1": requests - slow_requests, "0.25": requests - slow_requests, "+Inf": requests}
        return TrackCounts(requests=requests, errors=errors, latency_buckets=buckets)

    requests, errors = canary
    return AnalysisReading(
        request_count=requests,
        error_rate=errors / requests if requests else None,
        latency_p99_seconds=0.05,
        comparison=Comparison(canary=track(canary, slow[0]), stable=track(stable, slow[1])),
    )


def progressing_message(simulation: Simulation) -> tuple[str, str]:
    condition = next(c for c in simulation.status.conditions if c.type == PROGRESSING)
    return condition.reason, condition.message


def served(simulation: Simulation) -> None:
    """The first check sees the canary serve: the step's clock starts."""
    simulation.check(both((50, 0), (150, 0)))
    assert simulation.status.step_traffic_at == simulation.now


def test_a_canary_5_points_worse_than_a_stable_failing_3_percent_is_rolled_back_though_under_max_error_rate() -> None:
    simulation = at_first_step(judged_spec())
    served(simulation)
    simulation.check(both((2000, 160), (6000, 180)))
    assert simulation.status.phase is Phase.ROLLED_BACK
    assert simulation.status.history[-1].outcome is Outcome.ROLLED_BACK
    assert "worse than maxErrorRateIncrease 2 points" in simulation.status.history[-1].message


def test_the_same_canary_with_max_error_rate_alone_is_passed() -> None:
    simulation = at_first_step(make_spec(analysis={"maxErrorRate": 0.1}))
    simulation.check(both((2000, 160), (6000, 180)))
    assert simulation.status.current_step == 1


def test_a_canary_like_stable_passes_once_the_evidence_shows_it_within_the_bound() -> None:
    simulation = at_first_step(judged_spec())
    served(simulation)
    simulation.check(both((4000, 120), (12000, 360)))
    assert simulation.status.current_step == 1
    assert simulation.events[-1].reason == "StepAdvanced"


def test_the_check_records_the_estimate_its_interval_and_the_evidence() -> None:
    simulation = at_first_step(judged_spec())
    served(simulation)
    simulation.check(both((4000, 200), (12000, 360)))
    check = simulation.status.last_check
    assert check is not None
    metric = next(m for m in check.metrics if m.name == ERROR_RATE_INCREASE)
    assert metric.value is not None
    assert abs(metric.value - 0.02) < 1e-9
    assert metric.lower is not None
    assert metric.upper is not None
    assert metric.lower < 0.02 < metric.upper
    assert (metric.canary_requests, metric.stable_requests) == (4000, 12000)
    assert metric.max == 0.02


def test_too_little_evidence_extends_the_step_and_says_how_many_more_requests_it_needs() -> None:
    simulation = at_first_step(judged_spec())
    served(simulation)
    for _ in range(5):
        simulation.check(both((300, 9), (900, 27)))
    assert simulation.status.phase is Phase.PROGRESSING
    assert simulation.status.current_step == 0
    assert simulation.status.inconclusive_checks == 0
    reason, message = progressing_message(simulation)
    assert reason == "Analysing"
    assert "more canary requests needed" in message
    assert simulation.event_reasons()[-1] == "StepExtended"


def test_before_the_canary_serves_at_its_weight_the_step_waits_and_probes_every_10_seconds() -> None:
    simulation = at_first_step(judged_spec())
    started = simulation.status.step_started_at
    for _ in range(30):
        simulation.check(both((0, 0), (300, 3)))
    assert simulation.status.step_traffic_at is None
    assert simulation.status.step_started_at == started
    assert simulation.now - simulation.status.step_started_at == timedelta(minutes=5)  # type: ignore[operator]
    assert progressing_message(simulation)[0] == "WaitingForTraffic"
    assert simulation.event_reasons() == []


def test_the_step_lasts_at_least_one_interval_from_the_canarys_first_request() -> None:
    simulation = at_first_step(judged_spec())
    simulation.check(both((0, 0), (300, 3)))
    simulation.check(both((20_000, 0), (60_000, 0)))  # enough to pass, but seen for the first time
    assert simulation.status.current_step == 0
    first_request = simulation.status.step_traffic_at
    assert first_request == simulation.now
    simulation.check(both((20_000, 0), (60_000, 0)))
    assert simulation.now - first_request == timedelta(minutes=1)
    assert simulation.status.current_step == 1


def test_the_window_read_is_the_step_so_far_capped_at_max_step_duration() -> None:
    simulation = at_first_step(judged_spec(maxStepDuration="30m"))
    served(simulation)
    simulation.until_next_check()
    assert check_window(simulation.spec, simulation.status, simulation.now) == timedelta(seconds=70)
    for _ in range(40):
        simulation.check(both((30, 1), (90, 3)))
    assert check_window(simulation.spec, simulation.status, simulation.now + timedelta(minutes=1)) == timedelta(
        minutes=30
    )


def test_max_step_duration_without_enough_evidence_holds_by_default_and_says_so() -> None:
    simulation = at_first_step(judged_spec(maxStepDuration="10m"))
    served(simulation)
    for _ in range(15):
        simulation.check(both((100, 3), (300, 9)))
    assert simulation.status.phase is Phase.PROGRESSING
    reason, message = progressing_message(simulation)
    assert reason == "InconclusiveHold"
    assert "maxStepDuration 10m passed without enough evidence" in message
    assert "more canary requests needed" in message


def test_max_step_duration_without_enough_evidence_rolls_back_when_on_inconclusive_says_rollback() -> None:
    simulation = at_first_step(judged_spec(maxStepDuration="10m", onInconclusive="Rollback"))
    served(simulation)
    for _ in range(15):
        simulation.check(both((100, 3), (300, 9)))
        if simulation.status.phase is Phase.ROLLED_BACK:
            break
    assert simulation.status.phase is Phase.ROLLED_BACK
    assert simulation.status.history[-1].reason == "AnalysisInconclusive"
    assert simulation.status.history[-1].message.startswith("maxStepDuration 10m without enough evidence")


def test_a_canary_with_more_slow_requests_than_stable_is_rolled_back_on_the_latency_bound() -> None:
    spec = judged_spec(compareToStable={"slowerThan": "300ms", "maxSlowRequestsIncrease": 0.02})
    simulation = at_first_step(spec)
    served(simulation)
    simulation.check(both((3000, 0), (9000, 0), slow=(600, 90)))
    assert simulation.status.phase is Phase.ROLLED_BACK
    assert "share slower than 300ms" in simulation.status.history[-1].message
    check = simulation.status.last_check
    assert check is not None
    slow = next(m for m in check.metrics if m.name == SLOW_REQUESTS_INCREASE)
    assert slow.verdict is Verdict.FAILED
    assert slow.value is not None
    assert abs(slow.value - (0.2 - 0.01)) < 1e-9


def test_a_relative_metric_reads_in_percentage_points_everywhere() -> None:
    assert shown(ERROR_RATE_INCREASE, 0.021) == "+2.1 points"
    assert shown(SLOW_REQUESTS_INCREASE, -0.004) == "-0.4 points"
