"""Prediction drift end to end, on the same substrate as tests/e2e/test_canary_rollouts.py (real control plane with
kwok pods, the real operator subprocess, real `sluice-serving` processes scraped by the real Prometheus, a load
generator splitting traffic by the HTTPRoute), with models whose predictions differ in a controlled way:

- a classifier whose intercept is pushed so far that it predicts one class only (its requests all succeed, fast)
  is rolled back on prediction PSI and KS while error rate and latency pass;
- a regressor whose predictions are offset by 1.5 standard deviations is rolled back on its prediction
  histogram buckets;
- the same classifier retrained on another sample (an equivalent model) is promoted through every step, its
  predictions and its inputs (feature PSI) judged the same as the stable version's; `kubectl sluice analyze -f`
  with a stricter bound over the same history says it would have been rolled back;
- that equivalent model, while a second client sends the canary Service (only) shifted rows, is rolled back on
  feature PSI alone (a biased traffic split);

and in each scenario `sluice.cli.replay` over the recorded window reproduces the operator's live checks (step,
weight, verdict of the check and of every metric) as the operator recorded them in status.lastCheck, and
`kubectl sluice analyze` prints the same table.

Every request carries the same 40 rows, so both versions see the same inputs: a canary's prediction mix differs
from the stable's only by the model. Timing as in test_canary_rollouts: interval 5 s, steps [20, 50]. Replayed
checks run at their exact due times, live ones a fraction of a second later, so values may differ slightly;
the verdicts are compared exactly, except for a metric whose value is borderline (within 35% of its bound), as
the request count of a first check that comes as the canary's model server starts may be.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from kubernetes.client import ApiClient
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from e2e.support import (
    INTERVAL_SECONDS,
    STEPS,
    Scenario,
    finished,
)
from harness import ControlPlane, Prometheus
from harness.dataplane import DataPlane, LoadGenerator
from integration.operator_support import OperatorProcess
from sluice.adapters.metrics import PrometheusProvider
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION, ModelDeploymentSpec
from sluice.cli.main import main as cli_main
from sluice.cli.replay import Decision, ReplayedCheck, render_table, replay
from unit.serving.support import ModelFiles, digest_of, rows_body

pytestmark = pytest.mark.e2e

ROWS_PER_REQUEST = 40
RATE = 30.0
FEATURES = 6
MIN_DRIFT_SAMPLES = 200
DRIFT_BOUNDS = {
    "maxPredictionPSI": 0.2,
    "maxPredictionKS": 0.15,
    "minDriftSamples": MIN_DRIFT_SAMPLES,
    "minRequests": MIN_DRIFT_SAMPLES // ROWS_PER_REQUEST - 1,
}
"""At 30 requests/s a 20% step sends the canary about 30 requests (1200 predictions) per 5 s window; a first check
that comes as the canary's model server starts may see a handful. minRequests is below minDriftSamples / rows per
request, so whenever the drift metrics are judged, error rate and latency are too (not Inconclusive)."""


@dataclass(frozen=True)
class Models:
    """ONNX files by version, and one request body of held-out rows."""

    files: dict[str, Path]
    body: bytes
    shifted_body: bytes = b""
    """The same rows moved by +2.5 in every feature (a client sending other inputs)."""


def _onnx(path: Path, model: Any) -> Path:
    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    onx = convert_sklearn(
        model, initial_types=[("input", FloatTensorType([None, FEATURES]))], options=options, target_opset=17
    )
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """1.0.0 and its retrained twin 2.0.0 (another sample of the same problem: 39 of the 40 rows predicted alike);
    2.0.0-oneclass, 1.0.0 with its intercept raised by 3, predicts class 1 for every row."""
    directory = tmp_path_factory.mktemp("classifiers")
    x, y = make_classification(n_samples=3000, n_features=FEATURES, n_informative=4, random_state=0)
    stable = LogisticRegression(max_iter=500).fit(x[:1000], y[:1000])
    retrained = LogisticRegression(max_iter=500).fit(x[1000:2000], y[1000:2000])
    one_class = copy.deepcopy(stable)
    one_class.intercept_ = one_class.intercept_ + 3.0
    rows = x[2000 : 2000 + ROWS_PER_REQUEST]
    assert np.bincount(stable.predict(rows)).tolist() == [20, 20]
    assert np.bincount(retrained.predict(rows)).tolist() == [21, 19]
    assert set(one_class.predict(rows).tolist()) == {1}
    files = {
        "1.0.0": _onnx(directory / "stable.onnx", stable),
        "2.0.0": _onnx(directory / "retrained.onnx", retrained),
        "2.0.0-oneclass": _onnx(directory / "oneclass.onnx", one_class),
    }
    return Models(files, rows_body(rows, "FP32"), rows_body(rows + 2.5, "FP32"))


@pytest.fixture(scope="module")
def regressors(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """1.0.0 predicting a target scaled to unit variance (spread over the default prediction buckets), and
    2.0.0-offset, the same model plus 1.5."""
    directory = tmp_path_factory.mktemp("regressors")
    x, y = make_regression(n_samples=2000, n_features=FEATURES, noise=10, random_state=1)
    stable = LinearRegression().fit(x[:1000], y[:1000] / y.std())
    offset = copy.deepcopy(stable)
    offset.intercept_ = offset.intercept_ + 1.5
    files = {
        "1.0.0": _onnx(directory / "stable.onnx", stable),
        "2.0.0-offset": _onnx(directory / "offset.onnx", offset),
    }
    return Models(files, rows_body(x[1000 : 1000 + ROWS_PER_REQUEST], "FP32"))


@dataclass
class DriftScenario(Scenario):
    """A Scenario whose versions serve different model files."""

    files: dict[str, Path] | None = None

    def spec(self, version: str, **analysis: Any) -> dict[str, Any]:
        spec = super().spec(version, **analysis)
        assert self.files is not None
        spec["model"]["uri"] = self.files[version].as_uri()
        return spec

    def set_version(self, version: str) -> None:
        assert self.files is not None
        patch = {"spec": {"model": {"version": version, "uri": self.files[version].as_uri()}}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, patch)

    def record_checks(self, until: Callable[[dict[str, Any]], bool], what: str) -> list[dict[str, Any]]:
        """Poll the status every 0.2 s until `until(status)`; every distinct status.lastCheck the operator wrote."""
        checks: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 120
        while True:
            status = self.status()
            last = status.get("lastCheck")
            if last is not None:
                checks.setdefault(last["time"], last)
            if until(status):
                return [checks[key] for key in sorted(checks)]
            if time.monotonic() > deadline or not self.operator.is_running():
                raise AssertionError(
                    f"timed out waiting for {what}; checks {list(checks.values())}\n{self.diagnostics()}"
                )
            time.sleep(0.2)


@pytest.fixture
def drift_scenario(
    operator: OperatorProcess,
    kube_api_client: ApiClient,
    prometheus: Prometheus,
    restricted_namespace: str,
    tmp_path: Path,
) -> Iterator[Callable[[Models], DriftScenario]]:
    planes: list[DataPlane] = []

    def make(models: Models) -> DriftScenario:
        plane = DataPlane(kube_api_client, prometheus, restricted_namespace, tmp_path / "dataplane").start()
        planes.append(plane)
        stable = models.files["1.0.0"]  # Scenario.model; `files` gives each version its own model
        model = ModelFiles(stable, stable, digest_of(stable), np.zeros((0, FEATURES)), [])
        return DriftScenario(kube_api_client, restricted_namespace, operator, plane, model, files=models.files)

    yield make
    for plane in planes:
        plane.stop()


def replayed(
    scenario: DriftScenario, prometheus: Prometheus, live: list[dict[str, Any]], canary: str
) -> list[ReplayedCheck]:
    """`sluice.cli.replay` of the live rollout: its first step starting one interval before the first live check."""
    spec = ModelDeploymentSpec.model_validate(scenario.get()["spec"])
    start = datetime.fromisoformat(live[0]["time"]) - timedelta(seconds=INTERVAL_SECONDS)
    end = datetime.fromisoformat(live[-1]["time"]) + timedelta(seconds=1)
    checks = asyncio.run(
        replay(
            spec,
            PrometheusProvider(prometheus.url, 10.0),
            start,
            end,
            namespace=scenario.namespace,
            name=scenario.name,
            canary_version=canary,
            stable_version="1.0.0",
        )
    )
    print(render_table(checks, spec.rollout.steps))
    return checks


def analyze_command(
    scenario: DriftScenario,
    control_plane: ControlPlane,
    prometheus: Prometheus,
    live: list[dict[str, Any]],
    *extra: str,
) -> tuple[int, str]:
    """`kubectl sluice analyze` over the live window, versions taken from the ModelDeployment's history."""
    start = datetime.fromisoformat(live[0]["time"]) - timedelta(seconds=INTERVAL_SECONDS)
    end = datetime.fromisoformat(live[-1]["time"]) + timedelta(seconds=1)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = cli_main(
            [
                *("analyze", scenario.name, "-n", scenario.namespace, "--kubeconfig", str(control_plane.kubeconfig)),
                *("--from", start.isoformat(), "--to", end.isoformat(), "--prometheus-url", prometheus.url),
                *extra,
            ]
        )
    print(out.getvalue())
    return code, out.getvalue()


