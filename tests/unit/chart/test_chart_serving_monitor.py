"""Prometheus finds the serving pods: the chart's PodMonitor and the plain scrape config in docs/observability.md
select the pods the operator creates, on the port and path their metrics are served, with the same labels."""

from __future__ import annotations

from typing import Any

import yaml

from sluice.core.children import METRICS_PATH, PORT_NAME, common_labels
from unit.chart.chart_support import RELEASE, REPO_ROOT, Manifest, of_kind, render

PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"
SERVING_MONITOR = f"{RELEASE}-serving"
# What Prometheus Operator gives every target of a PodMonitor (besides instance).
POD_MONITOR_LABELS = {"namespace", "pod", "container", "endpoint", "job"}


def serving_monitor(*set_values: str, api: bool = True) -> Manifest | None:
    manifests = render(set_values=set_values, api_versions=[PROMETHEUS_OPERATOR] if api else [])
    found = [m for m in of_kind(manifests, "PodMonitor") if m["metadata"]["name"] == SERVING_MONITOR]
    return found[0] if found else None


def documented_scrape_config() -> dict[str, Any]:
    text = (REPO_ROOT / "docs" / "observability.md").read_text()
    block = text.split("<!-- serving-scrape-config: begin -->", 1)[1].split("<!-- serving-scrape-config: end -->")[0]
    config: dict[str, Any] = yaml.safe_load(block.replace("```yaml", "").replace("```", ""))
    (job,) = config["scrape_configs"]
    return dict(job)


def test_the_serving_pod_monitor_selects_the_pods_the_operator_creates_on_their_metrics_port() -> None:
    monitor = serving_monitor()
    assert monitor is not None
    pod_labels = common_labels("fraud")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == (PORT_NAME, METRICS_PATH)
    assert pod_labels[monitor["spec"]["jobLabel"]] == "sluice-serving"


def test_a_namespaced_install_monitors_only_its_namespaces() -> None:
    monitor = serving_monitor("watch.clusterWide=false", "watch.namespaces={ml,staging}")
    assert monitor is not None
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml", "staging"]}


def test_the_serving_pod_monitor_renders_only_when_the_cluster_serves_the_prometheus_operator_api() -> None:
    assert serving_monitor(api=False) is None
    assert serving_monitor("metrics.servingPodMonitor.enabled=false") is None


def test_the_documented_scrape_config_keeps_the_same_pods_and_gives_the_pod_monitor_labels() -> None:
    job = documented_scrape_config()
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    rules = job["relabel_configs"]
    keep_labels = {
        label: regex
        for rule in rules
        if rule.get("action") == "keep"
        for label, regex in zip(rule["source_labels"], rule["regex"].split(";"), strict=True)
    }
    pod_labels = common_labels("fraud")
    assert keep_labels == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": pod_labels["app.kubernetes.io/name"],
        "__meta_kubernetes_pod_label_app_kubernetes_io_managed_by": pod_labels["app.kubernetes.io/managed-by"],
        "__meta_kubernetes_pod_container_port_name": PORT_NAME,
    }
    assert {rule["target_label"] for rule in rules if "target_label" in rule} == POD_MONITOR_LABELS
    assert job.get("metrics_path", METRICS_PATH) == METRICS_PATH
