"""Fixtures the end-to-end modules share: the model files, the operator (documented RBAC behind the counting
proxy, or with CHART_IDENTITY the chart's), and a factory of canary-rollout scenarios. A module overrides
`operator` to run it with other settings; `scenario_factory` then uses that one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from e2e.support import CHART_IDENTITY, RESYNC_SECONDS, UNREACHABLE_PROMETHEUS, Scenario
from harness import ControlPlane, Prometheus
from harness.dataplane import DataPlane, ServiceFront
from integration.chart_identity import ChartInstall
from integration.operator_support import CountingProxy, OperatorProcess, start_least_privileged_operator
from unit.serving.support import ModelFiles, make_classifier


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    return make_classifier(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def front() -> Iterator[ServiceFront]:
    """A loopback front for in-cluster Service URLs, for modules whose operator's canary_url_template points at it
    (the validation gate's runs, an experiment's stable servers reaching the candidate)."""
    with ServiceFront() as serving_front:
        yield serving_front


@pytest.fixture(scope="module")
def operator(  # noqa: PLR0917 (pytest fixtures)
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    proxy: CountingProxy,
    prometheus: Prometheus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """By default the documented RBAC behind the counting proxy; parametrised with CHART_IDENTITY, the chart's
    ServiceAccount and env (cluster-wide ClusterRole), its metrics and liveness listeners off (loopback only). A
    module with `SERVICE_FRONT = True` gets an operator whose canary_url_template is the `front` fixture's."""
    settings = {
        "SLUICE_RESYNC_SECONDS": str(RESYNC_SECONDS),
        "SLUICE_PROMETHEUS_URL": prometheus.url,
        "SLUICE_PROMETHEUS_TIMEOUT": "3",
        "SLUICE_PROMETHEUS_URLS": UNREACHABLE_PROMETHEUS,
    }
    if getattr(request.module, "SERVICE_FRONT", False):
        settings["SLUICE_CANARY_URL_TEMPLATE"] = request.getfixturevalue("front").url_template
    workdir = tmp_path_factory.mktemp("operator")
    if getattr(request, "param", None) == CHART_IDENTITY:
        chart: ChartInstall = request.getfixturevalue("chart_install")
        kubeconfig: Path = request.getfixturevalue("operator_kubeconfig")
        assert chart.operator_env()["SLUICE_NAMESPACES"] == "", "the chart's defaults watch every namespace"
        listeners_off = {"SLUICE_METRICS_PORT": "0", "SLUICE_LIVENESS_ENDPOINT": "", "SLUICE_READINESS_ENDPOINT": ""}
        settings = chart.operator_env() | listeners_off | settings
        process = OperatorProcess(kubeconfig, workdir / "operator.log", settings).start()
    else:
        process = start_least_privileged_operator(control_plane, kube_api_client, proxy, workdir, settings)
    yield process
    process.stop()


@pytest.fixture
def scenario_factory(  # noqa: PLR0917 (pytest fixtures)
    operator: OperatorProcess,
    kube_api_client: ApiClient,
    prometheus: Prometheus,
    restricted_namespace: str,
    model_files: ModelFiles,
    tmp_path: Path,
) -> Iterator[Callable[[dict[str, dict[str, str]]], Scenario]]:
    planes: list[DataPlane] = []

    def make(extra_env: dict[str, dict[str, str]]) -> Scenario:
        plane = DataPlane(
            kube_api_client, prometheus, restricted_namespace, tmp_path / "dataplane", extra_env=extra_env
        )
        planes.append(plane.start())
        return Scenario(kube_api_client, restricted_namespace, operator, plane, model_files)

    yield make
    for plane in planes:
        plane.stop()