BORDERLINE = 0.35
"""A value within this fraction of its bound is borderline: live and replayed readings of one window differ slightly
(a live query misses samples scraped just before it and ingested just after), so its verdict may too."""

GATED_BY_REQUEST_COUNT = ("errorRate", "latencyP99")
"""Judged only with enough requests: borderline with the request count."""


def borderline(metric: dict[str, Any]) -> bool:
    value = metric.get("value")
    bound = metric["min"] if metric.get("min") is not None else metric.get("max")
    if value is None or bound is None or bound == 0:
        return False
    return bool(abs(value - bound) <= BORDERLINE * abs(bound))


def assert_same_checks(live: list[dict[str, Any]], checks: list[ReplayedCheck]) -> None:
    """Same step, weight and verdict for every check and the same verdict for every metric, except that a metric
    borderline in either reading (and the metrics it gates) may differ."""
    replayed_wire = [check.check.to_wire() for check in checks]
    assert len(replayed_wire) == len(live), (replayed_wire, live)

    def key(check: dict[str, Any], tolerated: set[str]) -> tuple[Any, ...]:
        metrics = tuple(
            (metric["name"], "borderline" if metric["name"] in tolerated else metric["verdict"])
            for metric in check["metrics"]
        )
        return check["step"], check["weight"], check["verdict"], metrics

    for replayed_check, live_check in zip(replayed_wire, live, strict=True):
        tolerated = {
            metric["name"] for metric in (*replayed_check["metrics"], *live_check["metrics"]) if borderline(metric)
        }
        if "requestCount" in tolerated:
            tolerated.update(GATED_BY_REQUEST_COUNT)
        assert key(replayed_check, tolerated) == key(live_check, tolerated), (replayed_check, live_check)
    for check, recorded in zip(checks, live, strict=True):
        offset = (check.check.time - datetime.fromisoformat(recorded["time"])).total_seconds()
        assert abs(offset) < 2, f"replayed check at {check.check.time}, live at {recorded['time']}"


