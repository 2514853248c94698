"""The reconciler with notifications on an in-memory cluster: it queues a transition's events once its status is
written and never waits for a webhook; deliveries show in the status; an unknown receiver is a condition and an
Event, never an error."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest

from sluice.adapters.notifier import Notifications, Notifier
from sluice.adapters.receivers import SecretReceivers
from sluice.api.v1alpha1 import KIND
from sluice.core.conditions import find_condition
from sluice.core.notifications import NOTIFIED, DeliveryReport
from sluice.reconciler import ObjectGoneError, Reconciler
from unit.operator.test_reconciler import NAME, NAMES, NAMESPACE, Harness, spec, stable

HOOK = "https://hooks.example.com/T0/token"


async def secret(_path: str) -> dict[str, Any] | None:
    return {"data": {"team": base64.b64encode(HOOK.encode()).decode()}}


def notifying(harness: Harness, notifier: Notifier) -> Reconciler:
    reconciler = harness.reconciler()
    reconciler.notifications = Notifications(notifier, SecretReceivers(secret, "sluice-system", "hooks"))
    return reconciler


def notified(harness: Harness) -> tuple[str, str]:
    found = find_condition(harness.cluster.status(NAMESPACE, NAME).conditions, NOTIFIED)
    assert found is not None
    return found.status, found.reason


def test_a_reconcile_queues_the_rollouts_start_and_returns_before_the_webhook_answers() -> None:
    harness = stable(Harness(), spec(notifications={"receivers": ["team"]}))
    posted: list[dict[str, Any]] = []

    async def scenario() -> None:
        answer = asyncio.Event()

        async def webhook(request: httpx.Request) -> httpx.Response:
            posted.append(json.loads(request.content))
            await answer.wait()
            return httpx.Response(204)

        delivered = asyncio.Event()
        notifier = Notifier(transport=httpx.MockTransport(webhook), on_outcome=lambda _key: delivered.set())
        reconciler = notifying(harness, notifier)
        harness.set_spec(spec("2.0.0", notifications={"receivers": ["team"]}))
        await reconciler.reconcile(NAMESPACE, NAME)
        await asyncio.sleep(0.05)
        assert [event["type"] for event in posted] == ["dev.sluice.rollout.started"]
        assert not delivered.is_set()  # the reconcile returned while the webhook still holds the request

        answer.set()
        async with asyncio.timeout(5):
            await delivered.wait()
        harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)
        await reconciler.reconcile(NAMESPACE, NAME)
        await notifier.close()

    asyncio.run(scenario())
    counts = harness.cluster.status(NAMESPACE, NAME).notifications
    assert counts is not None
    assert (counts.delivered, counts.failed, counts.dropped) == (1, 0, 0)
    assert notified(harness) == ("True", "Delivering")
    assert len(posted) == 1


def test_an_unknown_receiver_is_a_false_condition_and_a_warning_event_and_the_rollout_goes_on() -> None:
    harness = stable(Harness(), spec(notifications={"receivers": ["team", "typo"]}))

    async def scenario() -> None:
        notifier = Notifier(transport=httpx.MockTransport(lambda _request: httpx.Response(200)))
        reconciler = notifying(harness, notifier)
        harness.set_spec(spec("2.0.0", notifications={"receivers": ["team", "typo"]}))
        await reconciler.reconcile(NAMESPACE, NAME)
        await reconciler.reconcile(NAMESPACE, NAME)
        await notifier.close()

    asyncio.run(scenario())
    assert notified(harness) == ("False", "UnknownReceiver")
    assert harness.event_reasons().count("UnknownReceiver") == 1
    assert harness.cluster.status(NAMESPACE, NAME).canary_version == "2.0.0"
    assert all(HOOK not in event.message for event in harness.cluster.events)


def test_a_deleted_model_deployments_delivery_counts_are_dropped() -> None:
    harness = stable(Harness(), spec(notifications={"receivers": ["team"]}))

    async def scenario() -> DeliveryReport:
        delivered = asyncio.Event()
        notifier = Notifier(
            transport=httpx.MockTransport(lambda _request: httpx.Response(200)),
            on_outcome=lambda _key: delivered.set(),
        )
        reconciler = notifying(harness, notifier)
        harness.set_spec(spec("2.0.0", notifications={"receivers": ["team"]}))
        await reconciler.reconcile(NAMESPACE, NAME)
        async with asyncio.timeout(5):
            await delivered.wait()
        del harness.cluster.objects[(KIND, NAMESPACE, NAME)]
        with pytest.raises(ObjectGoneError):
            await reconciler.reconcile(NAMESPACE, NAME)
        await notifier.close()
        return notifier.report((NAMESPACE, NAME))

    assert asyncio.run(scenario()) == DeliveryReport()
