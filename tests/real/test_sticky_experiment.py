"""A sticky A/B experiment (spec.experiment) on the real node, as a user runs it: Traefik routes every request of
the model to the stable pods (Gateway API cannot split by a hash of a header), whose server assigns each entity key
an arm and sends arm B's requests on to the candidate's Service through CoreDNS and kube-proxy; Prometheus
discovers the pods and the operator pod reads the exposure counts from it. Two equally good versions: the
experiment ends by its rule (no metric tells them apart, so the stable version is kept) and the outcome is in the
history. The e2e variant (tests/e2e/test_experiments.py) covers a better candidate's promotion."""

from __future__ import annotations

import collections
import json
import random
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest

from harness import wait_until
from harness.sticky import ERRORS, KEYS, REQUESTS_PER_KEY, SPLIT, SPLIT_TOLERANCE
from real.served import ServedModel
from real.support import ModelServer, RealCluster, Release
from sluice_serving.experiment import assign
from unit.serving.support import make_classifier, rows_body

pytestmark = pytest.mark.real

DURATION_SECONDS = 90
LOAD_SECONDS = 60.0
WORKERS = 4


def _ask(deployed: ServedModel, key: str) -> tuple[str, str]:
    """One prediction through the Gateway for entity `key`: (the arm the answer names, the version that answered);
    `failed:<code or error>` as the version when it failed."""
    request = urllib.request.Request(
        f"{deployed.entry_url}/v2/models/{deployed.name}/infer",
        data=rows_body(deployed.model.rows[:1]),
        headers={**deployed.headers, "X-User": key},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers.get("x-sluice-arm", ""), str(json.load(response)["model_version"])
    except OSError as error:
        return "", f"failed:{type(error).__name__}"


def _experiment(deployed: ServedModel) -> dict[str, Any]:
    experiment: dict[str, Any] = deployed.status().get("experiment") or {}
    return experiment


def test_each_entity_key_sees_one_version_through_the_gateway_and_the_experiment_ends_by_its_rule(
    real_cluster: RealCluster, sluice_release: Release, model_server: ModelServer, real_namespace: str
) -> None:
    model = make_classifier(model_server.directory)
    url = f"{model_server.url}/{model.joblib.name}"
    deployed = ServedModel(real_cluster, real_namespace, "ab", model, url, interval="10s")
    deployed.become_stable()
    deployed.extra_spec = {
        "experiment": {
            "duration": f"{DURATION_SECONDS}s",
            "split": SPLIT,
            "stickyBy": {"header": "X-User"},
            "metrics": [{"name": "errors", "query": ERRORS}],
        }
    }

    deployed.apply("2.0.0")

    wait_until(lambda: bool(_experiment(deployed).get("startedAt")), timeout=240, what="the experiment's start")
    experiment = _experiment(deployed)
    ends_at = datetime.fromisoformat(experiment["startedAt"]).timestamp() + DURATION_SECONDS
    experiment_id = experiment["id"]
    # Stable pods of before the experiment may still drain: wait until every answer names an arm.
    wait_until(lambda: all(_ask(deployed, key)[0] for key in KEYS[:20]), timeout=60, what="every answer assigned")
    order = [key for key in KEYS for _ in range(REQUESTS_PER_KEY)]
    random.Random(11).shuffle(order)
    load_began = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        answers = list(pool.map(lambda key: (key, *_ask(deployed, key)), order))
    assert time.monotonic() - load_began < LOAD_SECONDS, "the load took too long to be inside the experiment"
    assert time.time() < ends_at, f"the load ended {time.time() - ends_at:.1f} s after the experiment"

    seen: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    for key, arm, version in answers:
        seen[key].add((arm, version))
    expected = {key: assign(experiment_id, SPLIT, key.encode()).arm for key in KEYS}
    assert {key: seen[key] for key in KEYS} == {
        key: {(arm, "2.0.0" if arm == "B" else "1.0.0")} for key, arm in expected.items()
    }, "each key sees exactly its bucket's arm and that arm's version, every time"
    share_b = 100 * sum(arm == "B" for _, arm, _ in answers) / len(answers)
    assert abs(share_b - SPLIT) <= SPLIT_TOLERANCE, share_b

    wait_until(
        lambda: deployed.history_entry("2.0.0") is not None,
        timeout=DURATION_SECONDS + 120,
        what="the experiment's end",
        interval=2,
    )
    status = deployed.status()
    assert (status["history"][-1]["outcome"], status["stableVersion"]) == ("Kept", "1.0.0"), status["history"][-1]
    assert status["experiment"]["decision"] == "Keep"
    assert min(status["experiment"]["samplesA"], status["experiment"]["samplesB"]) > 200
    wait_until(lambda: deployed.ask({"X-User": "user-1"}) == "1.0.0", timeout=60, what="the kept version answering")
