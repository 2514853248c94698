"""API faults: the operator talks to kube-apiserver through `harness.faultproxy.FaultProxy`, which answers a seeded
share of its requests with 500, 429 + Retry-After, 409 (writes), a dropped connection, or a stalled watch stream.

- Rollouts still complete with the outcome they have without faults, `status.history` holds every rollout once,
  and no duplicate child appears (nothing is lost, nothing is done twice).
- The readiness probe reflects a stalled watch: with every ModelDeployment watch held silent by the proxy, a
  change the watch owes turns `/readyz` to 503 within `SLUICE_WATCH_STALL_SECONDS`; when the proxy lets the
  stream go (Kopf reconnects) it turns 200 again. Reconciles go on meanwhile (resync).

The operator runs under the documented least-privilege identity (a bearer token, as through the counting proxy).
Short: 3 ModelDeployments x 2 rollouts at a 10 % fault rate. Full: 6 x 4 at 20 %.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from kubernetes.client import ApiClient

from harness import ControlPlane, Prometheus, free_port, unique_name, wait_until
from harness.faultproxy import FaultPlan, FaultProxy
from integration.operator_support import OperatorProcess, create_operator_identity, write_token_kubeconfig
from integration.sluice_crd import install_crd
from reliability.support import Recorder, Rollouts, SyntheticTraffic, history_problems, size

pytestmark = pytest.mark.e2e

OBJECTS = size(3, 6)
ROLLOUTS_EACH = size(2, 4)
FAULT_RATE = 0.2 if size(0, 1) else 0.1
STALL_SECONDS = 3
INACTIVITY_SECONDS = 15
TIMEOUT = 240.0


def spec(version: str) -> dict[str, Any]:
    return {
        "model": {"version": version, "uri": "https://models.example.com/iris/model.onnx", "format": "onnx"},
        "replicas": 1,
        "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
        "rollout": {"steps": [25, 50], "interval": "2s", "progressDeadline": "3m"},
        "analysis": {
            "minRequests": 10,
            "maxInconclusiveChecks": 3,
            "onInconclusive": "Hold",
            "maxConsecutiveErrors": 5,
        },
    }


@pytest.fixture(scope="module")
def fault_proxy(control_plane: ControlPlane) -> Iterator[FaultProxy]:
    proxy = FaultProxy(
        control_plane.server_url,
        control_plane.certificates.ca_cert,
        # 409 only fits writes and a stall only watches, both rarer than reads: weighted up so every kind occurs.
        FaultPlan(
            rate=0.0,
            weights={"500": 1.0, "429": 1.0, "409": 4.0, "drop": 1.0, "stall": 4.0},
            seed=20261127,
            stall_seconds=20.0,
        ),
    ).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def readiness_url() -> str:
    return f"http://127.0.0.1:{free_port()}/readyz"


@pytest.fixture(scope="module")
def operator(  # noqa: PLR0917 (fixtures)
    control_plane: ControlPlane,
    kube_api_client: ApiClient,
    fault_proxy: FaultProxy,
    prometheus: Prometheus,
    readiness_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    install_crd(control_plane)
    token = create_operator_identity(kube_api_client, unique_name("sluice-system"))
    workdir = tmp_path_factory.mktemp("operator")
    process = OperatorProcess(
        write_token_kubeconfig(workdir / "kubeconfig", fault_proxy.url, token),
        workdir / "operator.log",
        {
            "SLUICE_RESYNC_SECONDS": "2",
            "SLUICE_PROMETHEUS_URL": prometheus.url,
            "SLUICE_PROMETHEUS_TIMEOUT": "3",
            "SLUICE_KUBE_TIMEOUT": "10",
            "SLUICE_READINESS_ENDPOINT": readiness_url,
            "SLUICE_WATCH_STALL_SECONDS": str(STALL_SECONDS),
            "SLUICE_WATCH_INACTIVITY_SECONDS": str(INACTIVITY_SECONDS),
        },
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def traffic(prometheus: Prometheus) -> Iterator[SyntheticTraffic]:
    synthetic = SyntheticTraffic(prometheus, unique_name("synthetic")).start()
    yield synthetic
    synthetic.stop()


def readiness(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_rollouts_complete_through_injected_api_faults(  # noqa: PLR0917 (fixtures)
    kube_api_client: ApiClient,
    restricted_namespace: str,
    operator: OperatorProcess,
    fault_proxy: FaultProxy,
    traffic: SyntheticTraffic,
    readiness_url: str,
) -> None:
    rollouts = Rollouts(kube_api_client, restricted_namespace, traffic, spec)
    recorder = Recorder(kube_api_client, restricted_namespace).start()
    names = [f"md-{index}" for index in range(OBJECTS)]
    plans = {
        name: [f"{n + 2}.0.0{'-bad' if (index + n) % 2 else ''}" for n in range(ROLLOUTS_EACH)]
        for index, name in enumerate(names)
    }
    assert operator.record is not None
    before = fault_proxy.counts()
    fault_proxy.set_rate(FAULT_RATE)
    started = time.monotonic()
    try:
        for name in names:
            rollouts.create(name, upcoming=plans[name])

        def drive(name: str) -> None:
            rollouts.wait(lambda: rollouts.stable(name, "1.0.0"), f"{name} Stable", TIMEOUT, [operator.record])
            for version in plans[name]:
                rollouts.roll_out(name, version)
                rollouts.wait(
                    partial(rollouts.finished, name, version), f"{name} {version}", TIMEOUT, [operator.record]
                )

        with ThreadPoolExecutor(max_workers=OBJECTS) as pool:
            for future in [pool.submit(drive, name) for name in names]:
                future.result()
    finally:
        fault_proxy.set_rate(0.0)
        recorder.stop()
    elapsed = time.monotonic() - started
    after = fault_proxy.counts()
    injected = {fault: after[fault] - before[fault] for fault in after}
    problems: list[str] = []
    for name in names:
        problems += history_problems(rollouts.status(name), plans[name])
    problems += rollouts.duplicate_children()
    print(
        f"api faults: {OBJECTS * ROLLOUTS_EACH} rollouts in {elapsed:.0f} s at fault rate {FAULT_RATE}; "
        f"requests and faults: {injected}"
    )
    assert not problems, "\n".join(problems) + "\n" + operator.log_tail(60)
    assert operator.is_running()
    assert sum(v for k, v in injected.items() if k != "forwarded") >= 20, injected
    assert all(injected[fault] > 0 for fault in ("500", "429", "409", "drop")), injected


def test_readiness_reflects_a_stalled_watch_and_recovers(  # noqa: PLR0917 (fixtures)
    kube_api_client: ApiClient,
    restricted_namespace: str,
    operator: OperatorProcess,
    fault_proxy: FaultProxy,
    traffic: SyntheticTraffic,
    readiness_url: str,
) -> None:
    rollouts = Rollouts(kube_api_client, restricted_namespace, traffic, spec)
    assert operator.record is not None
    rollouts.create("watched", upcoming=["2.0.0"])
    rollouts.wait(lambda: rollouts.stable("watched", "1.0.0"), "Stable", TIMEOUT, [operator.record])
    wait_until(lambda: readiness(readiness_url)[0] == 200, timeout=30, what="ready", watched=[operator.record])

    fault_proxy.stall_watches("/modeldeployments")
    stalled_at = time.monotonic()
    try:
        rollouts.roll_out("watched", "2.0.0")  # a change the stalled watch cannot deliver
        wait_until(
            lambda: readiness(readiness_url)[0] == 503,
            timeout=STALL_SECONDS + 15,
            what="/readyz 503 while the watch is stalled",
            watched=[operator.record],
        )
        not_ready_after = time.monotonic() - stalled_at
        code, details = readiness(readiness_url)
        assert code == 503
        assert f"{restricted_namespace}/watched" in details["stalledWatch"], details
    finally:
        fault_proxy.resume_watches()
    resumed_at = time.monotonic()
    wait_until(
        lambda: readiness(readiness_url)[0] == 200,
        timeout=INACTIVITY_SECONDS + 15,
        what="/readyz 200 once the watch flows again",
        watched=[operator.record],
    )
    print(
        f"stalled watch: not ready {not_ready_after:.1f} s after the stall began (bound {STALL_SECONDS} s + a "
        f"resync), ready again {time.monotonic() - resumed_at:.1f} s after it ended"
    )
    rollouts.wait(lambda: rollouts.finished("watched", "2.0.0"), "the rollout finished", TIMEOUT, [operator.record])
    assert rollouts.status("watched")["history"][-1]["outcome"] == "Promoted"
