"""Promoted (rollout.keepPrevious): the promoted revision serves all traffic from the canary's pods while the
previous revision's are kept (`sluice.core.rollout.keeping`).

Within the window: the spec set back to the previous revision (`kubectl sluice undo`) moves all traffic back at
once; with rollout.postPromotionAnalysis a check that breaks the bounds does the same on its own; the spec naming
any other revision, or removing rollout.keepPrevious, ends the window early. Once the window is over, the stable
Deployment takes the promoted revision back; a change of the spec waits for that (then it is a new rollout, as
from Stable).
"""

from __future__ import annotations

from functools import partial

from sluice.core.analysis import evaluate
from sluice.core.rollout.keeping import ANALYSIS_FAILED, UNDONE, hand_back, release, undo, window_open
from sluice.core.rollout.revisions import spec_revision_hash
from sluice.core.rollout.schedule import check_window
from sluice.core.rollout.state import Decision
from sluice.core.rollout.verdicts import record_check


def handle(decision: Decision) -> None:
    status, previous = decision.status, decision.status.previous
    if previous is None or not window_open(decision):
        if previous is not None and not previous.released:
            release(decision, f"keepPrevious {decision.spec.rollout.keep_previous} is over")
            return
        hand_back(decision)
        return
    spec_hash = spec_revision_hash(decision.spec)
    if spec_hash == previous.revision.hash:
        message = (
            f"undo within keepPrevious: all traffic back to revision {previous.revision.number} "
            f"({previous.version}), whose pods were kept; {status.stable_version} rolled back"
        )
        undo(decision, UNDONE, message)
    elif status.stable_revision is not None and spec_hash != status.stable_revision.hash:
        release(decision, "the spec names another revision")
    elif decision.spec.rollout.keep_previous is None:
        release(decision, "rollout.keepPrevious was removed")
    else:
        _check(decision)


def _check(decision: Decision) -> None:
    """rollout.postPromotionAnalysis: the promoted revision's check, every interval within the window."""
    reading = decision.observations.analysis
    if reading is None or check_window(decision.spec, decision.status, decision.now) is None:
        return
    steps = decision.spec.rollout.steps
    check = evaluate(decision.spec.analysis, reading, time=decision.now, step=len(steps) - 1, weight=100)
    record_check(
        decision,
        check,
        on_pass=lambda: None,
        failed_reason=ANALYSIS_FAILED,
        on_failed_limit=partial(_breached, decision),
    )


def _breached(decision: Decision, message: str) -> None:
    previous = decision.status.previous
    back = f" back to revision {previous.revision.number} ({previous.version})" if previous is not None else ""
    undo(decision, ANALYSIS_FAILED, f"post-promotion analysis failed: {message}; all traffic{back}")
