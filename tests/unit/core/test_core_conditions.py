"""metav1.Condition bookkeeping."""

from __future__ import annotations

from datetime import timedelta

from sluice.core.conditions import READY, ConditionStatus, find_condition, set_condition
from unit.core.support import T0

LATER = T0 + timedelta(minutes=5)


def test_a_new_condition_is_appended_with_the_current_time() -> None:
    [ready] = set_condition([], READY, ConditionStatus.TRUE, reason="Up", message="m", now=T0, observed_generation=3)

    assert (ready.status, ready.reason, ready.last_transition_time, ready.observed_generation) == ("True", "Up", T0, 3)


def test_the_transition_time_is_kept_while_the_status_does_not_change() -> None:
    first = set_condition([], READY, ConditionStatus.TRUE, reason="Up", message="m", now=T0, observed_generation=1)

    updated = set_condition(
        first, READY, ConditionStatus.TRUE, reason="Other", message="n", now=LATER, observed_generation=2
    )

    condition = find_condition(updated, READY)
    assert condition is not None
    assert (condition.reason, condition.last_transition_time, condition.observed_generation) == ("Other", T0, 2)


def test_a_status_change_moves_the_transition_time() -> None:
    first = set_condition([], READY, ConditionStatus.TRUE, reason="Up", message="m", now=T0, observed_generation=1)

    updated = set_condition(
        first, READY, ConditionStatus.FALSE, reason="Down", message="m", now=LATER, observed_generation=1
    )

    assert [condition.last_transition_time for condition in updated] == [LATER]
