"""One ModelDeployment on the real cluster as the scenarios drive it: its manifest, its status and route, and a
client that sends predictions through the Gateway (or to the entry Service's ClusterIP) and names the version that
answered each one."""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from harness import wait_until
from real.support import RealCluster
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from unit.serving.support import ModelFiles, rows_body

STEPS = [20, 50]
SETTLE_SECONDS = 2.0  # after the route's weights change: Traefik applies the new route, canary pods join


class ServedModel:
    """A ModelDeployment `name` serving `model` (fetched from `model_url`), routed by the Gateway (default) or by
    replica ratio behind its entry Service (`gateway=False`)."""

    def __init__(
        self,
        cluster: RealCluster,
        namespace: str,
        name: str,
        model: ModelFiles,
        model_url: str,
        *,
        gateway: bool = True,
        hostname: str | None = None,
        steps: list[int] | None = None,
        interval: str = "20s",
        extra_spec: dict[str, Any] | None = None,
    ) -> None:
        self.cluster, self.namespace, self.name, self.model, self.model_url = cluster, namespace, name, model, model_url
        self.gateway, self.hostname, self.steps = gateway, hostname, steps or STEPS
        self.interval, self.extra_spec = interval, extra_spec or {}
        self.headers = {"Content-Type": "application/json", **({"Host": hostname} if hostname else {})}
        self._entry_url: str | None = None

    def apply(
        self,
        version: str,
        *,
        uri: str | None = None,
        artifact: tuple[str, str] | None = None,
        progress_deadline: str = "4m",
    ) -> None:
        """Deploy `version` of the model: served from `uri` (default the model's own file) with the model's digest,
        or an `artifact` (format, digest) of the user's."""
        model_format, digest = artifact or ("sklearn", self.model.digest)
        spec: dict[str, Any] = {
            "model": {"version": version, "uri": uri or self.model_url, "format": model_format, "digest": digest},
            "replicas": 1,
            "rollout": {"steps": self.steps, "interval": self.interval, "progressDeadline": progress_deadline},
            "analysis": {"minRequests": 10, "maxErrorRate": 0.05, "onInconclusive": "Hold"},
            **self.extra_spec,
        }
        if self.gateway:
            name, namespace = self.cluster.gateway
            gateway: dict[str, Any] = {"parentRefs": [{"name": name, "namespace": namespace}]}
            if self.hostname:
                gateway["hostnames"] = [self.hostname]
            spec["traffic"] = {"gateway": gateway}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        manifest = self.cluster.workdir / f"{self.namespace}-{self.name}-{version}.yaml"
        manifest.write_text(yaml.safe_dump(body))
        self.cluster.kubectl("apply", "-f", str(manifest))

    def status(self) -> dict[str, Any]:
        got = self.cluster.kubectl("get", f"{PLURAL}.{GROUP}", self.name, "-n", self.namespace, "-o", "json")
        status: dict[str, Any] = json.loads(got).get("status", {})
        return status

    def canary_weight(self) -> int | None:
        """The canary's weight in the HTTPRoute sluice owns (None before the route exists)."""
        got = self.cluster.kubectl(
            "get", "httproutes.gateway.networking.k8s.io", self.name, "-n", self.namespace, "-o", "json"
        )
        rules = json.loads(got)["spec"]["rules"]
        weights = {ref["name"]: int(ref.get("weight", 1)) for rule in rules for ref in rule["backendRefs"]}
        return weights.get(f"{self.name}-canary", 0)

    @property
    def entry_url(self) -> str:
        """Where requests go: the Gateway's listener, or the entry Service's ClusterIP (through kube-proxy)."""
        if self._entry_url is None:
            if self.gateway:
                self._entry_url = self.cluster.gateway_url
            else:
                service = ["get", "service", self.name, "-n", self.namespace, "-o", "jsonpath={.spec.clusterIP}"]
                self._entry_url = f"http://{self.cluster.kubectl(*service)}"
        return self._entry_url

    def answer(self, name: str | None = None, headers: Mapping[str, str] | None = None) -> dict[str, Any] | str:
        """One prediction for model `name` (default this one), with extra `headers`: the answer, or
        `failed:<code or error>`."""
        url = f"{self.entry_url}/v2/models/{name or self.name}/infer"
        request = urllib.request.Request(
            url, data=rows_body(self.model.rows), headers={**self.headers, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:
            return f"failed:{error.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            return f"failed:{type(error).__name__}"
        return answer

    def ask(self, headers: Mapping[str, str] | None = None) -> str:
        """One prediction (with extra `headers`); the version that answered, or `failed:<code or error>`."""
        answer = self.answer(headers=headers)
        return answer if isinstance(answer, str) else str(answer["model_version"])

    def history_entry(self, version: str) -> dict[str, Any] | None:
        """The history entry of `version`'s rollout once it has ended."""
        return next((e for e in self.status().get("history", []) if e["version"] == version), None)

    def ask_until_ended(
        self, version: str, timeout: float, *, batch: int = 20, between: Callable[[], object] = lambda: None
    ) -> tuple[collections.Counter[str], dict[str, Any]]:
        """Send predictions, `batch` at a time (calling `between` before each batch), until `version`'s rollout has
        ended; returns the answers counted and its history entry."""
        answers: collections.Counter[str] = collections.Counter()
        deadline = time.monotonic() + timeout
        while (entry := self.history_entry(version)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the rollout of {version} did not end in {timeout:.0f} s: {self.status()}")
            between()
            for _ in range(batch):
                answers[self.ask()] += 1
        return answers, entry

    def ask_through_promotion(self, version: str, timeout: float = 360.0) -> dict[int, collections.Counter[str]]:
        """Roll `version` out and send predictions until it is the Stable version; the answers by the canary weight
        the route had, each counted once the route has had SETTLE_SECONDS at that weight."""
        self.apply(version)
        served: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        weight, changed_at, deadline = 0, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status.get("phase") == "Stable" and status.get("stableVersion") == version:
                return dict(served)
            current = self.canary_weight() or 0
            if current != weight:
                weight, changed_at = current, time.monotonic()
            for _ in range(20):
                answer = self.ask()
                if time.monotonic() - changed_at >= SETTLE_SECONDS:
                    served[weight][answer] += 1
        raise TimeoutError(f"{version} was not promoted in {timeout:.0f} s: {self.status()}")

    def become_stable(self, version: str = "1.0.0") -> None:
        """Deploy `version` and wait until it is Stable and answers."""
        self.apply(version)
        wait_until(lambda: self.status().get("phase") == "Stable", timeout=240, what=f"{version} Stable", interval=1)
        wait_until(lambda: self.ask() == version, timeout=60, what=f"{version} answering")


class Traffic:
    """Predictions for `deployed` from a thread, one after another, until the block ends (at most `seconds`);
    `answers` counts them by the version that answered or `failed:<code or error>`."""

    def __init__(self, deployed: ServedModel, seconds: float) -> None:
        self.deployed, self.seconds = deployed, seconds
        self.answers: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.answers[self.deployed.ask()] += 1
