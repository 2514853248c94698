"""The operator's observability during real rollouts: its /metrics scraped while a good version is promoted and a bad
one rolled back (the series docs/observability.md documents move as documented), its JSON log lines (each from a
reconcile names the ModelDeployment and the step), its kstatus conditions, and what it writes on the ModelDeployment
(server-side apply field managers: only `sluice`, only the status subresource, so GitOps tools own the rest).

The machinery (control plane, kwok pods, stand-in model servers, Prometheus, load) is that of
test_canary_rollouts.py; the operator runs with its metrics listener on a free loopback port and JSON logs.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

from e2e.support import (
    INTERVAL_SECONDS,
    RESYNC_SECONDS,
    ROLLBACK_BOUND_SECONDS,
    STEPS,
    Scenario,
    finished,
    load,
)
from harness import ControlPlane, Prometheus, free_port, wait_until
from integration.operator_support import CountingProxy, OperatorProcess, condition, start_least_privileged_operator
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def operator(  # noqa: PLR0917 (pytest fixtures)
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    proxy: CountingProxy,
    prometheus: Prometheus,
    metrics_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The documented RBAC behind the counting proxy, /metrics on `metrics_port`, JSON logs."""
    settings = {
        "SLUICE_RESYNC_SECONDS": str(RESYNC_SECONDS),
        "SLUICE_PROMETHEUS_URL": prometheus.url,
        "SLUICE_PROMETHEUS_TIMEOUT": "3",
        "SLUICE_METRICS_PORT": str(metrics_port),
        "SLUICE_LOG_FORMAT": "json",
    }
    workdir = tmp_path_factory.mktemp("operator")
    process = start_least_privileged_operator(control_plane, kube_api_client, proxy, workdir, settings)
    wait_until(lambda: _reachable(metrics_port), timeout=30, what="the operator's /metrics", interval=0.2)
    yield process
    process.stop()


