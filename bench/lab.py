"""The benchmark's laboratory: the local control plane (kwok nodes sized for the run), an optional Prometheus, the
request-counting proxy, the operator's least-privilege identity, the `sluice-operator` subprocess, and
/proc-based CPU and memory sampling of a process.

Built from the test harness (`tests/harness`, `tests/integration/operator_support.py`), so the benchmark runs
exactly what the integration and end-to-end tests run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from kubernetes import client
from kubernetes.client import ApiClient

from harness import ControlPlane, Prometheus, create_namespace, delete_namespace, unique_name, wait_until
from harness.gateway_standin import create_gateway
from integration.operator_support import (
    CountingProxy,
    OperatorProcess,
    Request,
    create_operator_identity,
    write_token_kubeconfig,
)
from integration.sluice_crd import install_crd
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOGS = Path(__file__).resolve().parents[1] / ".local" / "bench" / "logs"
"""Where the operator logs of the last run are kept (the lab's work directory is temporary)."""
PODS_PER_NODE = 100
"""kwok's fake nodes take 110 pods each; the lab keeps a margin."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


@dataclass
class Sampler:
    """Samples a process's CPU time and RSS every `period` seconds in a thread: (monotonic, cpu s, RSS MiB)."""

    pid: int
    period: float = 0.5
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic(), cpu_seconds(self.pid), rss_mib(self.pid)))
            self._stop.wait(self.period)

    def between(self, start: float, end: float) -> list[tuple[float, float, float]]:
        return [s for s in self.samples if start <= s[0] <= end]

    def cpu_percent(self, start: float, end: float) -> float:
        window = self.between(start, end)
        if len(window) < 2:
            return 0.0
        return 100 * (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])

    def peak_cpu_percent(self, start: float, end: float, span: float = 2.0) -> float:
        """The highest CPU use over any `span` seconds of the window."""
        window, best = self.between(start, end), 0.0
        for i, (t0, c0, _) in enumerate(window):
            for t1, c1, _ in window[i + 1 :]:
                if t1 - t0 >= span:
                    best = max(best, 100 * (c1 - c0) / (t1 - t0))
                    break
        return best

    def max_rss(self, start: float, end: float) -> float:
        return max((s[2] for s in self.between(start, end)), default=0.0)


def requests_by_verb(requests: list[Request]) -> Counter[str]:
    """GET of one object, LIST/WATCH (a GET of a collection: the proxy does not see the query), and each write verb."""
    verbs: Counter[str] = Counter()
    for request in requests:
        if request.method == "GET":
            parts = request.path.strip("/").split("/")
            # /api/v1/namespaces/NS/PLURAL[/NAME] or /apis/G/V/namespaces/NS/PLURAL[/NAME] or cluster-wide lists
            core = parts[2:] if parts[0] == "api" else parts[3:]
            is_object = len(core) >= 4 and core[0] == "namespaces"
            verbs["GET" if is_object else "LIST/WATCH"] += 1
        else:
            verbs[request.method] += 1
    return verbs


class Lab:
    """Control plane + proxy + operator identity (+ Prometheus); `with Lab(...) as lab:` stops everything by PID."""

    def __init__(self, workdir: Path, *, pods: int, prometheus: bool) -> None:
        self.workdir = workdir
        self._pods = pods
        self._with_prometheus = prometheus
        self.control_plane: ControlPlane | None = None
        self.prometheus: Prometheus | None = None
        self.proxy: CountingProxy | None = None
        self.api_client: ApiClient | None = None
        self.operator_kubeconfig = workdir / "operator.kubeconfig"
        self._operators: list[OperatorProcess] = []

    def __enter__(self) -> Lab:
        try:
            nodes = max(2, -(-self._pods // PODS_PER_NODE) + 1)
            self.control_plane = ControlPlane.start(self.workdir / "control-plane", fake_node_count=nodes)
            install_crd(self.control_plane)
            if self._with_prometheus:
                self.prometheus = Prometheus.start(self.workdir / "prometheus")
            self.proxy = CountingProxy(self.control_plane.server_url, self.control_plane.certificates.ca_cert).start()
            self.api_client = self.control_plane.api_client()
            token = create_operator_identity(self.api_client, unique_name("sluice-system"))
            write_token_kubeconfig(self.operator_kubeconfig, self.proxy.url, token)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        logs = LOGS / self.workdir.name
        logs.mkdir(parents=True, exist_ok=True)
        for operator in self._operators:
            operator.stop()
            with contextlib.suppress(OSError):
                shutil.copy(operator.log_path, logs / operator.log_path.name)
        if self.api_client is not None:
            self.api_client.close()  # type: ignore[no-untyped-call]
        if self.proxy is not None:
            self.proxy.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.control_plane is not None:
            self.control_plane.stop()

    @property
    def api(self) -> ApiClient:
        assert self.api_client is not None
        return self.api_client

    @property
    def counting(self) -> CountingProxy:
        assert self.proxy is not None
        return self.proxy

    def namespace(self, prefix: str) -> str:
        """A fresh namespace with a Gateway `public`, which the harness's Gateway stand-in accepts routes of."""
        name = create_namespace(self.api, prefix=prefix)
        create_gateway(self.api, name)
        return name

    def drop_namespace(self, name: str, *, wait: bool, timeout: float = 300.0) -> None:
        """Delete a namespace; with `wait`, until it is gone or `timeout` passed (then carry on regardless)."""
        try:
            delete_namespace(self.api, name, wait=wait, timeout=timeout)
        except TimeoutError:
            print(f"namespace {name} still terminating after {timeout:.0f} s; carrying on", flush=True)

    def start_operator(self, namespaces: list[str], env: Mapping[str, str] | None = None) -> OperatorProcess:
        """The operator watching `namespaces`, through the proxy, as the documented least-privilege identity; returns
        once it has started its ModelDeployment watch."""
        settings = {"SLUICE_NAMESPACES": ",".join(namespaces), "SLUICE_LOG_LEVEL": "WARNING", **(env or {})}
        log = self.workdir / f"operator-{len(self._operators)}.log"
        self.counting.reset()
        operator = OperatorProcess(self.operator_kubeconfig, log, settings).start()
        self._operators.append(operator)
        wait_until(
            lambda: any(r.method == "GET" and r.path.endswith(f"/{PLURAL}") for r in self.counting.requests()),
            timeout=60,
            what="the operator's ModelDeployment watch",
            watched=[operator.record] if operator.record else [],
        )
        time.sleep(1.0)
        return operator

    # -- ModelDeployments ----------------------------------------------------------------------------------------

    def create_model_deployments(self, namespace: str, specs: Mapping[str, dict[str, Any]], workers: int = 16) -> None:
        """Create them all at once (`workers` client threads, admin credentials, not through the proxy)."""
        custom = client.CustomObjectsApi(self.api)

        def create(item: tuple[str, dict[str, Any]]) -> None:
            name, spec = item
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name},
                    "spec": spec}  # fmt: skip
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(create, specs.items()))

    def patch_model_deployments(
        self, namespace: str, names: list[str], patch: dict[str, Any], workers: int = 16
    ) -> None:
        custom = client.CustomObjectsApi(self.api)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda n: custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, n, patch),
                          names))  # fmt: skip

    def list_model_deployments(self, namespace: str) -> list[dict[str, Any]]:
        listed = client.CustomObjectsApi(self.api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])


def ready(obj: Mapping[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@contextlib.contextmanager
def sampled(pid: int) -> Iterator[Sampler]:
    sampler = Sampler(pid).start()
    try:
        yield sampler
    finally:
        sampler.stop()
