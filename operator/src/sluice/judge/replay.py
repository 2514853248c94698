"""A corpus rollout replayed through the real decision core (`sluice.core.rollout.decide`), with the synthetic
Prometheus answers the rollout's windows give: every check due reads the window `check_window` asks for, summed
over the rollout's windows (pro rata for a window the check cuts), as `increase()` over a range would."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelStatus, Phase
from sluice.core.plan import AnalysisReading, Comparison, Observations, TrackCounts
from sluice.core.rollout import check_window, decide, next_check_at
from sluice.core.rollout.replaying import ready_track, replay_start
from sluice.judge.corpus import Rollout, Side

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STABLE, CANARY = "1.0.0", "2.0.0"


@dataclass(frozen=True)
class Outcome:
    """What a judge did with one rollout: rollback, promote, or undecided when the rollout's windows ran out."""

    decision: str
    seconds: float | None = None


def bench_spec(analysis: dict[str, Any], rollout: dict[str, Any] | None = None) -> ModelDeploymentSpec:
    """A ModelDeployment whose canary CANARY is judged with `analysis` (wire format)."""
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"version": CANARY, "uri": f"s3://models/bench/{CANARY}/model.onnx", "format": "onnx"},
            "replicas": 4,
            "rollout": rollout or {"steps": [25, 50], "interval": "1m", "progressDeadline": "10m"},
            "analysis": analysis,
        }
    )


class Series:
    """A rollout's counts as running totals per track, so any range's counts cost the same."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout
        self._running: dict[bool, list[tuple[float, ...]]] = {}
        for canary in (True, False):
            running = [(0.0,) * (2 + len(rollout.latency_bounds))]
            for window in rollout.windows:
                side = window.canary if canary else window.stable
                counts = (side.requests, side.errors, *side.buckets)
                running.append(tuple(total + count for total, count in zip(running[-1], counts, strict=True)))
            self._running[canary] = running

    def _at(self, seconds: float, canary: bool) -> tuple[float, ...]:
        running, width = self._running[canary], self.rollout.window_seconds
        index = min(max(int(seconds // width), 0), len(running) - 1)
        if index == len(running) - 1:
            return running[index]
        share = min(max(seconds / width - index, 0.0), 1.0)
        low, high = running[index], running[index + 1]
        return tuple(a + (b - a) * share for a, b in zip(low, high, strict=True))

    def totals(self, start: float, end: float, *, canary: bool) -> Side:
        """One track's counts over [start, end) seconds, a window the range cuts counted pro rata."""
        counts = [b - a for a, b in zip(self._at(start, canary), self._at(end, canary), strict=True)]
        return Side(counts[0], counts[1], tuple(counts[2:]))


def quantile(bounds: tuple[str, ...], buckets: tuple[float, ...], q: float) -> float | None:
    """Prometheus' histogram_quantile over cumulative `buckets`: linear within the bucket holding the quantile."""
    total = buckets[-1] if buckets else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in zip(bounds, buckets, strict=True):
        upper = math.inf if bound == "+Inf" else float(bound)
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


def reading(series: Series, now: float, window: float) -> AnalysisReading:
    rollout = series.rollout
    canary, stable = (series.totals(now - window, now, canary=side) for side in (True, False))

    def track(side: Side) -> TrackCounts:
        return TrackCounts(side.requests, side.errors, dict(zip(rollout.latency_bounds, side.buckets, strict=True)))

    return AnalysisReading(
        request_count=canary.requests,
        error_rate=canary.errors / canary.requests if canary.requests > 0 else None,
        latency_p99_seconds=quantile(rollout.latency_bounds, canary.buckets, 0.99),
        comparison=Comparison(canary=track(canary), stable=track(stable)),
    )


def replay(rollout: Rollout, spec: ModelDeploymentSpec) -> Outcome:
    """The rollout from its canary's first step until `decide` rolls it back or promotes it."""
    model = spec.model
    stable_model = ModelStatus(version=STABLE, uri=model.uri.replace(CANARY, STABLE), format=model.format)
    status, series = replay_start(spec, stable_model, T0), Series(rollout)
    stable, canary = ready_track(STABLE, spec.replicas), ready_track(CANARY, 1)
    while True:
        due = next_check_at(spec, status)
        if due is None or (due - T0).total_seconds() > rollout.seconds:
            return Outcome("undecided")
        window = check_window(spec, status, due)
        seconds = (due - T0).total_seconds()
        analysis = None if window is None else reading(series, seconds, window.total_seconds())
        observations = Observations(generation=1, stable=stable, canary=canary, analysis=analysis)
        status = decide(spec, status, observations, due).status
        if status.phase is Phase.ROLLED_BACK:
            return Outcome("rollback", seconds)
        if status.phase in (Phase.PROMOTING, Phase.STABLE):
            return Outcome("promote", seconds)
        if next_check_at(spec, status) == due:  # nothing recorded: the core waits for something this replay lacks
            return Outcome("undecided")
