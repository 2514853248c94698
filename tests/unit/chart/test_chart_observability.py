"""The Grafana dashboard and the PrometheusRule in the chart: rendered when asked for, valid PromQL (promtool), and
referencing only series that exist (the operator's registry and the model server's); the alerts fire as documented
(`promtool test rules`); every operator series is documented in docs/observability.md with its type and labels."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from sluice.adapters import telemetry
from sluice_serving.config import Config
from sluice_serving.metrics import Metrics
from unit.chart.chart_support import CHART_DIR, REPO_ROOT, Manifest, of_kind, render, the_one

PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"
DASHBOARD = CHART_DIR / "dashboards" / "sluice.json"
OBSERVABILITY_DOC = REPO_ROOT / "docs" / "observability.md"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
EXTERNAL_SERIES = frozenset({"up"})
"""Series Prometheus itself makes (the scrape health the OperatorDown alert reads)."""
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf"}
)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers that are neither functions, keywords, label
    names in matchers or grouping clauses, nor durations)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if match.group() not in _KEYWORDS and not following.startswith("("):
            names.add(match.group())
    return names


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: panel targets (also in rows), annotations, query variables."""
    panels = [*dashboard["panels"], *(child for panel in dashboard["panels"] for child in panel.get("panels", []))]
    exprs = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    exprs += [annotation["expr"] for annotation in dashboard["annotations"]["list"] if "expr" in annotation]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["query"]["query"])
            assert inner is not None, variable["query"]
            exprs.append(inner.group(1))
    return exprs


def serving_series() -> set[str]:
    """The model server's sample names, for a classifier and a regressor (its metric families differ)."""
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for classifier in (True, False):
        metrics = Metrics(Config.from_env({"MODEL_URI": "/models/model.onnx", "MODEL_VERSION": "1"}))
        metrics.model_loaded(0.1, ["a", "b"], 2, classifier)
        for family in metrics.registry.collect():
            if family.name.startswith("sluice_serving_"):
                names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def known_series() -> set[str]:
    return telemetry.metric_names() | serving_series() | EXTERNAL_SERIES


def rendered_rules() -> Manifest:
    manifests = render(set_values=["prometheusRule.enabled=true"], api_versions=[PROMETHEUS_OPERATOR])
    return the_one(manifests, "PrometheusRule")


def rule_exprs(rule: Manifest) -> Iterator[tuple[str, str]]:
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            yield item.get("alert") or item["record"], item["expr"]


# --- the PromQL name extraction itself --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (namespace, le) (rate(a_bucket{x="y", le=~"1|2"}[5m]))', {"a_bucket"}),
        ("histogram_quantile(0.99, sum by (le) (rate(b_seconds_bucket[$__rate_interval])))", {"b_seconds_bucket"}),
        ("x / ignoring(class) group_left sum(y)", {"x", "y"}),
        ('absent(up{job=~"a|b"} == 1)', {"up"}),
        ("(a == 1) unless on (namespace, name) (b > 0 or c)", {"a", "b", "c"}),
        ('increase(total_total{name="by"}[1h]) > bool 0', {"total_total"}),
    ],
)
def test_promql_metric_names_finds_exactly_the_selected_series(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_an_unknown_series_would_be_caught() -> None:
    assert promql_metric_names('sum(rate(sluice_rollouts_begun_total{name="x"}[5m]))') - known_series() == {
        "sluice_rollouts_begun_total"
    }


# --- the dashboard ----------------------------------------------------------------------------------------------------


def test_the_dashboard_references_only_series_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) >= 20
    known = known_series()
    unknown = {name: expr for expr in exprs for name in promql_metric_names(expr) if name not in known}
    assert unknown == {}


