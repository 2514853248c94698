"""Sticky A/B assignment on the stable server: the hashing of entity keys into arms, the candidate's share sent on
over loopback, and the exposure counts and lines."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter

import pytest

from sluice_serving import contract
from sluice_serving.app import App, Reply
from sluice_serving.experiment import Experiment, assign, groups
from sluice_serving.server import Server
from unit.serving.support import ModelFiles, rows_body
from unit.serving.test_serving_app import INFER, make_app, value


def test_a_key_always_gets_the_same_arm_and_the_split_holds_over_many_keys() -> None:
    keys = [f"user-{i}".encode() for i in range(10_000)]
    arms = [assign("exp1", 30, key).arm for key in keys]
    assert arms == [assign("exp1", 30, key).arm for key in keys]
    share = arms.count(contract.ARM_B) / len(arms)
    assert 0.28 < share < 0.32, share
    reshuffled = [assign("exp2", 30, key).arm for key in keys]
    assert 0.5 < sum(a == b for a, b in zip(arms, reshuffled, strict=True)) / len(keys) < 0.7


def test_a_bucket_below_the_split_is_arm_b_and_its_group_is_the_bucket_by_ten() -> None:
    for i in range(200):
        assignment = assign("exp", 50, str(i).encode())
        assert assignment.bucket is not None
        assert assignment.arm == (contract.ARM_B if assignment.bucket < 50 else contract.ARM_A)
        assert assignment.group == str(assignment.bucket // 10)
        assert assignment.key_hash is not None
        assert len(assignment.key_hash) == 32


def test_a_request_without_the_key_is_unassigned() -> None:
    assert assign("exp", 50, None).arm == contract.ARM_UNASSIGNED
    assert assign("exp", 50, b"").arm == contract.ARM_UNASSIGNED


def test_the_groups_of_a_split_hold_each_arm_its_buckets_fall_in() -> None:
    pairs = groups(25)
    assert (contract.ARM_B, "2") in pairs
    assert (contract.ARM_A, "2") in pairs
    assert (contract.ARM_A, "0") not in pairs
    assert (contract.ARM_B, "3") not in pairs
    assert len(pairs) == 11


def experiment_app(classifier: ModelFiles, candidate_url: str, **env: str) -> App:
    settings = {
        "SLUICE_EXPERIMENT_ID": "exp",
        "SLUICE_EXPERIMENT_HEADER": "X-User",
        "SLUICE_EXPERIMENT_SPLIT": "50",
        "SLUICE_EXPERIMENT_CANDIDATE_URL": candidate_url,
        "SLUICE_EXPERIMENT_CANDIDATE_VERSION": "8",
        "SLUICE_TRACK": "stable",
        "SLUICE_REQUEST_TIMEOUT": "2",
        **env,
    }
    app = make_app(classifier, **settings)
    assert app.cfg.experiment is not None
    app.experiment = Experiment(app.cfg.experiment, "7", app.metrics, timeout=2.0, limit=1 << 20)
    return app


async def answer(app: App, key: bytes | None, body: bytes) -> Reply:
    reply = app.handle("POST", INFER, body, None, key)
    return reply if isinstance(reply, Reply) else await reply


def keyed(arm: str, count: int) -> list[bytes]:
    return [key for i in range(200) if assign("exp", 50, key := f"u{i}".encode()).arm == arm][:count]


def test_arm_b_is_answered_by_the_candidate_arm_a_here_and_both_are_counted(classifier: ModelFiles) -> None:
    body = rows_body(classifier.rows[:1])

    async def scenario() -> tuple[Counter[tuple[str, str]], App, App]:
        candidate = make_app(classifier, MODEL_VERSION="8")
        server = Server(candidate)
        port = await server.start("127.0.0.1", 0)
        stable = experiment_app(classifier, f"http://127.0.0.1:{port}")
        seen: Counter[tuple[str, str]] = Counter()
        for arm in (contract.ARM_A, contract.ARM_B):
            for key in keyed(arm, 5):
                reply = await answer(stable, key, body)
                assert reply.status == 200, reply.body
                assert b"x-sluice-arm: " + arm.encode() in reply.headers
                seen[arm, json.loads(reply.body)["model_version"]] += 1
        reply = await answer(stable, None, body)
        seen["unassigned", json.loads(reply.body)["model_version"]] += 1
        await server.drain(0)
        return seen, stable, candidate

    seen, stable, candidate = asyncio.run(scenario())
    assert seen == {("A", "7"): 5, ("B", "8"): 5, ("unassigned", "7"): 1}
    exposures = f"{contract.EXPOSURES}_total"
    assert sum(value(stable, exposures, track="stable", arm="B", served="8", code="200", group=g)
               for g in "01234") == 5  # fmt: skip
    assert value(stable, exposures, track="stable", arm="unassigned", group="none", served="7", code="200") == 1
    candidate_requests = value(candidate, "sluice_serving_requests_total", version="8", endpoint="infer", code="200")
    assert candidate_requests == 5, "the candidate counts B's requests as its own"


def test_an_unreachable_candidate_is_a_502_counted_for_arm_b(classifier: ModelFiles) -> None:
    stable = experiment_app(classifier, "http://127.0.0.1:9")
    reply = asyncio.run(answer(stable, keyed(contract.ARM_B, 1)[0], rows_body(classifier.rows[:1])))
    assert reply.status == 502
    groups_502 = sum(
        value(stable, f"{contract.EXPOSURES}_total", track="stable", arm="B", code="502", group=g, served="8")
        for g in "01234"
        if assign("exp", 50, keyed(contract.ARM_B, 1)[0]).group == g
    )
    assert groups_502 == 1


def test_the_exposure_log_has_one_line_per_assigned_request_with_the_keys_hash_only(
    classifier: ModelFiles, caplog: pytest.LogCaptureFixture
) -> None:
    stable = experiment_app(classifier, "http://127.0.0.1:9", SLUICE_EXPOSURE_LOG="true")
    key = keyed(contract.ARM_A, 1)[0]
    with caplog.at_level(logging.INFO, logger="sluice_serving.exposure"):
        asyncio.run(answer(stable, key, rows_body(classifier.rows[:1])))
        asyncio.run(answer(stable, None, rows_body(classifier.rows[:1])))
    lines = [r for r in caplog.records if r.name == "sluice_serving.exposure"]
    assert len(lines) == 1
    line = lines[0].__dict__
    assert (line["arm"], line["version"], line["code"], line["experiment"]) == ("A", "7", 200, "exp")
    assert line["key_hash"] == assign("exp", 50, key).key_hash
    assert key.decode() not in str(line)


def test_a_request_naming_its_version_is_answered_by_that_version_and_not_assigned(classifier: ModelFiles) -> None:
    stable = experiment_app(classifier, "http://127.0.0.1:9")
    path = "/v2/models/model/versions/7/infer"
    reply = stable.handle("POST", path, rows_body(classifier.rows[:1]), None, keyed(contract.ARM_B, 1)[0])
    assert isinstance(reply, Reply)
    assert reply.status == 200
    assert b"x-sluice-arm" not in reply.headers
