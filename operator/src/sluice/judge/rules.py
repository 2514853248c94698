"""Flagger's and Argo Rollouts' analysis rules, implemented from their documentation, on the same corpus rollouts.

Both judge the canary alone against fixed bounds over one interval at a time:

- **Flagger** (docs.flagger.app, "How it works" and "Metrics analysis", the podinfo example): every `interval`
  (1m) the built-in checks read the last minute: request-success-rate at least 99% (non-5xx), request-duration p99
  at most 500ms. A check with no data fails ("no values found": Flagger rolls back when there are no metrics). A
  passed check advances the weight by stepWeight 10 up to maxWeight 50 and promotes after that; `threshold` 5
  failed checks roll back.
- **Argo Rollouts** (argo-rollouts.readthedocs.io, "Analysis"): an AnalysisRun measures every `interval` (1m) with
  successCondition error rate <= 1% and p99 <= 500ms; `failureLimit` defaults to 0, so the first failed measurement
  fails the run and aborts the rollout. A ratio over no requests is NaN, and NaN fails the condition. The rollout is
  promoted after 5 successful measurements (five 1-minute steps).
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.judge.corpus import Rollout
from sluice.judge.replay import Outcome, Series, quantile


@dataclass(frozen=True)
class FixedBoundRule:
    """A canary judged alone against fixed bounds every `interval` seconds."""

    interval: float = 60.0
    max_error_rate: float = 0.01
    max_p99_seconds: float = 0.5
    failures_to_roll_back: int = 5
    passes_to_promote: int = 5

    def check_passes(self, series: Series, now: float) -> bool:
        canary = series.totals(now - self.interval, now, canary=True)
        if canary.requests <= 0:
            return False  # Flagger: no values found; Argo: NaN fails the condition
        p99 = quantile(series.rollout.latency_bounds, canary.buckets, 0.99)
        return canary.errors / canary.requests <= self.max_error_rate and (p99 or 0.0) <= self.max_p99_seconds

    def judge(self, rollout: Rollout) -> Outcome:
        failed = passed = 0
        now, series = self.interval, Series(rollout)
        while now <= rollout.seconds:
            if self.check_passes(series, now):
                passed += 1
                if passed >= self.passes_to_promote:
                    return Outcome("promote", now)
            else:
                failed += 1
                if failed >= self.failures_to_roll_back:
                    return Outcome("rollback", now)
            now += self.interval
        return Outcome("undecided")


FLAGGER = FixedBoundRule(failures_to_roll_back=5)
"""threshold 5 (the documented podinfo example), interval 1m, stepWeight 10 to maxWeight 50."""
ARGO_ROLLOUTS = FixedBoundRule(failures_to_roll_back=1)
"""failureLimit 0 (the default): the first failed measurement aborts."""
