"""The readiness probe's watch-lag bookkeeping (sluice.adapters.health.WatchLag), on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sluice.adapters.health import WatchLag

KEY = ("ml", "fraud")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def lag() -> tuple[WatchLag, Clock]:
    clock = Clock()
    return WatchLag(timedelta(seconds=10), clock, leading=True), clock


def test_a_standby_is_ready_whatever_it_saw() -> None:
    watch, clock = lag()
    watch.leading = False
    watch.read(KEY, "5")
    clock.advance(60)
    assert watch.report() == (True, {"ready": True, "role": "standby"})


def test_a_read_the_watch_delivered_already_owes_nothing() -> None:
    watch, clock = lag()
    watch.delivered(KEY, "5")
    watch.read(KEY, "5")
    clock.advance(60)
    assert watch.report()[0]


def test_a_change_owed_for_longer_than_the_bound_is_a_stall_until_the_watch_delivers() -> None:
    watch, clock = lag()
    watch.delivered(KEY, "5")
    watch.read(KEY, "6")
    clock.advance(9)
    watch.read(KEY, "7")  # still owing since the first read; the clock does not restart
    assert watch.report()[0]
    clock.advance(2)
    ready, details = watch.report()
    assert not ready
    assert details["stalledWatch"] == {"ml/fraud": 11.0}
    watch.delivered(KEY, "6")
    assert watch.report()[0]


def test_an_object_read_before_its_first_event_is_owed_until_the_event_arrives() -> None:
    watch, clock = lag()
    watch.read(KEY, "1")
    clock.advance(11)
    assert not watch.report()[0]
    watch.delivered(KEY, None)  # an event without a resourceVersion still shows the stream is alive
    assert watch.report()[0]


def test_a_deleted_object_is_forgotten() -> None:
    watch, clock = lag()
    watch.read(KEY, "1")
    watch.forget(KEY)
    clock.advance(60)
    assert watch.report()[0]
