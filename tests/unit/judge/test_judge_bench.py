"""The judge's bench: the corpus format, the replay through the decision core, Flagger's and Argo's rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sluice.judge import bench, corpus
from sluice.judge.generate import Cell, rollout
from sluice.judge.replay import Series, bench_spec, quantile, replay
from sluice.judge.rules import ARGO_ROLLOUTS, FLAGGER

BOUNDS = ("0.05", "0.1", "0.25", "0.5", "1", "+Inf")


def steady(label: str, canary_errors: float, *, requests: float = 600, minutes: int = 60) -> corpus.Rollout:
    """A rollout whose every minute has the same counts; stable fails 1% at three times the canary's traffic."""

    def side(count: float, errors: float) -> corpus.Side:
        return corpus.Side(count, errors, (count * 0.5, count * 0.9, count, count, count, count))

    window = corpus.Window(side(requests, requests * canary_errors), side(3 * requests, 3 * requests * 0.01))
    kind, size = ("none", 0.0) if label == "good" else ("errors", round((canary_errors - 0.01) * 100))
    return corpus.Rollout(f"steady-{label}", label, kind, size, requests / 60, 60, BOUNDS, (window,) * minutes)


def test_a_rollout_survives_the_corpus_format_and_a_label_must_be_good_or_bad(tmp_path: Path) -> None:
    original = rollout(Cell("errors", 2.0, 1.0), 0, np.random.default_rng(1))
    path = tmp_path / "corpus.jsonl"
    path.write_text(corpus.dumps(original) + "\n\n")
    assert list(corpus.read(path)) == [original]
    with pytest.raises(ValueError, match="label must be good or bad"):
        corpus.parse(corpus.dumps(original).replace('"label":"bad"', '"label":"maybe"'))


def test_a_range_of_windows_is_summed_pro_rata_and_the_p99_is_read_as_prometheus_does() -> None:
    series = Series(steady("good", 0.01))
    assert series.totals(30, 150, canary=True).requests == pytest.approx(1200)
    assert series.totals(-60, 30, canary=False).errors == pytest.approx(9)
    assert quantile(BOUNDS, (50, 90, 100, 100, 100, 100), 0.99) == pytest.approx(0.25 - 0.15 * 0.1)
    assert quantile(BOUNDS, (0, 0, 0, 0, 0, 0), 0.99) is None


def test_flagger_rolls_back_after_five_failed_minutes_and_argo_after_the_first() -> None:
    bad = steady("bad", 0.05)
    assert (FLAGGER.judge(bad).decision, FLAGGER.judge(bad).seconds) == ("rollback", 300)
    assert (ARGO_ROLLOUTS.judge(bad).decision, ARGO_ROLLOUTS.judge(bad).seconds) == ("rollback", 60)
    silent = steady("good", 0.0, requests=0)
    assert FLAGGER.judge(silent).decision == "rollback"  # no values found fails a check


def test_the_replay_through_the_decision_core_rolls_back_a_regression_and_promotes_a_good_version() -> None:
    spec = bench_spec(bench.SLUICE_ANALYSIS, bench.SLUICE_ROLLOUT)
    bad = replay(steady("bad", 0.11), spec)
    assert bad.decision == "rollback"
    assert bad.seconds is not None
    assert bad.seconds <= 70
    good = replay(steady("good", 0.01), spec)
    assert good.decision == "promote"
    assert replay(steady("good", 0.01, requests=0), spec).decision == "undecided"


def test_the_bench_judges_a_corpus_file_and_writes_its_table_between_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(corpus.dumps(rollout) + "\n" for rollout in (steady("bad", 0.11), steady("good", 0.01))))
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\n{bench.START}\nold\n{bench.END}\nafter\n")
    printed: list[str] = []
    assert bench.main(["--corpus", str(path), "--workers", "2", "--docs", str(docs)], out=printed.append) == 0
    text = docs.read_text()
    assert "old" not in text
    assert text.endswith(f"{bench.END}\nafter\n")
    assert "| good | 10 | 1 | 0.0% / 100.0% / 0.0% |" in printed[0]
    assert "false rollbacks at 10 req/s: 0.0% (<= 1%: True)" in printed[0]


def test_the_generated_corpus_is_saved_in_the_format_it_is_judged_in(tmp_path: Path) -> None:
    saved = tmp_path / "generated.jsonl"
    args = ["--save", str(saved), "--per-cell", "0", "--low-traffic-per-cell", "1", "--workers", "1"]
    printed: list[str] = []
    assert bench.main(args, out=printed.append) == 0
    rollouts = list(corpus.read(saved))
    assert len(rollouts) == 12  # good, six error and five latency regressions, at 0.1 req/s
    assert {rollout.traffic for rollout in rollouts} == {0.1}
    assert all(len(rollout.windows) == 120 for rollout in rollouts)  # 2 hours of minutes
    assert "generated corpus, seed 16, 12 rollouts" in printed[0]
