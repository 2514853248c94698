"""Models from object stores and in the skops format (issue #4): `s3://` against a real S3 API on loopback
(moto's server), `gs://` against a GCS emulator (fake-gcs-server) when one is built, and `.skops` files with and
without a pinned digest."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import skops.io as sio

from harness.tools import find_tools
from integration.serving.conftest import Start, free_port
from unit.serving.support import ModelFiles, digest_of, rows_body

pytestmark = pytest.mark.integration

INFER = "/v2/models/model/infer"


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args!r} exited with {proc.returncode}"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout}s")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


def test_a_model_is_fetched_from_s3(start: Start, classifier: ModelFiles, s3_endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, **{k.lower(): v for k, v in AWS.items() if "KEY" in k},
                          region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket="models")
    client.upload_file(str(classifier.joblib), "models", "fraud/v3/model.joblib")
    env = {**AWS, "AWS_ENDPOINT_URL_S3": s3_endpoint}
    server = start({**env, "MODEL_URI": "s3://models/fraud/v3/model.joblib", "MODEL_DIGEST": classifier.digest})
    server.wait_ready()
    response = server.client.post(INFER, content=rows_body(classifier.rows))
    assert response.json()["outputs"][0]["data"] == classifier.expected
    assert server.stop() == 0
    missing = start({**env, "MODEL_URI": "s3://models/absent.joblib", "MODEL_DIGEST": classifier.digest})
    code, log = missing.wait_exit()
    assert code == 1
    assert "cannot fetch s3://models/absent.joblib" in log


@pytest.fixture(scope="module")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """fake-gcs-server (Go, github.com/fsouza/fake-gcs-server) on 127.0.0.1, serving files from a directory
    (`<dir>/<bucket>/<object>`); built pinned by `make tools` (tools/fake-gcs-server)."""
    binary = str(find_tools().binary("fake-gcs-server"))
    root = tmp_path_factory.mktemp("gcs")
    port = free_port()
    log = root.parent / "fake-gcs.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
             "-data", str(root)],
            stdout=out, stderr=out,
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/storage/v1/b", proc)
        yield f"http://127.0.0.1:{port}", root
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_model_is_fetched_from_gcs(
    start: Start, classifier: ModelFiles, gcs_endpoint: tuple[str, Path], tmp_path: Path
) -> None:
    endpoint, _ = gcs_endpoint
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    client = storage.Client(project="test", credentials=anonymous, client_options={"api_endpoint": endpoint})
    client.create_bucket("models").blob("fraud/v3/model.onnx").upload_from_filename(str(classifier.onnx))
    env = {"STORAGE_EMULATOR_HOST": endpoint, "GOOGLE_CLOUD_PROJECT": "test"}
    server = start({**env, "MODEL_URI": "gs://models/fraud/v3/model.onnx", "MODEL_DIGEST": digest_of(classifier.onnx)})
    server.wait_ready()
    response = server.client.post(INFER, content=rows_body(classifier.rows.astype(np.float32), "FP32"))
    assert response.json()["outputs"][0]["data"] == classifier.expected


@pytest.fixture(scope="module")
def skops_file(classifier: ModelFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import joblib

    path = tmp_path_factory.mktemp("skops") / "model.skops"
    sio.dump(joblib.load(classifier.joblib), path)
    return path


def test_a_skops_model_is_served_without_a_digest(start: Start, classifier: ModelFiles, skops_file: Path) -> None:
    server = start({"MODEL_URI": str(skops_file)})
    server.wait_ready()
    response = server.client.post(INFER, content=rows_body(classifier.rows))
    assert response.json()["outputs"][0]["data"] == classifier.expected
    assert server.client.get("/v2/models/model").json()["platform"] == "sklearn"


def test_a_skops_model_with_a_pinned_digest_is_checked(start: Start, classifier: ModelFiles, skops_file: Path) -> None:
    server = start({"MODEL_URI": str(skops_file), "MODEL_DIGEST": digest_of(skops_file)})
    server.wait_ready()
    assert server.client.post(INFER, content=rows_body(classifier.rows)).status_code == 200
    assert server.stop() == 0
    code, log = start({"MODEL_URI": str(skops_file), "MODEL_DIGEST": classifier.digest}).wait_exit()
    assert code == 1
    assert "digest mismatch" in log


def test_a_skops_file_with_untrusted_types_needs_a_pinned_digest(
    start: Start, classifier: ModelFiles, tmp_path: Path
) -> None:
    import joblib

    from unit.serving.flaky import FlakyModel

    path = tmp_path / "flaky.skops"
    sio.dump(FlakyModel(joblib.load(classifier.joblib), above=1.0), path)
    pythonpath = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")) if p
    )
    code, log = start({"MODEL_URI": str(path), "PYTHONPATH": pythonpath}).wait_exit()
    assert code == 1
    assert "unit.serving.flaky.FlakyModel" in log
    assert "pin MODEL_DIGEST" in log
    server = start({"MODEL_URI": str(path), "MODEL_DIGEST": digest_of(path), "PYTHONPATH": pythonpath})
    server.wait_ready()
    rows = classifier.rows.copy()
    rows[:, 0] = 0.5
    assert server.client.post(INFER, content=rows_body(rows)).status_code == 200
