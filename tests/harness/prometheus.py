"""Debian's Prometheus on a free loopback port, scraping targets that tests add and remove at run time.

Targets are found through file-based service discovery: each target group is one JSON file in `<workdir>/targets/`,
written atomically, so `add_target`/`remove_target` take effect within about a second (scrape and evaluation
interval 1 s). Storage lives in the work directory.

    prometheus = Prometheus.start(Path("/tmp/prom"))
    prometheus.add_target("model-a", "127.0.0.1:8000", labels={"job": "sluice-serving", "model": "a"})
    prometheus.wait_for_query('up{model="a"} == 1')
    prometheus.stop()
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.processes import LOOPBACK, ProcessRecord, free_port, http_ok, launch, stop_processes, tail, wait_until
from harness.tools import prometheus_binary

DEFAULT_JOB = "sluice-test"
_TARGET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def render_config(targets_dir: Path, scrape_interval: str = "1s") -> str:
    """The Prometheus configuration: one job whose targets come from `targets_dir/*.json`."""
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
            }
        ],
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@dataclass
class Prometheus:
    """A running Prometheus. Build one with `Prometheus.start(workdir)`; stop it with `.stop()`."""

    workdir: Path
    url: str
    process: ProcessRecord
    startup_seconds: float = 0.0

    @property
    def targets_dir(self) -> Path:
        return self.workdir / "targets"

    @classmethod
    def start(cls, workdir: Path, *, detached: bool = False, timeout: float = 60.0) -> Prometheus:
        """Start Prometheus under `workdir` and return once /-/ready answers."""
        began = time.monotonic()
        workdir.mkdir(parents=True, exist_ok=True)
        targets_dir = workdir / "targets"
        targets_dir.mkdir(exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(render_config(targets_dir))
        port = free_port()
        process = launch(
            "prometheus",
            [
                prometheus_binary(),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=2h",
                "--log.level=warn",
            ],
            workdir / "logs" / "prometheus.log",
            die_with_parent=not detached,
        )
        prometheus = cls(workdir=workdir, url=f"http://{LOOPBACK}:{port}", process=process)
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

        wait_until(has_result, timeout=timeout, what=f"PromQL {promql!r} to return data", watched=[self.process])
        return result

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} failed: {body}")
        return body["data"]

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def logs(self) -> dict[str, Path]:
        return {self.process.name: self.process.log_path}

    def log_tails(self, lines: int = 30) -> str:
        return f"----- prometheus ({self.process.log_path}) -----\n{tail(self.process.log_path, lines)}"

    def is_running(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        """Stop Prometheus by PID (SIGTERM, then SIGKILL)."""
        stop_processes([self.process])

    def to_json(self) -> dict[str, Any]:
        return {"workdir": str(self.workdir), "url": self.url, "process": self.process.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prometheus:
        return cls(
            workdir=Path(data["workdir"]), url=str(data["url"]), process=ProcessRecord.from_json(data["process"])
        )
