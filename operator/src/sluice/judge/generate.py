"""The synthetic corpus: labelled rollouts over a grid of regressions and traffic levels (docs/judge.md).

Per rollout: the stable version fails a base share of requests drawn from 0.1%, 0.3%, 1% and 3%; each window
multiplies it by a common factor (log-normal, sigma 0.3: both tracks see the same bad inputs) and, in 2% of windows,
the stable track alone by 4 (stable-side noise: a burst on a stable pod). Traffic follows a day (a sinusoid of +-50%
around the cell's rate, at a random phase); the canary has one pod at the cell's rate, the stable version three.
Latency is log-normal (median 50ms, sigma 0.5, a common factor per window); a latency regression multiplies the
canary's. An error regression adds its points to the canary's share of failed requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sluice.judge.corpus import Rollout, Side, Window

ERROR_POINTS = (0.5, 1.0, 2.0, 5.0, 10.0, 50.0)
LATENCY_PERCENT = (10.0, 25.0, 50.0, 100.0, 200.0)
TRAFFIC = (0.1, 1.0, 10.0, 100.0)
HOURS = {0.1: 2.0, 1.0: 8.0, 10.0: 1.0, 100.0: 0.5}
"""How long each rollout's windows run, by traffic: long enough for the judge's longest steps at that level."""
BASE_ERROR_RATES = (0.001, 0.003, 0.01, 0.03)
LATENCY_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, math.inf)
WINDOW_SECONDS = 60.0
STABLE_PODS = 3
MEDIAN_LATENCY = 0.05
LATENCY_SIGMA = 0.5
DAY = 86_400.0


@dataclass(frozen=True)
class Cell:
    kind: str
    size: float
    traffic: float

    @property
    def label(self) -> str:
        return "good" if self.kind == "none" else "bad"


def cells() -> list[Cell]:
    """The issue's grid: good versions, error regressions and latency regressions at each traffic level."""
    kinds = [("none", 0.0)] + [("errors", s) for s in ERROR_POINTS] + [("latency", s) for s in LATENCY_PERCENT]
    return [Cell(kind, size, traffic) for traffic in TRAFFIC for kind, size in kinds]


def _bucket_shares(median: float) -> np.ndarray:
    """The probability of each latency bucket (not cumulative) for a log-normal latency of `median`."""
    cumulative = [
        1.0 if math.isinf(bound) else 0.5 * (1 + math.erf(math.log(bound / median) / (LATENCY_SIGMA * math.sqrt(2))))
        for bound in LATENCY_BOUNDS
    ]
    shares = np.diff(np.array([0.0, *cumulative]))
    return np.clip(shares, 0.0, 1.0) / max(float(np.clip(shares, 0.0, 1.0).sum()), 1e-12)


def _side(rng: np.random.Generator, requests: int, error_rate: float, median: float) -> Side:
    errors = int(rng.binomial(requests, min(max(error_rate, 0.0), 1.0)))
    buckets = np.cumsum(rng.multinomial(requests, _bucket_shares(median)))
    return Side(float(requests), float(errors), tuple(float(count) for count in buckets))


def rollout(cell: Cell, index: int, rng: np.random.Generator) -> Rollout:
    base = float(rng.choice(BASE_ERROR_RATES))
    phase = float(rng.uniform(0, DAY))
    windows = []
    for n in range(round(HOURS[cell.traffic] * 3600 / WINDOW_SECONDS)):
        daily = 1 + 0.5 * math.sin(2 * math.pi * (phase + n * WINDOW_SECONDS) / DAY)
        expected = cell.traffic * daily * WINDOW_SECONDS
        common = float(rng.lognormal(0.0, 0.3))
        burst = 4.0 if rng.random() < 0.02 else 1.0
        median = MEDIAN_LATENCY * float(rng.lognormal(0.0, 0.1))
        canary_rate = base * common + (cell.size / 100 if cell.kind == "errors" else 0.0)
        canary_median = median * (1 + cell.size / 100) if cell.kind == "latency" else median
        windows.append(
            Window(
                canary=_side(rng, int(rng.poisson(expected)), canary_rate, canary_median),
                stable=_side(rng, int(rng.poisson(expected * STABLE_PODS)), base * common * burst, median),
            )
        )
    return Rollout(
        id=f"{cell.kind}-{cell.size:g}-{cell.traffic:g}-{index:04d}",
        label=cell.label,
        kind=cell.kind,
        size=cell.size,
        traffic=cell.traffic,
        window_seconds=WINDOW_SECONDS,
        latency_bounds=tuple("+Inf" if math.isinf(bound) else f"{bound:g}" for bound in LATENCY_BOUNDS),
        windows=tuple(windows),
    )


def corpus(per_cell: dict[float, int], seed: int = 16) -> Iterator[Rollout]:
    """`per_cell[traffic]` rollouts of every cell at that traffic level, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    for cell in cells():
        for index in range(per_cell[cell.traffic]):
            yield rollout(cell, index, rng)
