"""Debian's Prometheus on a free loopback port, scraping targets that tests add and remove at run time.

Targets are found through file-based service discovery: each target group is one JSON file in `<workdir>/targets/`,
written atomically, so `add_target`/`remove_target` take effect within about a second (scrape and evaluation
interval 1 s). Storage lives in the work directory.

On a real node (`harness.realnode`) Prometheus also scrapes the cluster's pods with exactly the relabelling a
Prometheus Operator PodMonitor produces (`pod_monitor_job`), so the operator's PromQL is checked against the labels
users' Prometheus attaches (`namespace`, `pod`, `container`, `job`, `endpoint`). Debian's Prometheus is built without
`kubernetes_sd_configs`: `harness.pod_discovery` (a process beside it) lists the pods and writes them as file_sd
targets carrying the same `__meta_kubernetes_*` labels role pod gives, and the relabelling runs on those.

    prometheus = Prometheus.start(Path("/tmp/prom"))
    prometheus.add_target("model-a", "127.0.0.1:8000", labels={"job": "sluice-serving", "model": "a"})
    prometheus.wait_for_query('up{model="a"} == 1')
    prometheus.stop()
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.processes import LOOPBACK, ProcessRecord, free_ports, http_ok, launch, stop_processes, tail, wait_until
from harness.tools import prometheus_binary

DEFAULT_JOB = "sluice-test"
_TARGET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class PodMonitor:
    """What a Prometheus Operator PodMonitor says: its own name and namespace, the pod label it selects on, and
    the name of the container port it scrapes; `kubeconfig` lets the discovery list the cluster's pods."""

    namespace: str
    name: str
    selector_label: str
    selector_value: str
    port: str
    kubeconfig: Path


def _meta_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", label)


