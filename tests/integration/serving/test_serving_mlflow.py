"""MLflow registry URIs against a real MLflow tracking server (sqlite backend, local artifact store served through
its artifact proxy; tests/harness/mlflow_server.py), models registered with MLflow's own client: sluice_serving
serves models:/<name>/<version> and models:/<name>@<alias> (scikit-learn and LightGBM flavors), and the operator's
resolver pins the version an alias names and the digest of its artifact."""

from __future__ import annotations

import asyncio

import pytest

from harness import mlflow_server
from integration.serving.conftest import Start
from sluice.adapters.registry import MlflowRegistry, RegistryError
from sluice.api.v1alpha1 import ModelFormat
from sluice.core.registry import parse_registry_uri

pytestmark = pytest.mark.integration

INFER = "/v2/models/model/infer"
ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 0.5, -0.5, 0.0]}]}


@pytest.mark.parametrize(
    ("uri", "platform", "label"),
    [("models:/iris/1", "sklearn", 1), ("models:/iris@champion", "sklearn", 1),
     ("models:/trees/1", "lightgbm", 1)],
)  # fmt: skip
def test_the_server_serves_a_registered_model_by_version_or_alias_in_its_flavor(
    mlflow: mlflow_server.MlflowServer, start: Start, uri: str, platform: str, label: int
) -> None:
    server = start({"MODEL_URI": uri, "MLFLOW_TRACKING_URI": mlflow.url})
    server.wait_ready()

    metadata = server.client.get("/v2/models/model").json()
    answer = server.client.post(INFER, json=ROW).json()

    assert metadata["platform"] == platform
    assert answer["outputs"][0]["data"] == [label]


def test_a_registered_model_without_the_flavor_asked_for_refuses_to_start_in_fixed_words(
    mlflow: mlflow_server.MlflowServer, start: Start
) -> None:
    server = start({"MODEL_URI": "models:/iris/1", "MODEL_FORMAT": "onnx", "MLFLOW_TRACKING_URI": mlflow.url})

    code, log = server.wait_exit()

    assert code == 1
    assert "the registered model has no flavor of MODEL_FORMAT" in log


def test_the_operator_resolves_an_alias_to_its_version_and_the_digest_the_pods_then_verify(
    mlflow: mlflow_server.MlflowServer, start: Start
) -> None:
    registry = MlflowRegistry(mlflow.url, max_bytes=1 << 20, timeout=30)
    ref = parse_registry_uri("models:/trees@champion")
    mlflow_server.move_alias(mlflow, "trees", "champion", 1)
    assert ref is not None

    resolution = asyncio.run(registry.resolve(ref, None))

    assert (resolution.version, resolution.format) == ("1", ModelFormat.LIGHTGBM)
    assert resolution.digest == mlflow.artifact_digest("model.lgb")
    pinned = {"MODEL_URI": "models:/trees/1", "MODEL_FORMAT": "lightgbm", "MODEL_DIGEST": resolution.digest}
    server = start({**pinned, "MLFLOW_TRACKING_URI": mlflow.url})
    server.wait_ready()


def test_the_operator_refuses_an_artifact_larger_than_its_bound_in_fixed_words(
    mlflow: mlflow_server.MlflowServer,
) -> None:
    registry = MlflowRegistry(mlflow.url, max_bytes=100, timeout=30)
    ref = parse_registry_uri("models:/iris/1")
    assert ref is not None

    with pytest.raises(RegistryError, match=r"^the registered model.s artifact is larger than 100 bytes$"):
        asyncio.run(registry.resolve(ref, None))
