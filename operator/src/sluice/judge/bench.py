"""`python -m sluice.judge.bench`: judge a corpus of labelled rollouts with sluice's judge, Flagger's rule and Argo
Rollouts' rule, and print (or write into docs/benchmarks.md) recall, false rollbacks and time to decision per cell.

    python -m sluice.judge.bench --corpus FILE        # any file in the corpus format (docs/judge.md)
    python -m sluice.judge.bench --save FILE          # generate the synthetic corpus (seeded), save it, judge it
    python -m sluice.judge.bench --docs docs/benchmarks.md   # also write the table between its markers
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.judge import corpus
from sluice.judge.replay import Outcome, bench_spec, replay
from sluice.judge.rules import ARGO_ROLLOUTS, FLAGGER

SLUICE_ANALYSIS: dict[str, Any] = {
    "maxErrorRate": 1.0,
    "maxLatencyP99": "1h",
    "minRequests": 1,
    "compareToStable": {"maxErrorRateIncrease": 0.01, "slowerThan": "250ms", "maxSlowRequestsIncrease": 0.01},
    "confidence": 0.95,
    "maxStepDuration": "8h",
}
"""sluice's judge in the bench: the relative bounds alone (absolute bounds out of reach), onInconclusive Hold."""
SLUICE_ROLLOUT = {"steps": [25, 50], "interval": "1m", "progressDeadline": "10m"}
JUDGES = ("sluice", "Flagger", "Argo Rollouts")
START, END = "<!-- bench:judge:start -->", "<!-- bench:judge:end -->"


def judge_all(rollout: corpus.Rollout) -> tuple[Outcome, ...]:
    spec = bench_spec(SLUICE_ANALYSIS, SLUICE_ROLLOUT)
    return replay(rollout, spec), FLAGGER.judge(rollout), ARGO_ROLLOUTS.judge(rollout)


@dataclass
class Cell:
    label: str
    kind: str
    size: float
    traffic: float
    outcomes: list[tuple[Outcome, ...]]

    def name(self) -> str:
        if self.kind == "none":
            return "good"
        return f"+{self.size:g} pts errors" if self.kind == "errors" else f"+{self.size:g}% latency"


def _share(outcomes: list[Outcome], decision: str) -> float:
    return sum(outcome.decision == decision for outcome in outcomes) / max(len(outcomes), 1)