def run_rollout(
    scenario: DriftScenario,
    models: Models,
    canary: str,
    outcome: str,
    analysis: dict[str, Any],
    *,
    canary_only_body: bytes | None = None,
) -> list[dict[str, Any]]:
    """Start 1.0.0, roll `canary` out under load until `outcome`; the checks the operator recorded. With
    `canary_only_body`, a second client sends that body at 15 requests/s to the canary Service only."""
    scenario.start_stable("1.0.0", **analysis)
    with contextlib.ExitStack() as clients:
        generator = clients.enter_context(
            LoadGenerator(scenario.dataplane, scenario.name, models.body, rate=RATE, duration=180)
        )
        scenario.set_version(canary)
        if canary_only_body is not None:
            canary_service = f"{scenario.name}-canary"
            clients.enter_context(LoadGenerator(scenario.dataplane, canary_service, canary_only_body, rate=15))
        live = scenario.record_checks(
            lambda s: finished(outcome)(s) and s.get("phase") in ("Stable", "RolledBack"), f"{canary} {outcome}"
        )
    served = generator.stats.by_version
    assert served[(canary, 200)] > 0, served
    assert not [key for key in served if key[1] != 200], served
    return live


def metric(check: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in check["metrics"] if m["name"] == name)


def test_a_one_class_classifier_is_rolled_back_on_prediction_drift_and_replay_agrees(
    drift_scenario: Callable[[Models], DriftScenario],
    classifiers: Models,
    prometheus: Prometheus,
    control_plane: ControlPlane,
) -> None:
    scenario = drift_scenario(classifiers)
    live = run_rollout(scenario, classifiers, "2.0.0-oneclass", "RolledBack", DRIFT_BOUNDS)
    status = scenario.status()
    entry = status["history"][-1]
    assert (entry["version"], entry["reason"]) == ("2.0.0-oneclass", "AnalysisFailed"), entry
    assert "prediction PSI" in entry["message"], entry
    assert "above maxPredictionPSI 0.2" in entry["message"], entry
    last = live[-1]
    assert last["verdict"] == "Failed"
    assert metric(last, "errorRate")["verdict"] == metric(last, "latencyP99")["verdict"] == "Passed", last
    assert metric(last, "predictionPSI")["value"] > 4, last  # 20/20 against 0/40: 4.60 (docs/ml-analysis.md)
    assert metric(last, "predictionKS")["value"] == pytest.approx(0.5, abs=0.05), last
    assert status["stableVersion"] == "1.0.0"

    checks = replayed(scenario, prometheus, live, "2.0.0-oneclass")
    assert_same_checks(live, checks)
    assert checks[-1].decision is Decision.ROLLBACK
    code, out = analyze_command(scenario, control_plane, prometheus, live)
    assert code == 1, out  # the replayed rollout is rolled back
    assert out.startswith("replaying 2.0.0-oneclass over stable 1.0.0, "), out
    assert render_table(checks, STEPS) in out