def test_the_dashboard_shows_every_rollout_series_and_the_serving_golden_signals() -> None:
    used = {name for expr in dashboard_exprs(json.loads(DASHBOARD.read_text())) for name in promql_metric_names(expr)}
    rollout = {name for name in telemetry.metric_names() if not name.endswith("_created")}
    rollout -= {"sluice_operator_kube_write_requests_total"}  # kept for compatibility; kube_requests has the verbs
    histograms = {name for name in rollout if name.endswith(("_sum", "_count"))}
    assert rollout - histograms - used == set()
    assert {
        "sluice_serving_requests_total",
        "sluice_serving_request_duration_seconds_bucket",
    } <= used


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    for variable, value in {**GRAFANA_VARIABLES, "$namespace": ".*", "$name": ".*"}.items():
        exprs = [expr.replace(variable, value) for expr in exprs]
    rules = {
        "groups": [{"name": "dashboard", "rules": [{"record": f"panel:{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_ships_as_a_configmap_for_the_grafana_sidecar() -> None:
    assert of_kind(render(), "ConfigMap") == []
    manifests = render(
        set_values=["grafanaDashboard.enabled=true", "grafanaDashboard.annotations.grafana_folder=ml"],
        namespace="sluice-system",
    )
    config_map = the_one(manifests, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "ml"}
    assert config_map["metadata"]["namespace"] == "sluice-system"
    assert json.loads(config_map["data"]["sluice.json"]) == json.loads(DASHBOARD.read_text())
    elsewhere = the_one(
        render(set_values=["grafanaDashboard.enabled=true", "grafanaDashboard.namespace=monitoring"]), "ConfigMap"
    )
    assert elsewhere["metadata"]["namespace"] == "monitoring"


# --- the PrometheusRule -----------------------------------------------------------------------------------------------


def test_the_rules_render_only_when_asked_for_and_the_cluster_serves_the_prometheus_operator_api() -> None:
    assert of_kind(render(api_versions=[PROMETHEUS_OPERATOR]), "PrometheusRule") == []
    assert of_kind(render(set_values=["prometheusRule.enabled=true"]), "PrometheusRule") == []
    rule = rendered_rules()
    assert [name for name, _ in rule_exprs(rule)] == [
        "SluiceRolloutFailed",
        "SluiceModelDeploymentStalled",
        "SluiceRolloutStuck",
        "SluiceOperatorDown",
        "SluiceReconcileErrors",
    ]


def test_the_rules_reference_only_series_that_exist() -> None:
    known = known_series()
    unknown = {
        name: alert
        for alert, expr in rule_exprs(rendered_rules())
        for name in promql_metric_names(expr)
        if name not in known
    }
    assert unknown == {}


def test_promtool_accepts_the_rendered_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rendered_rules()["spec"]))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


ALERT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'sluice_rollouts_finished_total{namespace="ml", name="fraud", outcome="RolledBack"}'
        values: '0 0 0 1 1 1'
      - series: 'sluice_rollouts_finished_total{namespace="ml", name="ok", outcome="Promoted"}'
        values: '0 0 0 1 1 1'
    alert_rule_test:
      - eval_time: 2m
        alertname: SluiceRolloutFailed
        exp_alerts: []
      - eval_time: 5m
        alertname: SluiceRolloutFailed
        exp_alerts:
          - exp_labels: {severity: warning, namespace: ml, name: fraud}
            exp_annotations:
              summary: ModelDeployment ml/fraud rolled a canary back
              description: >-
                A canary of ml/fraud was rolled back in the last 15 minutes (analysis failed, progress deadline or
                promotion failure); the stable version keeps serving. kubectl describe modeldeployment -n ml fraud
                shows why.
  - interval: 1m
    input_series:
      # stuck: Progressing from minute 5 on, then no check and no step change
      - series: 'sluice_modeldeployment_phase{namespace="ml", name="stuck", phase="Progressing"}'
        values: '0x5 1x85'
      - series: 'sluice_rollout_step{namespace="ml", name="stuck"}'
        values: '1x90'
      # moving: checked every 10 minutes
      - series: 'sluice_modeldeployment_phase{namespace="ml", name="moving", phase="Progressing"}'
        values: '1x90'
      - series: 'sluice_analysis_checks_total{namespace="ml", name="moving", verdict="Passed"}'
        values: '0+0.1x90'
      # the operator's own scrape fails from minute 10 on
      - series: 'up{namespace="sluice-system", job="sluice"}'
        values: '1x10 0x30'
    alert_rule_test:
      - eval_time: 38m
        alertname: SluiceRolloutStuck
        exp_alerts: []
      - eval_time: 60m
        alertname: SluiceRolloutStuck
        exp_alerts:
          - exp_labels: {severity: warning, namespace: ml, name: stuck}
            exp_annotations:
              summary: Rollout of ml/stuck is not moving
              description: >-
                The rollout of ml/stuck has run no analysis check and changed neither step nor phase for 30m (a
                canary that never gets ready, Prometheus unreachable, or a promotion that does not finish).
      - eval_time: 12m
        alertname: SluiceOperatorDown
        exp_alerts: []
      - eval_time: 20m
        alertname: SluiceOperatorDown
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: The sluice operator is down
              description: >-
                No sluice operator in sluice-system has been scraped successfully for 5 minutes: rollouts neither
                advance nor roll back while it is down (the stable versions keep serving).
"""


def test_the_alerts_fire_when_a_rollout_fails_is_stuck_or_the_operator_is_down(tmp_path: Path) -> None:
    manifests = render(
        set_values=["prometheusRule.enabled=true", "fullnameOverride=sluice"],
        api_versions=[PROMETHEUS_OPERATOR],
        namespace="sluice-system",
    )
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(the_one(manifests, "PrometheusRule")["spec"]))
    (tmp_path / "tests.yaml").write_text(ALERT_TESTS)
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yaml"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- docs/observability.md --------------------------------------------------------------------------------------------


def documented_series() -> dict[str, tuple[str, set[str]]]:
    """Rows `| \\`name\\` | type | labels | meaning |` of docs/observability.md: name -> (type, label names)."""
    rows = re.findall(r"^\| `(sluice_[a-z_]+)` \| (\w+) \|([^|]*)\|", OBSERVABILITY_DOC.read_text(), re.MULTILINE)
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def test_every_operator_series_is_documented_with_its_type_and_labels() -> None:
    documented = documented_series()
    exposed = {}
    for family in REGISTRY.collect():
        if family.name.startswith("sluice_"):
            name = family.name + ("_total" if family.type == "counter" else "")
            describer = getattr(REGISTRY, "_names_to_collectors", {}).get(name)
            labels = set(getattr(describer, "_labelnames", ()))
            exposed[name] = (family.type, labels)
    operator_docs = {name: row for name, row in documented.items() if not name.startswith("sluice_serving_")}
    assert operator_docs == exposed
