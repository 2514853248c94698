"""Delivering rollout notices: retries with exponential backoff within bounds, per-receiver order, a bounded queue
that drops and counts, no redirect followed, each event once; and the receivers read from the one Secret."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from kubernetes.client.exceptions import ApiException

from sluice.adapters.notifier import ANSWER_BYTES, DeliveryPolicy, Notifier
from sluice.adapters.receivers import Receiver, SecretReceivers, parse_receivers
from sluice.api.v1alpha1 import RolloutEvent
from sluice.core.notification_bodies import BodyFormat
from sluice.core.notifications import DeliveryReport, RolloutNotice, Subject

KEY = ("ml", "fraud")
TEAM = Receiver("team", "http://hooks.test/team", BodyFormat.CLOUDEVENTS)
CHAT = Receiver("chat", "http://hooks.test/chat", BodyFormat.SLACK)
QUICK = DeliveryPolicy(backoff=0.5)


def notice(number: int, event: RolloutEvent = RolloutEvent.STEP_PASSED) -> RolloutNotice:
    return RolloutNotice(
        id=f"id-{number}",
        event=event,
        subject=Subject("ml", "fraud", "uid", 3),
        time=datetime(2025, 3, 1, tzinfo=UTC),
        version="2.0.0",
        revision=2,
        stable_version="1.0.0",
        step=number,
        weight=10,
        reason="CheckPassed",
    )


@dataclass
class Receiving:
    """An in-process webhook receiver: answers each request with the next status of `answers` (then 200)."""

    answers: list[int] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    now: float = 0.0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.answers.pop(0) if self.answers else 200
        headers = {"location": "http://elsewhere.test/"} if 300 <= status < 400 else {}
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(b"ok"))

    def received(self, path: str = "/team") -> list[str]:
        """The ids of the events the receiver at `path` answered with 2xx, in order (as sent, retries included)."""
        return [json.loads(r.content)["id"] for r in self.requests if r.url.path == path]

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def deliver(
    receiving: Receiving,
    send: Callable[[Notifier], None],
    policy: DeliveryPolicy = QUICK,
    ended: int = 1,
) -> Notifier:
    """Run a notifier on `receiving` until `ended` deliveries ended."""

    async def scenario() -> Notifier:
        finished = asyncio.Semaphore(0)
        notifier = Notifier(
            policy,
            on_outcome=lambda _key: finished.release(),
            transport=httpx.MockTransport(receiving.handle),
            sleep=receiving.sleep,
            clock=receiving.clock,
        )
        send(notifier)
        async with asyncio.timeout(10):
            for _ in range(ended):
                await finished.acquire()
        await notifier.close()
        return notifier

    return asyncio.run(scenario())


def test_a_receiver_failing_twice_gets_the_notice_on_the_third_attempt_after_doubling_waits() -> None:
    receiving = Receiving(answers=[500, 503])
    notifier = deliver(receiving, lambda n: n.send(KEY, [TEAM], [notice(1)]))

    assert receiving.received() == ["id-1", "id-1", "id-1"]
    assert receiving.waits == [0.5, 1.0]
    assert notifier.report(KEY) == DeliveryReport(delivered=1, latest_failed=False)


def test_notices_reach_each_receiver_in_the_order_sent_even_when_the_first_needs_retries() -> None:
    receiving = Receiving(answers=[500])
    notices = [notice(1), notice(2), notice(3)]
    deliver(receiving, lambda n: n.send(KEY, [TEAM, CHAT], notices), ended=6)

    team = [json.loads(r.content)["id"] for r in receiving.requests if r.url.path == "/team"]
    chat = [json.loads(r.content)["text"] for r in receiving.requests if r.url.path == "/chat"]
    assert team in (["id-1", "id-1", "id-2", "id-3"], ["id-1", "id-2", "id-3"])
    assert len(team) + len(chat) == 7
    assert [text.split(" at step ")[1][0] for text in chat] in (["1", "1", "2", "3"], ["1", "2", "3"])


def test_attempts_are_bounded_and_a_notice_still_failing_is_counted_failed() -> None:
    receiving = Receiving(answers=[500] * 10)
    notifier = deliver(receiving, lambda n: n.send(KEY, [TEAM], [notice(1)]), DeliveryPolicy(attempts=3, backoff=1))

    assert len(receiving.requests) == 3
    assert receiving.waits == [1, 2]
    assert notifier.report(KEY) == DeliveryReport(failed=1, latest_failed=True)


def test_no_retry_starts_after_the_deadline() -> None:
    receiving = Receiving(answers=[500] * 10)
    policy = DeliveryPolicy(attempts=10, backoff=4, deadline=10)
    deliver(receiving, lambda n: n.send(KEY, [TEAM], [notice(1)]), policy)

    assert receiving.waits == [4]


def test_a_refusal_is_final_and_a_redirect_is_not_followed() -> None:
    receiving = Receiving(answers=[400, 302])
    notifier = deliver(receiving, lambda n: n.send(KEY, [TEAM], [notice(1), notice(2)]), ended=2)

    assert [request.url.host for request in receiving.requests] == ["hooks.test", "hooks.test"]
    assert receiving.waits == []
    assert notifier.report(KEY) == DeliveryReport(failed=2, latest_failed=True)


def test_a_full_queue_drops_the_notice_counts_it_and_does_not_wait() -> None:
    receiving = Receiving()
    notices = [notice(number) for number in range(1, 5)]
    notifier = deliver(receiving, lambda n: n.send(KEY, [TEAM], notices), DeliveryPolicy(queue_size=2), ended=4)

    assert receiving.received() == ["id-1", "id-2"]
    assert notifier.report(KEY) == DeliveryReport(delivered=2, dropped=2, latest_failed=False)


def test_an_event_is_sent_to_a_receiver_once_however_often_it_is_queued() -> None:
    receiving = Receiving()

    def send_twice(notifier: Notifier) -> None:
        notifier.send(KEY, [TEAM], [notice(1)])
        notifier.send(KEY, [TEAM], [notice(1), notice(2)])

    deliver(receiving, send_twice, ended=2)
    assert receiving.received() == ["id-1", "id-2"]


def test_acknowledged_deliveries_are_not_reported_again() -> None:
    receiving = Receiving()
    notifier = deliver(receiving, lambda n: n.send(KEY, [TEAM], [notice(1)]))
    notifier.acknowledge(KEY, notifier.report(KEY))
    assert notifier.report(KEY) == DeliveryReport()


def test_the_body_follows_the_receivers_format() -> None:
    receiving = Receiving()
    deliver(receiving, lambda n: n.send(KEY, [TEAM, CHAT], [notice(1)]), ended=2)

    by_path = {request.url.path: request for request in receiving.requests}
    assert by_path["/team"].headers["content-type"] == "application/cloudevents+json"
    assert json.loads(by_path["/team"].content)["specversion"] == "1.0"
    assert set(json.loads(by_path["/chat"].content)) == {"text", "blocks"}


# --- the receivers' Secret ----------------------------------------------------------------------------------------


def encoded(data: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}


def test_secret_keys_name_receivers_and_a_format_key_picks_the_body() -> None:
    receivers = parse_receivers(
        encoded(
            {
                "team": "https://hooks.example.com/T1/abc",
                "chat": "https://hooks.slack.com/services/T/B/x",
                "chat.format": "slack",
                "ftp": "ftp://example.com/",
                "Bad_Name": "https://example.com/",
                "odd": "https://example.com/",
                "odd.format": "xml",
            }
        )
    )

    assert {name: receiver.body_format for name, receiver in receivers.items()} == {
        "chat": BodyFormat.SLACK,
        "team": BodyFormat.CLOUDEVENTS,
    }
    assert "hooks" not in repr(receivers)


def test_the_secret_is_read_by_name_and_kept_for_its_ttl() -> None:
    reads: list[str] = []
    now = [0.0]

    async def get(path: str) -> dict[str, Any] | None:
        reads.append(path)
        return {"data": encoded({"team": "https://hooks.example.com/x"})}

    source = SecretReceivers(get, "sluice-system", "hooks", ttl=30, clock=lambda: now[0])

    async def read_at(*times: float) -> None:
        for time in times:
            now[0] = time
            assert set((await source.read()).by_name) == {"team"}

    asyncio.run(read_at(0, 10, 29, 31))
    assert reads == ["/api/v1/namespaces/sluice-system/secrets/hooks"] * 2


def test_a_missing_or_forbidden_secret_is_a_problem_in_fixed_words() -> None:
    async def missing(_path: str) -> dict[str, Any] | None:
        return None

    async def forbidden(_path: str) -> dict[str, Any] | None:
        raise ApiException(status=403, reason="Forbidden")

    assert asyncio.run(SecretReceivers(missing, "ops", "hooks").read()).problem == (
        "the notification Secret ops/hooks does not exist"
    )
    assert asyncio.run(SecretReceivers(forbidden, "ops", "hooks").read()).problem == (
        "the notification Secret ops/hooks could not be read (HTTP 403)"
    )
    assert asyncio.run(SecretReceivers(missing, "ops", "").read()).problem == (
        "the operator has no notification Secret (notifications.secretName)"
    )


def test_a_huge_answer_is_read_only_up_to_the_cap_and_its_status_still_counts() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"x" * (ANSWER_BYTES * 4)))

    async def scenario() -> DeliveryReport:
        finished = asyncio.Event()
        notifier = Notifier(transport=httpx.MockTransport(huge), on_outcome=lambda _key: finished.set())
        notifier.send(KEY, [TEAM], [notice(1)])
        async with asyncio.timeout(10):
            await finished.wait()
        await notifier.close()
        return notifier.report(KEY)

    assert asyncio.run(scenario()) == DeliveryReport(delivered=1, latest_failed=False)