def test_a_regressor_with_an_offset_is_rolled_back_on_its_prediction_histogram(
    drift_scenario: Callable[[Models], DriftScenario], regressors: Models, prometheus: Prometheus
) -> None:
    scenario = drift_scenario(regressors)
    live = run_rollout(scenario, regressors, "2.0.0-offset", "RolledBack", DRIFT_BOUNDS)
    entry = scenario.status()["history"][-1]
    assert (entry["version"], entry["reason"]) == ("2.0.0-offset", "AnalysisFailed"), entry
    assert "prediction" in entry["message"], entry
    last = live[-1]
    assert metric(last, "errorRate")["verdict"] == "Passed", last
    assert metric(last, "predictionPSI")["value"] > 0.2, last
    assert metric(last, "predictionKS")["value"] > 0.15, last

    checks = replayed(scenario, prometheus, live, "2.0.0-offset")
    assert_same_checks(live, checks)
    assert checks[-1].decision is Decision.ROLLBACK


def test_a_retrained_equivalent_classifier_is_promoted_and_replay_agrees(
    drift_scenario: Callable[[Models], DriftScenario],
    classifiers: Models,
    prometheus: Prometheus,
    control_plane: ControlPlane,
    tmp_path: Path,
) -> None:
    scenario = drift_scenario(classifiers)
    live = run_rollout(scenario, classifiers, "2.0.0", "Promoted", {**DRIFT_BOUNDS, "maxFeaturePSI": 0.1})
    status = scenario.status()
    assert status["stableVersion"] == "2.0.0"
    passed = [check for check in live if check["verdict"] == "Passed"]
    assert [check["weight"] for check in passed] == STEPS, live
    for check in passed:
        assert metric(check, "predictionPSI")["value"] < 0.05, check  # 20/20 against 21/19: 0.0025
        assert metric(check, "featurePSI")["value"] < 0.01, check  # the same rows on both sides
        assert f"worst of {FEATURES} features" in metric(check, "featurePSI")["message"], check

    checks = replayed(scenario, prometheus, live, "2.0.0")
    assert_same_checks(live, checks)
    assert [check.decision for check in checks if check.check.verdict == "Passed"] == [
        Decision.ADVANCE,
        Decision.PROMOTE,
    ]
    code, out = analyze_command(scenario, control_plane, prometheus, live)
    assert code == 0, out
    assert out.startswith("replaying 2.0.0 over stable 1.0.0, "), out  # versions from status.history
    assert "outcome: promoted after 2 passed checks" in out, out

    stricter = scenario.get()  # tuning: the same history judged with a bound below this model's 0.0025
    stricter["spec"]["analysis"]["maxPredictionPSI"] = 0.001
    manifest = tmp_path / "stricter.yaml"
    manifest.write_text(yaml.safe_dump(stricter))
    code, out = analyze_command(scenario, control_plane, prometheus, live, "-f", str(manifest))
    assert code == 1, out
    assert "outcome: rolled back (AnalysisFailed): prediction PSI 0.00250" in out, out


def test_a_canary_sent_other_inputs_is_rolled_back_on_feature_shift_and_replay_agrees(
    drift_scenario: Callable[[Models], DriftScenario], classifiers: Models, prometheus: Prometheus
) -> None:
    """The retrained (equivalent) model, but a second client sends the canary shifted rows directly: a biased
    traffic split. Only maxFeaturePSI is set, so the rollback is on the inputs alone."""
    scenario = drift_scenario(classifiers)
    live = run_rollout(
        scenario,
        classifiers,
        "2.0.0",
        "RolledBack",
        {"maxFeaturePSI": 0.2, "minDriftSamples": 200},
        canary_only_body=classifiers.shifted_body,
    )
    entry = scenario.status()["history"][-1]
    assert (entry["version"], entry["reason"]) == ("2.0.0", "AnalysisFailed"), entry
    assert "above maxFeaturePSI 0.2" in entry["message"], entry
    last = live[-1]
    assert [m["name"] for m in last["metrics"]][-1] == "featurePSI", last
    assert metric(last, "errorRate")["verdict"] == "Passed", last
    assert metric(last, "featurePSI")["value"] > 1, last

    checks = replayed(scenario, prometheus, live, "2.0.0")
    assert_same_checks(live, checks)
    assert checks[-1].decision is Decision.ROLLBACK
