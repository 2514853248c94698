"""Which rollout events a reconcile produces (from the status read and the one written), once each and in order,
with stable ids; who hears of them; the Notified condition and the delivery counts; the two body formats."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

from sluice.api.v1alpha1 import Action, HistoryEntry, ModelDeploymentStatus, NotificationsSpec, Outcome, RolloutEvent
from sluice.core.notification_bodies import BodyFormat, body, cloudevent, slack_body
from sluice.core.notifications import (
    NOTIFIED,
    DeliveryReport,
    ReceiverBook,
    RolloutNotice,
    Subject,
    notification_status,
    rollout_notices,
    wanted,
    wanted_receivers,
)
from sluice.core.plan import AnalysisReading, Plan
from unit.core.support import ERRORING, HEALTHY, T0, Simulation, make_spec

SUBJECT = Subject("ml", "fraud", "uid-1", 3)


@dataclass
class Notifying(Simulation):
    """A simulation that records the rollout events of every reconcile, as the reconciler derives them."""

    notices: list[RolloutNotice] = field(default_factory=list)

    def follow(self, plan: Plan) -> Plan:
        self.notices.extend(rollout_notices(SUBJECT, self.status, plan.status, self.now))
        return super().follow(plan)

    def settle(self, times: int = 3) -> None:
        for _ in range(times):
            self.reconcile()

    def kinds(self) -> list[RolloutEvent]:
        return [notice.event for notice in self.notices]


def deployed() -> Notifying:
    simulation = Notifying(make_spec("1.0.0"))
    simulation.settle()
    assert simulation.notices == []
    return simulation


def run_checks(simulation: Notifying, reading: AnalysisReading, count: int) -> None:
    for _ in range(count):
        simulation.check(reading)
        simulation.settle()


def test_a_promoted_rollout_notifies_started_each_step_passed_and_promoted_once_each_in_order() -> None:
    simulation = deployed()
    simulation.set_version("2.0.0")
    simulation.settle()
    run_checks(simulation, HEALTHY, 3)
    simulation.settle()

    assert simulation.kinds() == [
        RolloutEvent.STARTED,
        RolloutEvent.STEP_PASSED,
        RolloutEvent.STEP_PASSED,
        RolloutEvent.STEP_PASSED,
        RolloutEvent.PROMOTED,
    ]
    started, *steps, promoted = simulation.notices
    assert (started.version, started.stable_version, started.reason) == ("2.0.0", "1.0.0", "RolloutStarted")
    assert [(step.step, step.weight, step.reason) for step in steps] == [
        (1, 10, "CheckPassed"),
        (2, 25, "CheckPassed"),
        (3, 50, "CheckPassed"),
    ]
    error_rate = next(check for check in steps[0].checks if check.name == "errorRate")
    assert (error_rate.value, error_rate.verdict) == (HEALTHY.error_rate, "Passed")
    assert (promoted.version, promoted.reason) == ("2.0.0", simulation.status.history[-1].reason)
    assert len({notice.id for notice in simulation.notices}) == 5


def test_a_failed_check_notifies_the_rollback_with_its_reason_and_the_values_measured() -> None:
    simulation = deployed()
    simulation.set_version("2.0.0")
    simulation.settle()
    run_checks(simulation, ERRORING, 1)

    assert simulation.kinds() == [RolloutEvent.STARTED, RolloutEvent.ROLLED_BACK]
    rolled_back = simulation.notices[-1]
    assert rolled_back.reason == simulation.status.history[-1].reason
    assert (rolled_back.step, rolled_back.weight) == (1, 10)
    error_rate = next(check for check in rolled_back.checks if check.name == "errorRate")
    assert (error_rate.value, error_rate.verdict) == (ERRORING.error_rate, "Failed")


def test_a_pause_is_notified_once_and_resuming_is_not_an_event() -> None:
    simulation = deployed()
    simulation.set_version("2.0.0")
    simulation.settle()
    simulation.paused = True
    simulation.settle()
    simulation.paused = False
    simulation.settle()

    assert simulation.kinds() == [RolloutEvent.STARTED, RolloutEvent.PAUSED]
    assert simulation.notices[-1].step == 1


def test_a_manual_step_is_a_step_passed_and_promote_full_skips_straight_to_promoted() -> None:
    simulation = deployed()
    simulation.set_version("2.0.0")
    simulation.settle()
    simulation.reconcile(action=Action.PROMOTE)
    simulation.reconcile(action=Action.PROMOTE_FULL)
    simulation.settle()

    assert simulation.kinds() == [
        RolloutEvent.STARTED,
        RolloutEvent.STEP_PASSED,
        RolloutEvent.PROMOTED,
    ]
    assert (simulation.notices[1].step, simulation.notices[1].reason) == (1, "ManualPromotion")


def test_an_abort_is_notified_as_a_rollback_with_the_reason_aborted() -> None:
    simulation = deployed()
    simulation.set_version("2.0.0")
    simulation.settle()
    simulation.reconcile(action=Action.ABORT)

    assert simulation.kinds() == [RolloutEvent.STARTED, RolloutEvent.ROLLED_BACK]
    assert simulation.notices[-1].reason == "Aborted"


def test_an_experiment_that_kept_the_stable_version_is_notified_as_a_rollback_with_its_reason() -> None:
    subject = Subject(namespace="ml", name="iris", uid="uid-1", steps=0)
    kept = HistoryEntry(
        version="2.0.0",
        outcome=Outcome.KEPT,
        started_at=T0,
        finished_at=T0 + timedelta(hours=1),
        reason="ExperimentKept",
    )
    status = ModelDeploymentStatus(history=[kept])

    notices = rollout_notices(subject, ModelDeploymentStatus(), status, T0 + timedelta(hours=1))

    assert [(notice.event, notice.version, notice.reason) for notice in notices] == [
        (RolloutEvent.ROLLED_BACK, "2.0.0", "ExperimentKept")
    ]


def test_a_superseded_rollout_is_followed_only_by_the_next_rollouts_start() -> None:
    simulation = deployed()
    simulation.set_version("2.0.0")
    simulation.settle()
    simulation.wait("1s")
    simulation.set_version("3.0.0")
    simulation.settle()

    assert [(notice.event, notice.version) for notice in simulation.notices] == [
        (RolloutEvent.STARTED, "2.0.0"),
        (RolloutEvent.STARTED, "3.0.0"),
    ]
    assert simulation.notices[0].id != simulation.notices[1].id


def test_the_same_transition_always_gets_the_same_event_id() -> None:
    simulation = deployed()
    simulation.set_version("2.0.0")
    previous = simulation.status
    plan = simulation.reconcile()

    first = rollout_notices(SUBJECT, previous, plan.status, simulation.now)
    again = rollout_notices(SUBJECT, previous, plan.status, simulation.now + timedelta(seconds=5))
    other = rollout_notices(Subject("ml", "fraud", "uid-2", 3), previous, plan.status, simulation.now)

    assert [notice.id for notice in first] == [notice.id for notice in again]
    assert first[0].id != other[0].id


def test_spec_receivers_replace_the_operators_defaults_and_events_filter_what_is_sent() -> None:
    notice = rollout_notices(SUBJECT, ModelDeploymentStatus(), ModelDeploymentStatus(rollout_started_at=T0), T0)[0]
    only_ends = NotificationsSpec(receivers=["team"], events=[RolloutEvent.PROMOTED, RolloutEvent.ROLLED_BACK])

    assert wanted_receivers(None, ("ops",)) == ("ops",)
    assert wanted_receivers(only_ends, ("ops",)) == ("team",)
    assert wanted_receivers(NotificationsSpec(), ("ops",)) == ()
    assert wanted(None, notice)
    assert not wanted(only_ends, notice)


def notified(status: ModelDeploymentStatus) -> tuple[str, str, str]:
    condition = next(c for c in status.conditions if c.type == NOTIFIED)
    return condition.status, condition.reason, condition.message


def test_an_unknown_receiver_is_a_false_condition_and_one_warning_event_not_an_error() -> None:
    book = ReceiverBook(frozenset({"team"}))
    status, events = notification_status(ModelDeploymentStatus(), ("team", "typo"), book, DeliveryReport(), T0)
    again, repeated = notification_status(status, ("team", "typo"), book, DeliveryReport(), T0)

    assert notified(status) == ("False", "UnknownReceiver", "not in the notification Secret (or invalid): typo")
    assert [(event.type, event.reason) for event in events] == [("Warning", "UnknownReceiver")]
    assert repeated == ()
    assert again == status


def test_deliveries_are_counted_and_a_failure_shows_until_a_later_delivery_succeeds() -> None:
    book = ReceiverBook(frozenset({"team"}))
    status, _ = notification_status(ModelDeploymentStatus(), ("team",), book, DeliveryReport(delivered=2), T0)
    assert notified(status)[:2] == ("True", "Delivering")

    failing, events = notification_status(status, ("team",), book, DeliveryReport(failed=1, latest_failed=True), T0)
    assert notified(failing)[:2] == ("False", "DeliveryFailed")
    assert [event.reason for event in events] == ["DeliveryFailed"]
    still, _ = notification_status(failing, ("team",), book, DeliveryReport(), T0)
    assert notified(still)[:2] == ("False", "DeliveryFailed")

    recovered, _ = notification_status(still, ("team",), book, DeliveryReport(delivered=1, latest_failed=False), T0)
    assert notified(recovered)[:2] == ("True", "Delivering")
    assert recovered.notifications is not None
    assert (recovered.notifications.delivered, recovered.notifications.failed) == (3, 1)


def test_without_receivers_the_status_gets_no_notified_condition() -> None:
    status, events = notification_status(ModelDeploymentStatus(), (), ReceiverBook(), DeliveryReport(), T0)
    assert (status, events) == (ModelDeploymentStatus(), ())


def test_an_unreadable_secret_says_so_in_fixed_words() -> None:
    book = ReceiverBook(problem="the notification Secret ops/hooks does not exist")
    status, _ = notification_status(ModelDeploymentStatus(), ("team",), book, DeliveryReport(), T0)
    assert notified(status) == (
        "False",
        "ReceiverSecretUnavailable",
        "the notification Secret ops/hooks does not exist",
    )


def rolled_back_notice() -> RolloutNotice:
    simulation = deployed()
    simulation.set_version("2.0.0")
    simulation.settle()
    run_checks(simulation, ERRORING, 1)
    return simulation.notices[-1]


def test_the_cloudevent_is_structured_mode_1_0_with_a_stable_id_and_a_rollout_type() -> None:
    notice = rolled_back_notice()
    event, content_type = body(notice, BodyFormat.CLOUDEVENTS)

    assert content_type == "application/cloudevents+json"
    assert event["specversion"] == "1.0"
    assert event["id"] == notice.id
    assert event["type"] == "dev.sluice.rollout.rolledback"
    assert event["source"] == "/apis/sluice.dev/v1alpha1/namespaces/ml/modeldeployments/fraud"
    assert event["data"]["version"] == "2.0.0"
    assert {"name": "errorRate", "value": ERRORING.error_rate}.items() <= event["data"]["checks"][1].items()
    json.dumps(event)


def test_the_slack_body_has_a_text_fallback_and_blocks_with_the_check_values() -> None:
    notice = rolled_back_notice()
    message = slack_body(notice)

    assert message["text"] == f":rewind: {notice.summary}"
    assert message["text"].startswith(":rewind: ml/fraud: 2.0.0 rolled back at step 1/3, 10% (")
    assert any("errorRate = 0.31" in block.get("text", {}).get("text", "") for block in message["blocks"])


def test_no_metric_message_reaches_a_body() -> None:
    notice = rolled_back_notice()
    text = json.dumps([cloudevent(notice), slack_body(notice)])
    assert "message" not in text
