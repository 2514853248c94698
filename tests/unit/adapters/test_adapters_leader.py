"""Leader election: the pure decision (free, expired, ours -> acquire, renew, wait) and the Lease (de)serialization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sluice.adapters.leader import (
    Action,
    LeaseRecord,
    Observation,
    decide,
    observe,
    record_of,
    spec_of,
)
from sluice.settings import Settings

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
DURATION = timedelta(seconds=15)
ME = "pod-a_1234"
OTHER = "pod-b_5678"


def held_by(holder: str | None, *, renewed: datetime = T0, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        lease_duration_seconds=15,
        acquire_time=T0 - timedelta(minutes=5),
        renew_time=renewed,
        transitions=transitions,
    )


def test_no_lease_is_created_held_by_us() -> None:
    decision = decide(None, identity=ME, now=T0, lease_duration=DURATION)
    assert decision.action is Action.CREATE
    assert decision.record == LeaseRecord(ME, 15, T0, T0, 0)


def test_our_own_lease_is_renewed_keeping_its_acquire_time_and_transitions() -> None:
    later = T0 + timedelta(seconds=5)
    decision = decide(Observation(held_by(ME), T0), identity=ME, now=later, lease_duration=DURATION)
    assert decision.action is Action.RENEW
    assert decision.record == LeaseRecord(ME, 15, T0 - timedelta(minutes=5), later, 3)


def test_our_own_lease_is_renewed_even_when_it_looks_expired() -> None:
    decision = decide(Observation(held_by(ME), T0), identity=ME, now=T0 + timedelta(hours=1))
    assert decision.action is Action.RENEW


@pytest.mark.parametrize("holder", [None, ""])
def test_a_released_lease_is_taken_at_once(holder: str | None) -> None:
    decision = decide(Observation(held_by(holder), T0), identity=ME, now=T0, lease_duration=DURATION)
    assert decision.action is Action.ACQUIRE
    assert decision.record == LeaseRecord(ME, 15, T0, T0, 4)


@pytest.mark.parametrize("seconds_since_seen", [0, 5, 14.999])
def test_someone_elses_live_lease_is_waited_for(seconds_since_seen: float) -> None:
    now = T0 + timedelta(seconds=seconds_since_seen)
    decision = decide(Observation(held_by(OTHER), T0), identity=ME, now=now, lease_duration=DURATION)
    assert decision.action is Action.WAIT
    assert decision.record is None


def test_someone_elses_lease_expires_its_duration_after_we_last_saw_it_change() -> None:
    now = T0 + DURATION
    decision = decide(Observation(held_by(OTHER), T0), identity=ME, now=now, lease_duration=DURATION)
    assert decision.action is Action.ACQUIRE
    assert decision.record == LeaseRecord(ME, 15, now, now, 4)


def test_expiry_uses_the_holders_lease_duration() -> None:
    short = LeaseRecord(OTHER, 1, T0, T0, 0)
    assert decide(Observation(short, T0), identity=ME, now=T0 + timedelta(seconds=1)).action is Action.ACQUIRE
    long = LeaseRecord(OTHER, 60, T0, T0, 0)
    assert decide(Observation(long, T0), identity=ME, now=T0 + timedelta(seconds=30)).action is Action.WAIT


def test_expiry_follows_our_clock_not_the_holders_renew_time() -> None:
    """A holder whose clock is an hour behind still holds the lease while it keeps renewing."""
    skewed = held_by(OTHER, renewed=T0 - timedelta(hours=1))
    assert decide(Observation(skewed, T0), identity=ME, now=T0 + timedelta(seconds=10)).action is Action.WAIT


def test_a_renewal_restarts_the_expiry_clock_and_an_unchanged_record_does_not() -> None:
    first = observe(None, held_by(OTHER), T0)
    unchanged = observe(first, held_by(OTHER), T0 + timedelta(seconds=10))
    assert unchanged.seen_at == T0
    assert decide(unchanged, identity=ME, now=T0 + DURATION).action is Action.ACQUIRE
    renewed = observe(unchanged, held_by(OTHER, renewed=T0 + timedelta(seconds=10)), T0 + timedelta(seconds=10))
    assert renewed.seen_at == T0 + timedelta(seconds=10)
    assert decide(renewed, identity=ME, now=T0 + DURATION).action is Action.WAIT


def test_the_lease_spec_round_trips_with_micro_times() -> None:
    record = LeaseRecord(ME, 15, T0, T0 + timedelta(microseconds=123456), 2)
    spec = spec_of(record)
    assert spec["renewTime"] == "2025-01-01T12:00:00.123456Z"
    assert record_of({"spec": spec}) == record
    assert record_of({"spec": {}}) == LeaseRecord()


def test_leader_election_is_off_by_default_and_takes_its_namespace_from_the_pod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLUICE_LEADER_ELECTION_LEASE", raising=False)
    monkeypatch.delenv("SLUICE_LEADER_ELECTION_NAMESPACE", raising=False)
    monkeypatch.setenv("POD_NAMESPACE", "sluice-system")
    assert Settings.from_command_line([]).leader_election_lease == ""
    settings = Settings.from_command_line(["--leader-election-lease", "sluice-leader"])
    assert (settings.leader_election_lease, settings.leader_election_namespace) == ("sluice-leader", "sluice-system")


def test_a_lease_without_a_namespace_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.delenv("SLUICE_LEADER_ELECTION_NAMESPACE", raising=False)
    monkeypatch.setenv("SLUICE_LEADER_ELECTION_LEASE", "sluice-leader")
    with pytest.raises(ValueError, match="leader_election_namespace"):
        Settings.from_command_line([])
