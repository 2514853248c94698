"""A ModelDeployment whose model is an MLflow registry URI, on the real local control plane against a real MLflow
tracking server: the operator (MLFLOW_TRACKING_URI from its own environment) resolves models:/iris@production once,
records the version and the artifact's digest in status, gives the pods the pinned models:/iris/1; moving the
alias afterwards changes no running revision, and a new spec.model resolves it again for the canary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import ControlPlane, mlflow_server
from integration.operator_support import CountingProxy, OperatorProcess, start_least_privileged_operator, status_of
from integration.test_reconcile import ModelDeployments, wait_quiet

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    proxy: CountingProxy,
    mlflow: mlflow_server.MlflowServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    settings = {"SLUICE_RESYNC_SECONDS": "3", "SLUICE_PROMETHEUS_URL": "http://127.0.0.1:9",
                "MLFLOW_TRACKING_URI": mlflow.url}  # fmt: skip
    workdir = tmp_path_factory.mktemp("operator")
    process = start_least_privileged_operator(control_plane, kube_api_client, proxy, workdir, settings)
    yield process
    process.stop()


def pod_env(md: ModelDeployments, deployment: str) -> dict[str, str]:
    body = md.deployment(deployment)
    assert body is not None
    return {env["name"]: env.get("value", "") for env in body["spec"]["template"]["spec"]["containers"][0]["env"]}


def resolved(md: ModelDeployments, name: str) -> dict[str, Any]:
    return dict(status_of(md.get(name)).get("resolvedModel") or {})


def test_an_alias_is_pinned_at_rollout_and_moving_it_later_changes_no_running_revision(
    operator: OperatorProcess,
    kube_api_client: ApiClient,
    restricted_namespace: str,
    proxy: CountingProxy,
    mlflow: mlflow_server.MlflowServer,
) -> None:
    md = ModelDeployments(kube_api_client, restricted_namespace, operator)
    md.create("iris", {"model": {"version": "1.0.0", "uri": "models:/iris@production"}, "replicas": 1})
    obj = md.wait_ready("iris", 1)
    digest = mlflow.artifact_digest("model.skops", version=1)

    assert resolved(md, "iris") | {"resolvedAt": ""} == {
        "specHash": resolved(md, "iris")["specHash"], "version": "1", "format": "sklearn", "digest": digest,
        "resolvedAt": "",
    }  # fmt: skip
    assert status_of(obj)["stableModel"]["uri"] == "models:/iris/1"
    env = pod_env(md, "iris-stable")
    assert (env["MODEL_URI"], env["MODEL_DIGEST"], env["MLFLOW_TRACKING_URI"]) == ("models:/iris/1", digest, mlflow.url)

    mlflow_server.move_alias(mlflow, "iris", "production", 2)
    wait_quiet(proxy)

    assert resolved(md, "iris")["version"] == "1"
    assert pod_env(md, "iris-stable")["MODEL_URI"] == "models:/iris/1"

    md.patch("iris", {"spec": {"model": {"version": "2.0.0"}}})
    md.wait(lambda: md.deployment("iris-canary") is not None, "the canary Deployment of the re-resolved alias")

    assert pod_env(md, "iris-canary")["MODEL_URI"] == "models:/iris/2"
    assert pod_env(md, "iris-stable")["MODEL_URI"] == "models:/iris/1"
    assert resolved(md, "iris")["digest"] == mlflow.artifact_digest("model.skops", version=2)
