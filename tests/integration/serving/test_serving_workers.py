"""SLUICE_WORKERS: several processes on one port (SO_REUSEPORT) that report as one on /metrics."""

from __future__ import annotations

import pickle
from pathlib import Path

import httpx
import pytest

from harness import wait_until
from integration.serving.conftest import Start
from integration.serving.test_serving_lifecycle import metric
from unit.serving.support import ModelFiles, rows_body

pytestmark = pytest.mark.integration

INFER = "/v2/models/model/infer"


def test_two_workers_share_the_port_and_metrics_add_up_across_them(
    start: Start, classifier: ModelFiles, tmp_path: Path
) -> None:
    server = start({"MODEL_URI": str(classifier.joblib), "MODEL_DIGEST": classifier.digest, "SLUICE_WORKERS": "2"})
    server.wait_ready()  # pod-wide: whichever worker answers the probe, every worker has loaded by then
    workers = {line for line in server.stderr().splitlines() if '"listening"' in line}
    assert len(workers) == 2, workers
    for _ in range(60):  # a new connection each time: the kernel spreads them over the workers, all ready
        with httpx.Client(base_url=server.base, timeout=30) as client:
            assert client.post(INFER, content=rows_body(classifier.rows)).status_code == 200

    def all_counted() -> bool:
        return metric(server, "sluice_serving_requests_total", endpoint="infer", code="200") == 60

    wait_until(all_counted, timeout=10, what="every worker's requests in /metrics")
    (snapshots,) = (tmp_path / "cache").glob(".workers-*")

    def per_worker() -> list[int]:
        return [
            pickle.loads(path.read_bytes())["requests"]["codes"][("infer", "rest", 200)]
            for path in sorted(snapshots.glob("worker-*.metrics"))
        ]

    # The worker that answered the scrape counted its own requests live; its snapshot follows within 0.25 s.
    wait_until(lambda: sum(per_worker()) == 60, timeout=10, what="both workers' snapshots to hold every request")
    assert len(per_worker()) == 2
    assert min(per_worker()) > 0, f"both workers answered: {per_worker()}"
    for _ in range(10):  # whichever worker answers the scrape, it reports the pod's totals
        with httpx.Client(base_url=server.base, timeout=30) as client:
            text = client.get("/metrics").text
        line = (
            "sluice_serving_requests_total"
            '{code="200",endpoint="infer",model="model",protocol="rest",track="stable",version="1"}'
        )
        assert f"{line} 60.0" in text
    assert metric(server, "sluice_serving_predicted_class_total", **{"class": "1"}) == 60 * sum(
        1 for y in classifier.expected if y == 1
    )
    assert metric(server, "sluice_serving_input_feature_count", feature="0") == 60 * 8
    assert server.stop() == 0
    assert not list((tmp_path / "cache").glob(".workers-*")), "the snapshot directory is removed"


def test_a_worker_that_cannot_load_the_model_stops_the_server_with_1(start: Start, tmp_path: Path) -> None:
    code, log = start({"MODEL_URI": str(tmp_path / "absent.onnx"), "SLUICE_WORKERS": "2"}).wait_exit()
    assert code == 1
    assert "does not exist" in log
