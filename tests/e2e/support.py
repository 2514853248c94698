"""What the end-to-end modules share: `Deployed`, one ModelDeployment in its own namespace with its data plane and
the operator reconciling it; each module's scenario class adds the spec it creates and the changes it makes.
`Scenario` is the canary-rollout one (interval 5 s, steps [20, 50]) several modules use, with its timing constants.

(The operator itself starts with `integration.operator_support.start_least_privileged_operator`; the shared
fixtures are in conftest.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, cast

from kubernetes import client
from kubernetes.client import ApiClient

from harness import wait_until
from harness.dataplane import DataPlane, LoadGenerator
from integration.operator_support import OperatorProcess, status_of
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from unit.serving.support import ModelFiles, rows_body

TIMEOUT = 120.0
"""How long `Deployed.wait` waits by default."""
INTERVAL_SECONDS = 5
STEPS = [20, 50]
RESYNC_SECONDS = 2
ROLLBACK_BOUND_SECONDS = 2 * INTERVAL_SECONDS + 10
RATE = 30.0
UNREACHABLE_PROMETHEUS = "http://127.0.0.1:9"
"""A Prometheus URL the e2e operators allow (`SLUICE_PROMETHEUS_URLS`) where nothing answers (the discard port)."""
CHART_IDENTITY = "chart-identity"
"""`operator` parameter: run it as the chart's ServiceAccount (fixtures `chart_install`, `operator_kubeconfig`)."""


@dataclass
class Deployed:
    """One ModelDeployment `name` in `namespace`, with its data plane: its object and status as the API server
    has them, and waits that fail with the status, the operator's log and the data plane's errors."""

    api_client: ApiClient
    namespace: str
    operator: OperatorProcess
    dataplane: DataPlane
    custom: client.CustomObjectsApi = field(init=False)
    name: ClassVar[str] = "iris"
    """The same in every test: each has its own namespace."""

    def __post_init__(self) -> None:
        self.custom = client.CustomObjectsApi(self.api_client)

    def get(self) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        )

    def status(self) -> dict[str, Any]:
        return status_of(self.get())

    def diagnostics(self) -> str:
        return (
            f"--- status ---\n{self.status()}\n--- operator log ---\n{self.operator.log_tail(40)}\n"
            f"--- data plane errors ---\n{self.dataplane.errors}\n{self.dataplane.log_tails(8)}"
        )

    def wait(self, check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        """Until `check()`, polled every 0.2 s; then the operator must still be running."""
        try:
            wait_until(check, timeout=timeout, what=what, interval=0.2)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{self.diagnostics()}") from None
        assert self.operator.is_running(), self.operator.log_tail()


@dataclass
class Scenario(Deployed):
    """One ModelDeployment serving `model` (every version the same file), rolled out with STEPS every
    INTERVAL_SECONDS."""

    model: ModelFiles

    def spec(self, version: str, **analysis: Any) -> dict[str, Any]:
        return {
            "model": {"version": version, "uri": self.model.onnx.as_uri(), "format": "onnx"},
            "replicas": 1,
            "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
            "rollout": {"steps": STEPS, "interval": f"{INTERVAL_SECONDS}s", "progressDeadline": "2m"},
            "analysis": {"minRequests": 10, "maxInconclusiveChecks": 2, "onInconclusive": "Hold", **analysis},
        }

    def create(self, version: str, **analysis: Any) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name},
            "spec": self.spec(version, **analysis),
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def set_version(self, version: str) -> None:
        patch = {"spec": {"model": {"version": version}}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, patch)

    def route_weights(self) -> dict[str, int]:
        route = cast(
            dict[str, Any],
            self.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", self.name
            ),
        )
        return {
            ref["name"]: int(ref.get("weight", 1)) for rule in route["spec"]["rules"] for ref in rule["backendRefs"]
        }

    def start_stable(self, version: str = "1.0.0", **analysis: Any) -> None:
        self.create(version, **analysis)
        self.wait(
            lambda: (
                self.status().get("phase") == "Stable" and self.dataplane.ready_versions()[(version, "stable")] >= 1
            ),
            f"{version} Stable with a ready serving process",
        )

    def follow(self, until: Callable[[dict[str, Any]], bool], what: str, timeout: float = TIMEOUT) -> Timeline:
        """Poll the status every 0.2 s until `until(status)`, recording the canary weights seen and when."""
        timeline = Timeline()
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            timeline.record(status)
            if until(status):
                return timeline
            if time.monotonic() > deadline or not self.operator.is_running():
                raise AssertionError(
                    f"timed out waiting for {what}; weights seen {timeline.weights}\n{self.diagnostics()}"
                )
            time.sleep(0.2)


@dataclass
class Timeline:
    weights: list[int] = field(default_factory=list)
    first_weighted_at: float | None = None
    """Wall-clock time (epoch s) the first step started (status.stepStartedAt when first seen with weight > 0)."""
    back_to_zero_at: float | None = None
    """Wall-clock time the weight was first seen at 0 again after that."""

    def record(self, status: dict[str, Any]) -> None:
        weight = int(status.get("canaryWeight", 0))
        if not self.weights or self.weights[-1] != weight:
            self.weights.append(weight)
        if weight > 0 and self.first_weighted_at is None:
            self.first_weighted_at = datetime.fromisoformat(status["stepStartedAt"]).timestamp()
        if weight == 0 and self.first_weighted_at is not None and self.back_to_zero_at is None:
            self.back_to_zero_at = time.time()

    @property
    def seconds_to_zero(self) -> float:
        assert self.first_weighted_at is not None, self.weights
        assert self.back_to_zero_at is not None, self.weights
        return self.back_to_zero_at - self.first_weighted_at


def load(scenario: Scenario) -> LoadGenerator:
    body = rows_body(scenario.model.rows[:1], "FP32")
    return LoadGenerator(scenario.dataplane, scenario.name, body, rate=RATE, duration=TIMEOUT + 60)


def finished(outcome: str) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        history = status.get("history") or []
        return bool(history) and history[-1]["outcome"] == outcome and status.get("canaryWeight") == 0

    return check
