"""Crash anywhere: rollouts that should promote and rollouts that should roll back run in parallel
ModelDeployments while the operator is SIGKILLed at random moments and restarted.

Invariants: every rollout reaches the outcome it reaches without kills (a `bad` version RolledBack, any other
Promoted); `status.history` holds exactly one entry per rollout, in order; no ModelDeployment ever has a child
besides its fixed names; within a rollout the canary weight never goes up after a Failed check (from a watch on
the ModelDeployments, every delivered state). The operator runs with the admin kubeconfig, watching only the test
namespace; the metrics come from the real Prometheus scraping `SyntheticTraffic`.

Short (make test): 4 ModelDeployments x 3 rollouts = 12 rollouts. Full (make stress): 10 x 5 = 50 rollouts.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import ControlPlane, Prometheus, unique_name
from integration.operator_support import OperatorProcess
from integration.sluice_crd import install_crd
from reliability.support import (
    Recorder,
    Rollouts,
    SyntheticTraffic,
    expected_outcome,
    history_problems,
    size,
    weights_never_rise_after_a_failed_check,
)

pytestmark = pytest.mark.e2e

OBJECTS = size(4, 10)
ROLLOUTS_EACH = size(3, 5)
INTERVAL = "2s"
ROLLOUT_TIMEOUT = 180.0
KILL_EVERY = (2.0, 6.0)
"""Seconds between a restart and the next SIGKILL, uniformly at random (seeded)."""


def spec(version: str) -> dict[str, Any]:
    return {
        "model": {"version": version, "uri": "https://models.example.com/iris/model.onnx", "format": "onnx"},
        "replicas": 1,
        "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
        "rollout": {"steps": [25, 50], "interval": INTERVAL, "progressDeadline": "2m"},
        "analysis": {"minRequests": 10, "maxInconclusiveChecks": 3, "onInconclusive": "Hold"},
    }


def plan(index: int) -> list[str]:
    """Alternating good and bad versions, starting with a different one per object."""
    return [f"{n + 2}.0.0{'-bad' if (index + n) % 2 else ''}" for n in range(ROLLOUTS_EACH)]


class Killer:
    """SIGKILLs the operator at random moments (seeded) and restarts it at once, in a thread."""

    def __init__(self, operator: OperatorProcess, seed: int) -> None:
        self._operator = operator
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self.kills = 0
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)

    def start(self) -> Killer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._random.uniform(*KILL_EVERY)):
            record = self._operator.record
            if record is not None and record.is_alive():
                os.kill(record.pid, signal.SIGKILL)
                self.kills += 1
            self._operator.stop()
            self._operator.start()


@pytest.fixture
def traffic(prometheus: Prometheus) -> Iterator[SyntheticTraffic]:
    synthetic = SyntheticTraffic(prometheus, unique_name("synthetic")).start()
    yield synthetic
    synthetic.stop()


def test_rollouts_reach_their_outcome_while_the_operator_is_killed_at_random(  # noqa: PLR0917 (fixtures)
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    prometheus: Prometheus,
    restricted_namespace: str,
    traffic: SyntheticTraffic,
    tmp_path: Path,
) -> None:
    install_crd(control_plane)
    operator = OperatorProcess(
        control_plane.kubeconfig,
        tmp_path / "operator.log",
        {
            "SLUICE_NAMESPACES": restricted_namespace,
            "SLUICE_RESYNC_SECONDS": "2",
            "SLUICE_PROMETHEUS_URL": prometheus.url,
            "SLUICE_PROMETHEUS_TIMEOUT": "3",
        },
    ).start()
    rollouts = Rollouts(kube_api_client, restricted_namespace, traffic, spec)
    recorder = Recorder(kube_api_client, restricted_namespace).start()
    names = [f"md-{index}" for index in range(OBJECTS)]
    plans = {name: plan(index) for index, name in enumerate(names)}
    for name in names:
        rollouts.create(name, upcoming=plans[name])
    killer: Killer | None = None
    duplicates: list[str] = []
    """Children beyond the fixed names, looked for after every finished rollout (and at the end)."""
    try:
        for name in names:
            rollouts.wait(partial(rollouts.stable, name, "1.0.0"), f"{name} Stable", timeout=90)
        killer = Killer(operator, seed=int(os.environ.get("SLUICE_STRESS_SEED", "8"))).start()
        started = time.monotonic()

        def drive(name: str) -> None:
            for version in plans[name]:
                rollouts.roll_out(name, version)
                rollouts.wait(partial(rollouts.finished, name, version), f"{name} {version}", ROLLOUT_TIMEOUT)
                duplicates.extend(rollouts.duplicate_children())

        with ThreadPoolExecutor(max_workers=OBJECTS) as pool:
            for future in [pool.submit(drive, name) for name in names]:
                future.result()
        elapsed = time.monotonic() - started
    finally:
        if killer is not None:
            killer.stop()
        recorder.stop()
        log_tail = operator.log_tail(80)
        operator.stop()

    problems: list[str] = []
    for name in names:
        problems += history_problems(rollouts.status(name), plans[name])
        problems += weights_never_rise_after_a_failed_check(recorder.of(name))
    problems += duplicates + rollouts.duplicate_children()
    outcomes = [expected_outcome(v) for p in plans.values() for v in p]
    print(
        f"crash anywhere: {len(outcomes)} rollouts ({outcomes.count('Promoted')} promoted, "
        f"{outcomes.count('RolledBack')} rolled back) across {OBJECTS} ModelDeployments in {elapsed:.0f} s, "
        f"{killer.kills if killer else 0} SIGKILLs, {len(recorder.snapshots)} watched states"
    )
    assert not problems, "\n".join(problems) + "\n" + log_tail
    assert killer is not None
    assert killer.kills >= len(outcomes) // 4, f"too few kills to mean anything: {killer.kills}"