def _times(outcomes: list[Outcome]) -> str:
    seconds = sorted(outcome.seconds for outcome in outcomes if outcome.seconds is not None)
    if not seconds:
        return "-"
    p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
    return f"{_minutes(statistics.median(seconds))} / {_minutes(p95)}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}m" if seconds < 5400 else f"{seconds / 3600:.1f}h"


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def table(cells: list[Cell]) -> str:
    header = "| version | req/s | n | " + " | ".join(
        f"{judge}: rolled back / promoted / undecided | {judge}: time to decision (median / p95)" for judge in JUDGES
    )
    lines = [header + " |", "|---|---:|---:|" + "---|---|" * len(JUDGES)]
    for cell in cells:
        row = [cell.name(), f"{cell.traffic:g}", str(len(cell.outcomes))]
        for index in range(len(JUDGES)):
            outcomes = [result[index] for result in cell.outcomes]
            shares = " / ".join(_percent(_share(outcomes, d)) for d in ("rollback", "promote", "undecided"))
            row += [shares, _times(outcomes)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _cell(cells: list[Cell], kind: str, size: float, traffic: float) -> Cell | None:
    return next((c for c in cells if (c.kind, c.size, c.traffic) == (kind, size, traffic)), None)


def _median_seconds(outcomes: Iterable[Outcome], decision: str) -> float | None:
    seconds = [o.seconds for o in outcomes if o.decision == decision and o.seconds is not None]
    return statistics.median(seconds) if seconds else None


def targets(cells: list[Cell]) -> list[str]:
    """The issue's acceptance targets, each with the measured value and whether it holds."""
    said: list[str] = []
    for cell in cells:
        sluice = [result[0] for result in cell.outcomes]
        if cell.kind == "errors" and cell.size >= 2 and cell.traffic >= 1:
            recall = _share(sluice, "rollback")
            said.append(
                f"recall {cell.name()} at {cell.traffic:g} req/s: {_percent(recall)} (>= 99%: {recall >= 0.99})"
            )
        if cell.kind == "none":
            false = _share(sluice, "rollback")
            said.append(f"false rollbacks at {cell.traffic:g} req/s: {_percent(false)} (<= 1%: {false <= 0.01})")
    ten = _cell(cells, "errors", 10.0, 10.0)
    if ten is not None:
        ours = _median_seconds((result[0] for result in ten.outcomes), "rollback")
        flagger = _median_seconds((result[1] for result in ten.outcomes), "rollback")
        if ours is not None and flagger is not None:
            verdict = ours <= flagger / 2
            said.append(
                f"median time to roll back +10 pts at 10 req/s: sluice {ours:.0f}s, Flagger {flagger:.0f}s "
                f"(at most half: {verdict})"
            )
    said += _low_traffic(cells)
    return said


def _low_traffic(cells: list[Cell]) -> list[str]:
    said = []
    worst = _cell(cells, "errors", 50.0, 0.1)
    if worst is not None:
        promoted = _share([result[0] for result in worst.outcomes], "promote")
        said.append(f"+50 pts errors at 0.1 req/s promoted: {_percent(promoted)} (never: {promoted == 0})")
    good = _cell(cells, "none", 0.0, 0.1)
    if good is not None:
        rolled = _share([result[0] for result in good.outcomes], "rollback")
        said.append(f"good versions at 0.1 req/s rolled back: {_percent(rolled)} (never: {rolled == 0})")
    return said


Key = tuple[str, str, float, float]
"""A cell: label, kind, size, traffic."""


def judged(rollout: corpus.Rollout) -> tuple[Key, tuple[Outcome, ...]]:
    return (rollout.label, rollout.kind, rollout.size, rollout.traffic), judge_all(rollout)


def judge_corpus(rollouts: Iterable[corpus.Rollout], workers: int, batch: int = 256) -> list[Cell]:
    """Every rollout judged by the three judges, by cell; at most `batch` rollouts in memory at once."""
    cells: dict[Key, Cell] = {}
    rollouts = iter(rollouts)
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        while chunk := list(itertools.islice(rollouts, batch)):
            results = pool.map(judged, chunk, chunksize=16) if pool is not None else map(judged, chunk)
            for key, result in results:
                cells.setdefault(key, Cell(*key, outcomes=[])).outcomes.append(result)
    order = {"none": 0, "errors": 1, "latency": 2}
    return sorted(cells.values(), key=lambda c: (c.traffic, order.get(c.kind, 3), c.kind, c.size))


def _rollouts(args: argparse.Namespace) -> Iterator[corpus.Rollout]:
    if args.corpus is not None:
        yield from corpus.read(args.corpus)
        return
    from sluice.judge.generate import TRAFFIC  # numpy: only to generate
    from sluice.judge.generate import corpus as generated

    per_cell = dict.fromkeys(TRAFFIC, args.per_cell) | {0.1: args.low_traffic_per_cell}
    if args.save is None:
        yield from generated(per_cell, seed=args.seed)
        return
    with args.save.open("w") as saved:
        for rollout in generated(per_cell, seed=args.seed):
            saved.write(corpus.dumps(rollout) + "\n")
            yield rollout


def report(cells: list[Cell], *, source: str, seconds: float) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    config = ", ".join(f"{key} {value}" for key, value in SLUICE_ANALYSIS.items())
    lines = [
        f"Run: {now}; {os.cpu_count()} cores, CPython {platform.python_version()}; {source}; "
        f"judged in {seconds:.0f}s; load average {load:.2f} at the end.",
        "",
        f"sluice: steps {SLUICE_ROLLOUT['steps']} every {SLUICE_ROLLOUT['interval']}; analysis: {config}.",
        "",
        "Targets:",
        "",
        *(f"- {line}" for line in targets(cells)),
        "",
        table(cells),
    ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    document = path.read_text()
    if START not in document or END not in document:
        raise SystemExit(f"{path} has no {START} ... {END} block")
    before, rest = document.split(START, 1)
    after = rest.split(END, 1)[1]
    path.write_text(f"{before}{START}\n{text}\n{END}{after}")


def main(argv: list[str] | None = None, out: Callable[[str], object] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m sluice.judge.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="judge this corpus (JSON lines, docs/judge.md)")
    parser.add_argument("--save", type=Path, help="save the generated corpus here")
    parser.add_argument("--seed", type=int, default=16, help="the generated corpus' seed")
    parser.add_argument("--per-cell", type=int, default=100, help="generated rollouts per cell at >= 1 req/s")
    parser.add_argument("--low-traffic-per-cell", type=int, default=50, help="generated rollouts per cell at 0.1")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes judging")
    parser.add_argument("--docs", type=Path, help="write the table into this file's bench:judge block")
    args = parser.parse_args(argv)
    started = time.monotonic()
    cells = judge_corpus(_rollouts(args), args.workers)
    source = f"corpus {args.corpus.name}" if args.corpus else f"generated corpus, seed {args.seed}"
    count = sum(len(cell.outcomes) for cell in cells)
    text = report(cells, source=f"{source}, {count} rollouts", seconds=time.monotonic() - started)
    out(text)
    if args.docs is not None:
        write_section(args.docs, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
