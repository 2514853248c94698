"""`make e2e-kind` runs the `real` scenarios against the kind cluster it creates, with settings the tests read.

It once exported SLUICE_E2E_KUBECONFIG, which no test read: the scenarios ran on the local harness instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml

from harness.control_plane import ControlPlane
from harness.external import ExternalCluster
from harness.realnode import HOST_ADDRESS, RealNode
from real.support import RealCluster

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "hack" / "e2e-kind.sh"


def _pytest_invocation() -> str:
    """The script's last command: the variables it sets and the pytest it runs."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    (command,) = [line for line in text.splitlines() if "pytest" in line and not line.lstrip().startswith("#")]
    return command


def test_the_pytest_run_selects_the_real_scenarios() -> None:
    assert re.search(r"pytest -m real tests/real\b", _pytest_invocation())


def test_every_setting_the_script_passes_is_read_by_the_tests() -> None:
    passed = set(re.findall(r"\b(SLUICE_[A-Z_]+)=", _pytest_invocation()))
    assert passed
    sources = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("*.py") if "unit" not in path.parts)
    unread = sorted(name for name in passed if f'"{name}"' not in sources)
    assert not unread, f"hack/e2e-kind.sh passes settings no test reads: {unread}"
    assert "export KUBECONFIG=" in SCRIPT.read_text()


@pytest.fixture
def kind_environ(tmp_path: Path) -> dict[str, str]:
    """The variables hack/e2e-kind.sh sets for the tests, naming a kubeconfig file that exists."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    return {
        "SLUICE_REAL_CLUSTER": "kubeconfig",
        "KUBECONFIG": str(kubeconfig),
        "SLUICE_REAL_PROMETHEUS_URL": "http://127.0.0.1:19090",
        "SLUICE_REAL_HOST_ADDRESS": "172.18.0.1",
        "SLUICE_REAL_GATEWAY_URL": "http://127.0.0.1:18080/",
    }


def test_the_environment_names_the_cluster_prometheus_host_address_and_gateway(kind_environ: dict[str, str]) -> None:
    environ, kubeconfig = kind_environ, Path(kind_environ["KUBECONFIG"])
    assert ExternalCluster.from_environment(environ) == ExternalCluster(
        kubeconfig, "http://127.0.0.1:19090", "172.18.0.1", "http://127.0.0.1:18080", "default", "public"
    )
    assert ExternalCluster.from_environment({}) is None
    with pytest.raises(ValueError, match="SLUICE_REAL_HOST_ADDRESS"):
        ExternalCluster.from_environment({**environ, "SLUICE_REAL_HOST_ADDRESS": ""})
    with pytest.raises(ValueError, match="SLUICE_REAL_GATEWAY_URL"):
        ExternalCluster.from_environment({**environ, "SLUICE_REAL_GATEWAY_URL": ""})
    named = ExternalCluster.from_environment({**environ, "SLUICE_REAL_GATEWAY": "infra/shared"})
    assert named is not None
    assert (named.gateway_namespace, named.gateway_name) == ("infra", "shared")
    with pytest.raises(ValueError, match="namespace/name"):
        ExternalCluster.from_environment({**environ, "SLUICE_REAL_GATEWAY": "shared"})


def test_the_real_scenarios_run_on_the_cluster_the_environment_names_else_on_the_harness_node(
    kind_environ: dict[str, str], tmp_path: Path
) -> None:
    """The fixtures' choice: `RealCluster.select` returns the external cluster's settings when the environment
    names one (without starting the harness's node), else the harness's node."""
    environ, kubeconfig = {**kind_environ, "SLUICE_REAL_GATEWAY": "infra/shared"}, Path(kind_environ["KUBECONFIG"])

    def no_node() -> RealNode:
        raise AssertionError("the harness's node must not start for an external cluster")

    cluster = RealCluster.select(environ, tmp_path, no_node)
    assert (cluster.kubeconfig, cluster.gateway_url, cluster.gateway) == (
        kubeconfig,
        "http://127.0.0.1:18080",
        ("shared", "infra"),
    )
    assert (cluster.node, cluster.prometheus_url) == (None, "http://127.0.0.1:19090")
    assert cluster.host_address == "172.18.0.1"

    plane = cast(ControlPlane, SimpleNamespace(kubeconfig=tmp_path / "admin.kubeconfig"))
    node = RealNode(workdir=tmp_path, plane=plane, ports={"gateway": 30080})
    local = RealCluster.select({}, tmp_path, lambda: node)
    assert (local.node, local.kubeconfig, local.gateway) == (node, plane.kubeconfig, ("public", "default"))
    assert local.gateway_url == f"http://{HOST_ADDRESS}:30080"


def test_the_kind_prometheus_scrapes_serving_pods_as_the_documented_config_does() -> None:
    docs = (ROOT / "docs" / "observability.md").read_text()
    block = docs.split("<!-- serving-scrape-config: begin -->", 1)[1].split("<!-- serving-scrape-config: end -->")[0]
    documented: list[dict[str, Any]] = yaml.safe_load(block.replace("```yaml", "").replace("```", ""))["scrape_configs"]
    objects = list(yaml.safe_load_all((ROOT / "hack" / "e2e-kind" / "prometheus.yaml").read_text()))
    (config_map,) = [o for o in objects if o and o["kind"] == "ConfigMap"]
    kind_config = yaml.safe_load(config_map["data"]["prometheus.yml"])
    assert kind_config["scrape_configs"] == documented
