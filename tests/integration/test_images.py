"""The images `make images` builds from the project's Dockerfiles start and do their job as real containers.

Each image is unpacked from its OCI archive and run with runc (tests/integration/oci_runtime.py): the operator
against the local control plane as the chart's ServiceAccount, answering its liveness and readiness probes; the
model server fetching a model over HTTP, verifying its digest and answering an inference request. An import the
operator's pyproject.toml forgot (httpx, once) or an extra the serving image lacks fails here.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from harness.processes import free_port
from integration.chart_identity import ChartInstall
from integration.oci_runtime import Container, built_images, run, unpack
from unit.serving.support import ModelFiles, make_classifier

pytestmark = [pytest.mark.integration, pytest.mark.images, pytest.mark.timeout(3600)]
STARTUP_SECONDS = 120


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both images built (make images) and unpacked: name → runtime bundle."""
    archives = built_images()
    return {
        name: unpack(archives / f"{name}.oci.tar", f"sluice/{name}:dev", tmp_path_factory.mktemp(name))
        for name in ("operator", "serving")
    }


def _wait_for_200(url: str, container: Container) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        assert container.process.poll() is None, f"the container exited:\n{container.output()[-4000:]}"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(f"{url} not 200 within {STARTUP_SECONDS} s ({last}):\n{container.output()[-4000:]}")


@pytest.fixture
def started() -> Iterator[list[Container]]:
    containers: list[Container] = []
    yield containers
    for container in containers:
        container.stop()


def test_operator_image_starts_and_answers_its_probes(
    images: dict[str, Path],
    chart_install: ChartInstall,
    operator_kubeconfig: Path,
    tmp_path: Path,
    started: list[Container],
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(operator_kubeconfig, kubeconfig)
    kubeconfig.chmod(0o644)  # the image's user (65532) reads it
    liveness, readiness = free_port(), free_port()
    env = {
        **chart_install.operator_env(),
        "KUBECONFIG": "/etc/sluice/kubeconfig",
        "SLUICE_METRICS_PORT": "0",
        "SLUICE_LIVENESS_ENDPOINT": f"http://127.0.0.1:{liveness}/healthz",
        "SLUICE_READINESS_ENDPOINT": f"http://127.0.0.1:{readiness}/readyz",
    }
    operator = run(
        images["operator"],
        f"sluice-operator-{liveness}",
        env=env,
        read_only_files={"/etc/sluice/kubeconfig": kubeconfig},
    )
    started.append(operator)
    _wait_for_200(f"http://127.0.0.1:{liveness}/healthz", operator)
    _wait_for_200(f"http://127.0.0.1:{readiness}/readyz", operator)
    assert "Forbidden" not in operator.output()


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[tuple[str, ModelFiles]]:
    """A loopback HTTP server of a directory holding a small ONNX classifier; its base URL and the model."""
    model = make_classifier(tmp_path / "models")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(model.onnx.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", model
    server.shutdown()
    server.server_close()


def test_serving_image_fetches_verifies_and_serves_a_model_over_http(
    images: dict[str, Path], model_server: tuple[str, ModelFiles], started: list[Container]
) -> None:
    base_url, model = model_server
    port = free_port()
    env = {
        "SLUICE_HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_NAME": "classifier",
        "MODEL_VERSION": "v1",
        "MODEL_URI": f"{base_url}/{model.onnx.name}",
        "MODEL_DIGEST": "sha256:" + hashlib.sha256(model.onnx.read_bytes()).hexdigest(),
    }
    server = run(images["serving"], f"sluice-serving-{port}", env=env)
    started.append(server)
    _wait_for_200(f"http://127.0.0.1:{port}/v2/health/ready", server)
    request = {"inputs": [{"name": "input", "shape": list(model.rows.shape), "datatype": "FP32",
                           "data": model.rows.astype("float32").ravel().tolist()}]}  # fmt: skip
    response = httpx.post(f"http://127.0.0.1:{port}/v2/models/classifier/infer", json=request, timeout=10)
    assert response.status_code == 200, response.text
    prediction = response.json()["outputs"][0]
    assert prediction["data"] == model.expected


def test_serving_image_has_the_s3_gcs_skops_xgboost_and_lightgbm_extras(
    images: dict[str, Path], started: list[Container]
) -> None:
    # lightgbm's import loads its library, which links the OpenMP runtime (libgomp1) the Dockerfile installs.
    probe = run(
        images["serving"],
        f"sluice-extras-{free_port()}",
        args=["python", "-c", "import boto3, google.cloud.storage, skops.io, xgboost, lightgbm"],
    )
    started.append(probe)
    assert probe.process.wait(timeout=120) == 0, probe.output()
