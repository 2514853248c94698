"""The corpus format: one JSON object per line, one labelled rollout each (docs/judge.md describes it).

    {"id": "errors-2-1-0007", "label": "bad", "kind": "errors", "size": 2, "traffic": 1,
     "windowSeconds": 60, "latencyBounds": ["0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"],
     "windows": [{"canary": {"requests": 61, "errors": 1, "buckets": [20, 48, 60, 61, 61, 61]},
                  "stable": {"requests": 178, "errors": 2, "buckets": [...]}}, ...]}

`label` is good or bad (what a judge should do: promote or roll back); `kind` (none, errors, latency) and `size`
(percentage points of error rate, or percent of latency) name the regression; `traffic` is the canary's requests
per second per pod. Each window is `windowSeconds` long, from the moment the canary is ready at its first step;
`buckets` are the cumulative counts of the latency histogram at `latencyBounds` (the last one +Inf, so it equals
`requests`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Side:
    requests: float
    errors: float
    buckets: tuple[float, ...]


@dataclass(frozen=True)
class Window:
    canary: Side
    stable: Side


@dataclass(frozen=True)
class Rollout:
    id: str
    label: str
    kind: str
    size: float
    traffic: float
    window_seconds: float
    latency_bounds: tuple[str, ...]
    windows: tuple[Window, ...]

    @property
    def bad(self) -> bool:
        return self.label == "bad"

    @property
    def seconds(self) -> float:
        return self.window_seconds * len(self.windows)


def _side(wire: dict[str, Any]) -> Side:
    return Side(float(wire["requests"]), float(wire["errors"]), tuple(float(count) for count in wire["buckets"]))


def parse(line: str) -> Rollout:
    wire = json.loads(line)
    label = wire["label"]
    if label not in ("good", "bad"):
        raise ValueError(f"rollout {wire.get('id')}: label must be good or bad")
    return Rollout(
        id=str(wire["id"]),
        label=label,
        kind=str(wire.get("kind", "unknown")),
        size=float(wire.get("size", 0)),
        traffic=float(wire["traffic"]),
        window_seconds=float(wire["windowSeconds"]),
        latency_bounds=tuple(str(bound) for bound in wire["latencyBounds"]),
        windows=tuple(Window(_side(window["canary"]), _side(window["stable"])) for window in wire["windows"]),
    )


def dumps(rollout: Rollout) -> str:
    def side(counts: Side) -> dict[str, Any]:
        return {"requests": counts.requests, "errors": counts.errors, "buckets": list(counts.buckets)}

    return json.dumps(
        {
            "id": rollout.id,
            "label": rollout.label,
            "kind": rollout.kind,
            "size": rollout.size,
            "traffic": rollout.traffic,
            "windowSeconds": rollout.window_seconds,
            "latencyBounds": list(rollout.latency_bounds),
            "windows": [{"canary": side(w.canary), "stable": side(w.stable)} for w in rollout.windows],
        },
        separators=(",", ":"),
    )


def read(path: Path) -> Iterator[Rollout]:
    with path.open() as lines:
        for line in lines:
            if line.strip():
                yield parse(line)