def _reachable(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class Scraper:
    """Scrapes of one ModelDeployment's series (plus the operator-wide ones)."""

    def __init__(self, port: int, scenario: Scenario) -> None:
        self.port, self.scenario = port, scenario
        self.samples: Samples = {}

    def refresh(self) -> Scraper:
        self.samples = scrape(self.port)
        return self

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels (the object's namespace and name added for per-object series)."""
        if not name.startswith(("sluice_operator_", "sluice_breach_")):
            labels = {"namespace": self.scenario.namespace, "name": self.scenario.name, **labels}
        return self.samples.get((name, frozenset(labels.items())))

    def total(self, name: str) -> float:
        """The sum over every label set of an operator-wide series."""
        return sum(value for (sample, _), value in self.samples.items() if sample == name)

    def of_object(self) -> list[str]:
        return sorted(
            sample
            for sample, labels in self.samples
            if ("namespace", self.scenario.namespace) in labels and ("name", self.scenario.name) in labels
        )


def test_the_documented_series_move_during_a_promotion_and_a_rollback(
    scenario_factory: Callable[[dict[str, dict[str, str]]], Scenario],
    metrics_port: int,
    operator: OperatorProcess,
) -> None:
    scenario = scenario_factory({"3.0.0-bad": {"SLUICE_FAULT_ERROR_RATE": "0.5"}})
    scraper = Scraper(metrics_port, scenario)
    before = Scraper(metrics_port, scenario).refresh()
    reconciles_before, requests_before = (
        before.total("sluice_operator_reconciles_total"),
        before.total("sluice_operator_kube_requests_total"),
    )
    breaches_before = before.value("sluice_breach_to_rollback_seconds_count") or 0.0

    scenario.start_stable("1.0.0")
    scraper.refresh()
    assert scraper.value("sluice_modeldeployment_phase", phase="Stable") == 1
    assert scraper.value("sluice_modeldeployment_phase", phase="Progressing") == 0
    assert scraper.value("sluice_canary_weight_ratio") == 0
    assert scraper.value("sluice_modeldeployment_condition", condition="Ready", status="True") == 1
    assert scraper.value("sluice_modeldeployment_condition", condition="Reconciling", status="False") == 1

    # a good version: weights seen in /metrics at every step, then promoted
    weights_seen: set[float] = set()
    with load(scenario):
        scenario.set_version("2.0.0")

        def promoted() -> bool:
            scraper.refresh()
            weights_seen.add(scraper.value("sluice_canary_weight_ratio") or 0.0)
            return finished("Promoted")(scenario.status())

        scenario.wait(promoted, "2.0.0 promoted", timeout=90)
    scraper.refresh()
    assert {step / 100 for step in STEPS} <= weights_seen, weights_seen
    assert scraper.value("sluice_rollouts_started_total") == 1
    assert scraper.value("sluice_rollouts_finished_total", outcome="Promoted") == 1
    assert (scraper.value("sluice_analysis_checks_total", verdict="Passed") or 0) >= len(STEPS)
    error_rate = scraper.value("sluice_analysis_metric_value", metric="errorRate")
    assert error_rate is not None
    assert error_rate == 0
    assert (scraper.value("sluice_analysis_metric_value", metric="requestCount") or 0) >= 10
    assert scraper.value("sluice_canary_weight_ratio") == 0

    # a bad version: rolled back on its error rate; breach to rollback observed once, within the bound
    with load(scenario):
        scenario.set_version("3.0.0-bad")
        scenario.wait(lambda: finished("RolledBack")(scenario.status()), "3.0.0-bad rolled back")
    scraper.refresh()
    assert scraper.value("sluice_rollouts_started_total") == 2
    assert scraper.value("sluice_rollouts_finished_total", outcome="RolledBack") == 1
    assert (scraper.value("sluice_analysis_checks_total", verdict="Failed") or 0) >= 1
    assert (scraper.value("sluice_analysis_metric_value", metric="errorRate") or 0) > 0.1
    assert scraper.value("sluice_modeldeployment_phase", phase="RolledBack") == 1
    assert scraper.value("sluice_modeldeployment_condition", condition="Stalled", status="True") == 1
    assert scraper.value("sluice_breach_to_rollback_seconds_count") == breaches_before + 1
    breach_seconds = (scraper.value("sluice_breach_to_rollback_seconds_sum") or 0.0) - (
        before.value("sluice_breach_to_rollback_seconds_sum") or 0.0
    )
    print(f"breach to rollback: {breach_seconds:.3f} s (interval {INTERVAL_SECONDS} s)")
    assert 0 < breach_seconds < ROLLBACK_BOUND_SECONDS
    assert scraper.total("sluice_operator_reconciles_total") > reconciles_before
    assert scraper.value("sluice_operator_reconcile_duration_seconds_count") is not None
    for verb in ("get", "patch", "create"):
        assert (scraper.value("sluice_operator_kube_requests_total", verb=verb, code="2xx") or 0) > 0, verb
    assert scraper.total("sluice_operator_kube_requests_total") > requests_before

    # kstatus and GitOps: the operator's only field manager on the ModelDeployment writes the status subresource
    obj = scenario.get()
    assert condition(obj, "Stalled")["status"] == "True"
    assert condition(obj, "Stalled")["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "Reconciling")["status"] == "False"
    managers = [(entry["manager"], entry.get("subresource", "")) for entry in obj["metadata"]["managedFields"]]
    operator_entries = [entry for entry in obj["metadata"]["managedFields"] if entry["manager"] == "sluice"]
    assert [entry.get("subresource") for entry in operator_entries] == ["status"], managers
    assert set(operator_entries[0]["fieldsV1"]) == {"f:status"}, operator_entries[0]["fieldsV1"]

    # every JSON log line of this object's reconciles names it and its step
    assert_json_logs(operator.log_path, scenario)

    # deleting the ModelDeployment removes its series
    client.CustomObjectsApi(scenario.api_client).delete_namespaced_custom_object(
        GROUP, VERSION, scenario.namespace, PLURAL, scenario.name
    )
    wait_until(lambda: not scraper.refresh().of_object(), timeout=30, what="its series removed", interval=0.5)


def assert_json_logs(path: Path, scenario: Scenario) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    raw = [line for line in path.read_text().splitlines()[1:] if line.strip() and not line.startswith("{")]
    # (the first line is the harness' `$ command`)
    assert not raw, f"non-JSON log lines: {raw[:5]}"
    assert {"time", "level", "logger", "message", "namespace", "name", "step"} <= set(lines[0])
    ours = [line for line in lines if line["namespace"] == scenario.namespace]
    applies = [line for line in ours if line["message"].startswith("applying ")]
    assert applies, "the reconciles of the ModelDeployment logged their applies"
    assert {line["name"] for line in ours} == {scenario.name}
    assert all(line["step"] for line in ours), [line for line in ours if not line["step"]][:3]
    steps = {line["step"] for line in ours}
    assert any(step.startswith("Progressing ") and "/" in step for step in steps), steps
    unattributed = [line for line in lines if scenario.name in line["message"] and not line["name"]]
    assert not unattributed, unattributed[:3]