def pod_monitor_job(monitor: PodMonitor, pods_file: Path, scrape_interval: str) -> dict[str, Any]:
    """The scrape job the Prometheus Operator generates for `monitor` (endpoint 0, no namespace selector), its
    role-pod targets read from `pods_file` (`harness.pod_discovery`)."""
    label = _meta_label(monitor.selector_label)
    selected = [f"__meta_kubernetes_pod_label_{label}", f"__meta_kubernetes_pod_labelpresent_{label}"]
    return {
        "job_name": f"podMonitor/{monitor.namespace}/{monitor.name}/0",
        "scrape_interval": scrape_interval,
        "honor_labels": False,
        "file_sd_configs": [{"files": [str(pods_file)], "refresh_interval": "1s"}],
        "relabel_configs": [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
            {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
            {
                "action": "keep",
                "source_labels": selected,
                "regex": f"({monitor.selector_value});true",
            },
            {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": monitor.port},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"target_label": "job", "replacement": f"{monitor.namespace}/{monitor.name}"},
            {"target_label": "endpoint", "replacement": monitor.port},
        ],
    }


def render_config(
    targets_dir: Path, scrape_interval: str = "1s", pod_monitor: PodMonitor | None = None, pods_file: Path | None = None
) -> str:
    """The Prometheus configuration: one job whose targets come from `targets_dir/*.json`, and with `pod_monitor`
    the job a PodMonitor would generate."""
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [
            {
                "job_name": DEFAULT_JOB,
                "file_sd_configs": [{"files": [str(targets_dir / "*.json")], "refresh_interval": "1s"}],
            },
            *([pod_monitor_job(pod_monitor, pods_file, scrape_interval)] if pod_monitor and pods_file else []),
        ],
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@dataclass
class PrometheusApi:
    """The HTTP API of a Prometheus at `url`: queries and targets. `Prometheus` is one the harness runs; a
    cluster's own (`make e2e-kind`) is used through this class alone."""

    url: str

    def watched(self) -> list[ProcessRecord]:
        """Processes whose exit ends a wait on this Prometheus (none for one the harness does not run)."""
        return []

    def active_targets(self) -> list[dict[str, Any]]:
        """The scrape targets Prometheus currently has (from /api/v1/targets)."""
        data = self._get("/api/v1/targets", {"state": "active"})
        targets: list[dict[str, Any]] = data["activeTargets"]
        return targets

    # -- queries ------------------------------------------------------------------------------------------------

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate an instant PromQL query; returns the result vector (`metric` labels and `value` pairs)."""
        data = self._get("/api/v1/query", {"query": promql})
        if data["resultType"] != "vector":
            raise ValueError(f"expected a vector for {promql!r}, got {data['resultType']}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_values(self, promql: str) -> list[float]:
        """The sample values of an instant query."""
        return [float(sample["value"][1]) for sample in self.query(promql)]

    def wait_for_query(self, promql: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll an instant query until its result is non-empty; returns that result."""
        result: list[dict[str, Any]] = []

        def has_result() -> bool:
            nonlocal result
            result = self.query(promql)
            return bool(result)

        wait_until(has_result, timeout=timeout, what=f"PromQL {promql!r} to return data", watched=self.watched())
        return result

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} failed: {body}")
        return body["data"]


@dataclass
class Prometheus(PrometheusApi):
    """A running Prometheus. Build one with `Prometheus.start(workdir)`; stop it with `.stop()`."""

    workdir: Path
    process: ProcessRecord
    startup_seconds: float = 0.0
    discovery: ProcessRecord | None = None

    @property
    def targets_dir(self) -> Path:
        return self.workdir / "targets"

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        detached: bool = False,
        timeout: float = 60.0,
        pod_monitor: PodMonitor | None = None,
        address: str = LOOPBACK,
    ) -> Prometheus:
        """Start Prometheus under `workdir` and return once /-/ready answers; with `pod_monitor`, it also scrapes
        the pods that PodMonitor selects. It listens on `address` (a real node's host address for an operator pod
        to reach it)."""
        began = time.monotonic()
        workdir.mkdir(parents=True, exist_ok=True)
        targets_dir = workdir / "targets"
        targets_dir.mkdir(exist_ok=True)
        config_path = workdir / "prometheus.yml"
        pods_file = workdir / "pods.json"
        config_path.write_text(render_config(targets_dir, pod_monitor=pod_monitor, pods_file=pods_file))
        discovery = None
        if pod_monitor:
            discovery = launch(
                "pod-discovery",
                [
                    sys.executable,
                    "-m",
                    "harness.pod_discovery",
                    f"--kubeconfig={pod_monitor.kubeconfig}",
                    f"--output={pods_file}",
                ],
                workdir / "logs" / "pod-discovery.log",
                die_with_parent=not detached,
                cwd=Path(__file__).resolve().parents[1],
            )
        (port,) = free_ports(1)
        process = launch(
            "prometheus",
            [
                prometheus_binary(),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={address}:{port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=2h",
                "--log.level=warn",
            ],
            workdir / "logs" / "prometheus.log",
            die_with_parent=not detached,
        )
        prometheus = cls(workdir=workdir, url=f"http://{address}:{port}", process=process, discovery=discovery)
        try:
            wait_until(
                lambda: http_ok(f"{prometheus.url}/-/ready"),
                timeout=timeout,
                what="prometheus /-/ready",
                watched=[process],
            )
        except BaseException:
            prometheus.stop()
            raise
        prometheus.startup_seconds = time.monotonic() - began
        return prometheus

    # -- targets ------------------------------------------------------------------------------------------------

    def add_target(
        self,
        name: str,
        address: str,
        *,
        labels: Mapping[str, str] | None = None,
        metrics_path: str = "/metrics",
    ) -> None:
        """Scrape `address` (host:port) from now on, with `labels` on its series (`job` defaults to `sluice-test`).

        Adding a target under an existing name replaces it.
        """
        if not _TARGET_NAME.match(name):
            raise ValueError(f"target name {name!r} must match {_TARGET_NAME.pattern}")
        group_labels = {**dict(labels or {}), "__metrics_path__": metrics_path}
        path = self.targets_dir / f"{name}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps([{"targets": [address], "labels": group_labels}]))
        os.replace(temporary, path)

    def remove_target(self, name: str) -> None:
        """Stop scraping the target added under `name` (no error when there is none)."""
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def watched(self) -> list[ProcessRecord]:
        return [self.process]

    def logs(self) -> dict[str, Path]:
        return {self.process.name: self.process.log_path}

    def log_tails(self, lines: int = 30) -> str:
        return f"----- prometheus ({self.process.log_path}) -----\n{tail(self.process.log_path, lines)}"

    def is_running(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        """Stop Prometheus by PID (SIGTERM, then SIGKILL)."""
        stop_processes([self.process, *([self.discovery] if self.discovery else [])])

    def to_json(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "url": self.url,
            "process": self.process.to_json(),
            "discovery": self.discovery.to_json() if self.discovery else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prometheus:
        discovery = data.get("discovery")
        return cls(
            workdir=Path(data["workdir"]),
            url=str(data["url"]),
            process=ProcessRecord.from_json(data["process"]),
            discovery=ProcessRecord.from_json(discovery) if discovery else None,
        )
