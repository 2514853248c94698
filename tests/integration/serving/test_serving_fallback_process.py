"""The fallback in a real server process (issue #9 item 5): a model that raises on some inputs, the previous
model or a constant answering instead, the response header, the metric, and the canary analysis reading those
answers as errors through a real Prometheus."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from harness import Prometheus, wait_until
from integration.serving.conftest import Serving, Start
from integration.serving.test_serving_lifecycle import metric
from sluice.adapters.metrics import CanaryQuery, PrometheusProvider
from unit.serving.flaky import save_flaky
from unit.serving.support import ModelFiles, rows_body

pytestmark = pytest.mark.integration

INFER = "/v2/models/model/infer"
TESTS = str(Path(__file__).resolve().parents[2])  # the server unpickles unit.serving.flaky.FlakyModel


@pytest.fixture(scope="module")
def flaky(classifier: ModelFiles, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("flaky") / "flaky.joblib"
    return path, save_flaky(str(classifier.joblib), str(path), above=1.0)


def rows(classifier: ModelFiles, fail: bool) -> np.ndarray[Any, Any]:
    x = classifier.rows.copy()
    x[:, 0] = 5.0 if fail else 0.5
    return x


def flaky_env(flaky: tuple[Path, str], **env: str) -> dict[str, str]:
    path, digest = flaky
    pythonpath = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH", "")) if p)
    return {"MODEL_URI": str(path), "MODEL_DIGEST": digest, "PYTHONPATH": pythonpath, **env}


def test_the_previous_model_answers_when_the_model_raises(
    start: Start, flaky: tuple[Path, str], classifier: ModelFiles
) -> None:
    server = start(
        flaky_env(
            flaky,
            SLUICE_FALLBACK="model",
            SLUICE_FALLBACK_MODEL_URI=str(classifier.joblib),
            SLUICE_FALLBACK_MODEL_DIGEST=classifier.digest,
        )
    )
    server.wait_ready()
    good = server.client.post(INFER, content=rows_body(rows(classifier, fail=False)))
    assert good.status_code == 200
    assert "x-sluice-fallback" not in good.headers
    failing = rows(classifier, fail=True)
    answered = server.client.post(INFER, content=rows_body(failing))
    assert answered.status_code == 200
    assert answered.headers["x-sluice-fallback"] == "model"
    previous = joblib.load(classifier.joblib)
    assert answered.json()["outputs"][0]["data"] == previous.predict(failing).tolist()
    assert metric(server, "sluice_serving_fallback_responses_total", endpoint="infer", fallback="model") == 1
    assert metric(server, "sluice_serving_requests_total", endpoint="infer", code="200") == 2
    assert server.stop() == 0


def test_without_a_fallback_the_failure_is_a_500_and_the_server_keeps_serving(
    start: Start, flaky: tuple[Path, str], classifier: ModelFiles
) -> None:
    server = start(flaky_env(flaky))
    server.wait_ready()
    failed = server.client.post(INFER, content=rows_body(rows(classifier, fail=True)))
    assert failed.status_code == 500
    assert "flaky model" in failed.json()["error"]
    assert server.client.post(INFER, content=rows_body(rows(classifier, fail=False))).status_code == 200
    assert metric(server, "sluice_serving_requests_total", endpoint="infer", code="500") == 1


def test_a_broken_fallback_setting_refuses_to_start(start: Start, flaky: tuple[Path, str]) -> None:
    code, log = start(flaky_env(flaky, SLUICE_FALLBACK='constant:{"nope": 1}')).wait_exit()
    assert code == 1
    assert "unknown output" in log


def test_the_canary_error_rate_counts_fallback_answers(
    start: Start, flaky: tuple[Path, str], classifier: ModelFiles, prometheus: Prometheus
) -> None:
    env = flaky_env(flaky, SLUICE_FALLBACK="constant:0", MODEL_NAME="fallback-rate", MODEL_VERSION="2")
    server: Serving = start({**env, "SLUICE_TRACK": "canary"})
    server.wait_ready()
    prometheus.add_target("serving-fallback-rate", f"127.0.0.1:{server.port}", labels={"namespace": "ml"})
    try:
        selector = '{namespace="ml",model="fallback-rate",track="canary"}'
        prometheus.wait_for_query(f"sluice_serving_fallback_responses_total{selector}")
        path = "/v2/models/fallback-rate/infer"
        for n in range(40):
            body = rows_body(rows(classifier, fail=n % 4 == 0), outputs=[{"name": "predict"}])
            assert server.client.post(path, content=body).status_code == 200
        query = CanaryQuery(namespace="ml", name="fallback-rate", version="2", window=timedelta(minutes=1))
        provider = PrometheusProvider(prometheus.url, 10.0)

        def scraped_all() -> bool:
            reading = asyncio.run(provider.read(query))
            return reading.request_count is not None and reading.request_count >= 39.5

        wait_until(scraped_all, timeout=30, what="Prometheus to scrape the 40 requests")
        reading = asyncio.run(provider.read(query))
        assert reading.error is None
        assert reading.error_rate == pytest.approx(10 / 40, abs=0.01)  # no 5xx at all: only fallback answers
    finally:
        prometheus.remove_target("serving-fallback-rate")
