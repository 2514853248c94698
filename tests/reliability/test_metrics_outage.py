"""Metrics outage and garbage: no promotion ever happens on missing or unreadable data.

Every canary here has healthy traffic (`SyntheticTraffic`: enough requests, no errors, fast), so the built-in
checks pass; what differs is one custom metric, or Prometheus itself:

- a custom query answering NaN (`vector(NaN)`), nothing (a series that does not exist), several series, or a
  PromQL error (a query Prometheus rejects with 400), against the real Prometheus;
- Prometheus slower than the operator's query timeout (a loopback endpoint that answers after 5 s, the
  operator's timeout being 1 s);
- a real Prometheus stopped in the middle of the rollout, after the first step's check passed;
- a control with a well-formed custom query, which is promoted (so the setup can promote at all).

Each garbage case must end RolledBack (Inconclusive for no data, Errored for unreadable data), its canary weight
never above the first step, its stable version unchanged, no check ever Passed on the garbage metric.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import ControlPlane, Prometheus, unique_name
from integration.operator_support import OperatorProcess
from integration.sluice_crd import install_crd
from reliability.support import Recorder, Rollouts, SyntheticTraffic

pytestmark = pytest.mark.e2e

STEPS = [25, 50]
TIMEOUT = 120.0
GARBAGE = {
    "nan": ("vector(NaN)", "RolledBack", "AnalysisInconclusive"),
    "nothing": ('sluice_no_such_metric{version="{{version}}"}', "RolledBack", "AnalysisInconclusive"),
    "several-series": (
        'label_replace(vector(1), "a", "1", "", "") or label_replace(vector(2), "a", "2", "", "")',
        "RolledBack",
        "AnalysisErrored",
    ),
    "promql-error": ("sum(rate(", "RolledBack", "AnalysisErrored"),
}


class SlowPrometheus:
    """Answers every query after `delay` seconds (a Prometheus too slow for the operator's timeout)."""

    def __init__(self, delay: float) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(delay)
                body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the operator gave up waiting
                    self.wfile.write(body)

            do_POST = do_GET  # noqa: N815 (http.server's naming)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def spec_with(custom: str | None, prometheus_url: str | None = None, *, hold: bool = False) -> Any:
    """`hold`: inconclusive checks (a Prometheus that has not scraped yet) hold the step instead of rolling back."""

    def spec(version: str) -> dict[str, Any]:
        analysis: dict[str, Any] = {
            "minRequests": 10,
            "maxInconclusiveChecks": 2,
            "maxConsecutiveErrors": 2,
            "onInconclusive": "Hold" if hold else "Rollback",
        }
        if custom is not None:
            analysis["metrics"] = [{"name": "quality", "query": custom, "min": 0}]
        if prometheus_url is not None:
            analysis["prometheus"] = {"url": prometheus_url}
        return {
            "model": {"version": version, "uri": "https://models.example.com/iris/model.onnx", "format": "onnx"},
            "replicas": 1,
            "rollout": {"steps": STEPS, "interval": "2s", "progressDeadline": "2m"},
            "analysis": analysis,
        }

    return spec


@pytest.fixture(scope="module")
def traffic(prometheus: Prometheus) -> Iterator[SyntheticTraffic]:
    synthetic = SyntheticTraffic(prometheus, unique_name("synthetic")).start()
    yield synthetic
    synthetic.stop()


@pytest.fixture(scope="module")
def slow() -> Iterator[SlowPrometheus]:
    server = SlowPrometheus(delay=5.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def second_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A second real Prometheus, which a test stops mid-rollout."""
    own = Prometheus.start(tmp_path_factory.mktemp("prometheus"))
    yield own
    own.stop()


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane,
    prometheus: Prometheus,
    slow: SlowPrometheus,
    second_prometheus: Prometheus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """Its default Prometheus is the real one; specs may also name the slow one and the second one (the
    operator's Prometheus allowlist)."""
    install_crd(control_plane)
    settings = {"SLUICE_RESYNC_SECONDS": "2", "SLUICE_PROMETHEUS_URL": prometheus.url, "SLUICE_PROMETHEUS_TIMEOUT": "1"}
    settings["SLUICE_PROMETHEUS_URLS"] = f"{slow.url},{second_prometheus.url}"
    process = OperatorProcess(
        control_plane.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", settings
    ).start()
    yield process
    process.stop()


def run_rollout(  # noqa: PLR0917
    api_client: ApiClient, namespace: str, traffic: SyntheticTraffic, operator: OperatorProcess, spec: Any, name: str
) -> tuple[dict[str, Any], list[Any]]:
    rollouts = Rollouts(api_client, namespace, traffic, spec)
    recorder = Recorder(api_client, namespace).start()
    try:
        rollouts.create(name, upcoming=["2.0.0"])
        assert operator.record is not None
        rollouts.wait(partial(rollouts.stable, name, "1.0.0"), f"{name} Stable", TIMEOUT, [operator.record])
        rollouts.roll_out(name, "2.0.0")
        rollouts.wait(partial(rollouts.finished, name, "2.0.0"), f"{name} finished", TIMEOUT, [operator.record])
    finally:
        recorder.stop()
    return rollouts.status(name), recorder.of(name)


def never_promoted(status: dict[str, Any], shots: list[Any], reason: str) -> list[str]:
    """What is wrong with a rollout that should have ended RolledBack with `reason`, never promoted."""
    entry = status["history"][-1]
    problems = []
    if (entry["version"], entry["outcome"], entry["reason"]) != ("2.0.0", "RolledBack", reason):
        problems.append(f"ended {entry}, expected RolledBack {reason}")
    if status["stableVersion"] != "1.0.0":
        problems.append(f"stable version {status['stableVersion']}")
    if max(shot.weight for shot in shots) > STEPS[0]:
        problems.append(f"weights went past the first step: {[shot.weight for shot in shots]}")
    if any(("2.0.0", "Promoted") in shot.history for shot in shots):
        problems.append("a promotion was recorded")
    return problems


def test_garbage_or_slow_answers_never_promote_and_good_data_does(
    kube_api_client: ApiClient,
    restricted_namespace: str,
    traffic: SyntheticTraffic,
    operator: OperatorProcess,
    slow: SlowPrometheus,
) -> None:
    """The control, every GARBAGE query and the slow Prometheus, as parallel ModelDeployments in one namespace."""
    cases: dict[str, tuple[Any, str | None]] = {
        "control": (spec_with("vector(1)"), None),
        **{f"garbage-{case}": (spec_with(query), reason) for case, (query, _, reason) in GARBAGE.items()},
        "slow": (spec_with(None, slow.url), "AnalysisErrored"),
    }
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {
            name: pool.submit(run_rollout, kube_api_client, restricted_namespace, traffic, operator, spec, name)
            for name, (spec, _) in cases.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    problems: list[str] = []
    for name, (status, shots) in results.items():
        reason = cases[name][1]
        if reason is None:
            if status["history"][-1]["outcome"] != "Promoted" or status["stableVersion"] != "2.0.0":
                problems.append(f"{name}: not promoted: {status['history'][-1]}")
            continue
        problems += [f"{name}: {problem}" for problem in never_promoted(status, shots, reason)]
        last = status["lastCheck"]
        if name == "slow":
            if last["verdict"] != "Errored" or "timed out" not in str(last).lower():
                problems.append(f"{name}: last check {last}")
        else:
            quality = next(m for m in last["metrics"] if m["name"] == "quality")
            if quality["verdict"] not in {"Inconclusive", "Errored"}:
                problems.append(f"{name}: the garbage metric was judged {quality}")
        print(f"metrics {name}: {status['history'][-1]['outcome']} ({status['history'][-1]['reason']})")
    assert not problems, "\n".join(problems)


def test_a_prometheus_stopped_mid_rollout_never_promotes(  # noqa: PLR0917 (fixtures)
    kube_api_client: ApiClient,
    restricted_namespace: str,
    traffic: SyntheticTraffic,
    operator: OperatorProcess,
    prometheus: Prometheus,
    second_prometheus: Prometheus,
) -> None:
    """A second real Prometheus (scraping the same synthetic traffic) passes the first check, then is stopped."""
    own = second_prometheus
    try:
        for target in prometheus.targets_dir.glob("*.json"):
            (own.targets_dir / target.name).write_text(target.read_text())
        own.wait_for_query('up{job="synthetic-traffic"} == 1')
        rollouts = Rollouts(kube_api_client, restricted_namespace, traffic, spec_with(None, own.url, hold=True))
        recorder = Recorder(kube_api_client, restricted_namespace).start()
        name = "stopped"
        assert operator.record is not None
        rollouts.create(name, upcoming=["2.0.0"])
        rollouts.wait(lambda: rollouts.stable(name, "1.0.0"), "Stable", TIMEOUT, [operator.record])
        rollouts.roll_out(name, "2.0.0")
        try:
            rollouts.wait(
                lambda: (
                    int(rollouts.status(name).get("passedChecks") or 0) >= 1
                    or rollouts.status(name).get("canaryWeight") == STEPS[1]
                ),
                "a first check passed",
                TIMEOUT,
                [operator.record],
            )
        except TimeoutError as error:
            recorder.stop()
            raise AssertionError(f"{error}: {rollouts.status(name)}\n{operator.log_tail(30)}") from None
        own.stop()
        rollouts.wait(lambda: rollouts.finished(name, "2.0.0"), "finished", TIMEOUT, [operator.record])
        recorder.stop()
        status = rollouts.status(name)
        entry = status["history"][-1]
        assert (entry["outcome"], entry["reason"]) == ("RolledBack", "AnalysisErrored"), entry
        assert status["stableVersion"] == "1.0.0"
    finally:
        own.stop()
