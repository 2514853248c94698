"""A sticky A/B experiment end to end (spec.experiment): the real control plane (kwok pods), the real operator,
real `sluice-serving` processes (`harness.dataplane`), the real Prometheus. The test plays the Gateway: the
HTTPRoute sends everything to the stable Service (`DataPlane.routing`); the stable server assigns each entity key
an arm and sends arm B's requests to the candidate's Service, whose in-cluster URL the operator's
`canary_url_template` points at `harness.dataplane.ServiceFront` here.

The stable version 1.0.0 fails 20% of its requests (SLUICE_FAULT_ERROR_RATE); the candidate 2.0.0 none. 1,000
requests from 100 entity keys (10 each, interleaved, 8 at a time) within 45 s, then the experiment (duration 60 s,
a check every 3 s, metric: 5xx answers per arm, from the stable server's exposure counts) ends by its rule: B is
better, so it is promoted, and the outcome is in the history. Every key must see exactly one arm and one version
across the whole experiment, and the share of requests B answered must be exactly what the keys' buckets say.

(How close that share comes to the split is the keys' luck: 100 keys put 50% +-5 points on B only about 7 times in
10. The hashing's split over many keys is the unit test's, tests/unit/serving/test_serving_experiment.py; here the
share must be within 15 points, three standard deviations.)
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest

from e2e.support import Scenario, finished
from harness.dataplane import ServiceFront, ServingInstance
from harness.routing import Request
from harness.sticky import ERRORS, KEYS, REQUESTS_PER_KEY, SPLIT, SPLIT_TOLERANCE
from sluice_serving.experiment import assign
from unit.serving.support import rows_body

pytestmark = pytest.mark.e2e
SERVICE_FRONT = True
"""The operator's canary_url_template is the `front` fixture's (conftest.py)."""

DURATION_SECONDS = 60
LOAD_SECONDS = 45.0
"""The load must be over well within the experiment's duration, so that every request falls inside it."""
WORKERS = 8
CHUNK = 100


class Experimented(Scenario):
    """The canary scenario with an experiment instead of the steps."""

    def spec(self, version: str, **analysis: Any) -> dict[str, Any]:
        spec = super().spec(version, **analysis)
        spec["rollout"]["interval"] = "3s"
        spec["experiment"] = {
            "duration": f"{DURATION_SECONDS}s",
            "split": SPLIT,
            "stickyBy": {"header": "X-User"},
            "metrics": [{"name": "errors", "query": ERRORS}],
        }
        return spec


def assigning(scenario: Scenario) -> bool:
    """The experiment has started and every ready stable process assigns the arms."""
    experiment = scenario.status().get("experiment") or {}
    stable = [i for i in scenario.dataplane.instances() if i.track == "stable"]
    return bool(experiment.get("startedAt")) and bool(stable) and all("SLUICE_EXPERIMENT_ID" in i.env for i in stable)


def send_all(scenario: Scenario, body: bytes) -> list[tuple[str, str, int, str | None]]:
    """1,000 requests, 10 per key in a shuffled order, WORKERS at a time, in chunks of CHUNK to the stable
    processes the route picks (read again before each chunk); (key, arm, status, version) per answer. Bounded by
    count and by LOAD_SECONDS."""
    order = [key for key in KEYS for _ in range(REQUESTS_PER_KEY)]
    random.Random(7).shuffle(order)
    answers: list[tuple[str, str, int, str | None]] = []
    deadline = time.monotonic() + LOAD_SECONDS
    path = f"/v2/models/{scenario.name}/infer"
    with (
        httpx.Client(timeout=10.0, limits=httpx.Limits(max_connections=WORKERS)) as http,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        for start in range(0, len(order), CHUNK):
            assert time.monotonic() < deadline, f"only {start} requests answered in {LOAD_SECONDS} s"
            split = scenario.dataplane.routing(scenario.name, Request(path))
            backends = [i for weight, instances in split if weight > 0 for i in instances]
            assert backends, "the route sends the requests to ready stable processes"

            def send(key: str, backends: list[ServingInstance] = backends) -> tuple[str, str, int, str | None]:
                response = http.post(
                    random.choice(backends).base_url + path,
                    content=body,
                    headers={"X-User": key, "Content-Type": "application/json"},
                )
                ok = response.status_code == 200
                version = json.loads(response.content).get("model_version") if ok else None
                return key, response.headers.get("x-sluice-arm", ""), response.status_code, version

            answers += pool.map(send, order[start : start + CHUNK])
    return answers


def test_each_entity_key_sees_one_version_and_the_experiment_promotes_the_better_candidate(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario], front: ServiceFront
) -> None:
    base = scenario_factory({"1.0.0": {"SLUICE_FAULT_ERROR_RATE": "0.2"}})
    front.add(base.dataplane)
    scenario = Experimented(base.api_client, base.namespace, base.operator, base.dataplane, base.model)
    scenario.start_stable("1.0.0")
    scenario.set_version("2.0.0")
    scenario.wait(lambda: assigning(scenario), "the experiment started, the stable processes assigning the arms")
    experiment_id = scenario.status()["experiment"]["id"]
    ends_at = datetime.fromisoformat(scenario.status()["experiment"]["startedAt"]).timestamp() + DURATION_SECONDS

    answers = send_all(scenario, rows_body(scenario.model.rows[:1], "FP32"))
    assert time.time() < ends_at, f"the load ended {time.time() - ends_at:.1f} s after the experiment"
    scenario.follow(lambda s: finished("Promoted")(s) and s.get("phase") == "Stable", "the experiment's promotion")

    arms, versions = defaultdict(set), defaultdict(set)
    for key, arm, _, version in answers:
        arms[key].add(arm)
        if version is not None:
            versions[key].add(version)
    assert len(answers) == len(KEYS) * REQUESTS_PER_KEY
    assert all(len(arms[key]) == 1 for key in KEYS), {k: a for k, a in arms.items() if len(a) != 1}
    assert all(len(versions[key]) == 1 for key in KEYS), {k: v for k, v in versions.items() if len(v) != 1}
    expected = {key: assign(experiment_id, SPLIT, key.encode()).arm for key in KEYS}
    assert {key: next(iter(arms[key])) for key in KEYS} == expected
    assert all(versions[key] == {"2.0.0" if expected[key] == "B" else "1.0.0"} for key in KEYS)
    share_b = 100 * sum(arm == "B" for _, arm, _, _ in answers) / len(answers)
    assert abs(share_b - SPLIT) <= SPLIT_TOLERANCE, share_b
    status = scenario.status()
    assert status["history"][-1]["outcome"] == "Promoted"
    assert status["stableVersion"] == "2.0.0"
    assert status["experiment"]["decision"] == "Promote"
    assert status["experiment"]["samplesA"] > 100
    assert status["experiment"]["samplesB"] > 100
    assert [m["comparison"] for m in status["experiment"]["metrics"]] == ["Better"]
    counted = status["experiment"]["samplesA"] + status["experiment"]["samplesB"]
    # Counted by each stable process's last value (increase() once read 0 when the load beat the first scrape).
    assert abs(counted - len(answers)) <= 0.05 * len(answers), "the exposure counts are the requests the keys sent"
