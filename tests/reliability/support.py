"""Shared pieces of the reliability tests (docs/reliability.md).

- `STRESS` / `size(short, full)`: the scale knob. `SLUICE_STRESS=1` (what `make stress` sets) runs the full sizes;
  otherwise `make test` runs the short variants.
- `SyntheticTraffic`: one loopback HTTP endpoint that Prometheus scrapes, exposing the serving image's request and
  latency series for canaries the test registers: a version whose name contains `bad` fails half its requests,
  any other version none. It stands in for the model servers (tests/harness/dataplane.py runs real ones for the
  e2e scenarios) because these tests are about the operator surviving faults, and many rollouts in parallel
  need no CPU for serving; the operator's PromQL runs unchanged against the real Prometheus.
- `Rollouts`: ModelDeployments in one namespace, a `Recorder` (a watch on them, every status kept in order), and
  the invariants every scenario checks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from kubernetes import client, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from harness import Prometheus, wait_until
from sluice import contract
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from sluice.core.children import ChildNames

STRESS = os.environ.get("SLUICE_STRESS", "") not in {"", "0"}


def size(short: int, full: int) -> int:
    """`full` under `make stress` (SLUICE_STRESS=1), else `short`."""
    return full if STRESS else short


REQUESTS_PER_SECOND = 20.0
_REQUESTS = f"{contract.REQUESTS}_total"
_DURATION = contract.REQUEST_DURATION_SECONDS
_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf")


class SyntheticTraffic:
    """Canary request counters and latency histograms (all requests under 5 ms) growing at 20 requests/s."""

    def __init__(self, prometheus: Prometheus, target: str) -> None:
        self._series: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        self._prometheus = prometheus
        self._target = target
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = outer.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="synthetic-traffic", daemon=True)

    def start(self) -> SyntheticTraffic:
        self._thread.start()
        port = self._server.server_address[1]
        self._prometheus.add_target(self._target, f"127.0.0.1:{port}", labels={"job": "synthetic-traffic"})
        return self

    def stop(self) -> None:
        self._prometheus.remove_target(self._target)
        self._server.shutdown()
        self._server.server_close()

    def serve(self, namespace: str, name: str, version: str) -> None:
        """From now on, `name`'s canary `version` receives requests (half of them failing if `bad` is in it)."""
        with self._lock:
            self._series.setdefault((namespace, name, version), time.monotonic())

    def exposition(self) -> str:
        now = time.monotonic()
        lines = [
            f"# TYPE {_REQUESTS} counter",
            f"# TYPE {_DURATION} histogram",
        ]
        with self._lock:
            series = dict(self._series)
        for (namespace, name, version), since in series.items():
            total = int((now - since) * REQUESTS_PER_SECOND)
            failed = total // 2 if "bad" in version else 0
            labels = (
                f'{contract.LABEL_NAMESPACE}="{namespace}",{contract.LABEL_MODEL}="{name}",'
                f'{contract.LABEL_VERSION}="{version}",{contract.LABEL_TRACK}="{contract.TRACK_CANARY}"'
            )
            lines.append(f'{_REQUESTS}{{{labels},{contract.LABEL_CODE}="200"}} {total - failed}')
            lines.append(f'{_REQUESTS}{{{labels},{contract.LABEL_CODE}="500"}} {failed}')
            lines.extend(f'{_DURATION}_bucket{{{labels},le="{le}"}} {total}' for le in _BUCKETS)
            lines.append(f"{_DURATION}_count{{{labels}}} {total}")
            lines.append(f"{_DURATION}_sum{{{labels}}} {total * 0.002}")
        return "\n".join(lines) + "\n"


def expected_outcome(version: str) -> str:
    return "RolledBack" if "bad" in version else "Promoted"


@dataclass
class Snapshot:
    """One ModelDeployment as the watch delivered it."""

    name: str
    weight: int
    phase: str
    canary_version: str | None
    verdict: str | None
    history: list[tuple[str, str]]
    status_managers: frozenset[str]


def snapshot(obj: dict[str, Any]) -> Snapshot:
    status = obj.get("status") or {}
    managers = frozenset(
        entry.get("manager", "")
        for entry in obj["metadata"].get("managedFields") or []
        if entry.get("subresource") == "status"
    )
    return Snapshot(
        name=obj["metadata"]["name"],
        weight=int(status.get("canaryWeight") or 0),
        phase=str(status.get("phase") or ""),
        canary_version=status.get("canaryVersion"),
        verdict=(status.get("lastCheck") or {}).get("verdict"),
        history=[(entry["version"], entry["outcome"]) for entry in status.get("history") or []],
        status_managers=managers,
    )


class Recorder:
    """A watch on the ModelDeployments of one namespace in a thread, keeping every delivered state in order."""

    def __init__(self, api_client: ApiClient, namespace: str) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._namespace = namespace
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.snapshots: list[Snapshot] = []
        self._thread = threading.Thread(target=self._run, name="md-recorder", daemon=True)

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def of(self, name: str) -> list[Snapshot]:
        with self._lock:
            return [s for s in self.snapshots if s.name == name]

    def _run(self) -> None:
        resource_version = ""
        while not self._stop.is_set():
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in stream.stream(  # type: ignore[no-untyped-call]
                    self._custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self._namespace,
                    PLURAL,
                    resource_version=resource_version or None,
                    timeout_seconds=2,
                ):
                    obj = cast(dict[str, Any], event["object"])
                    resource_version = obj["metadata"].get("resourceVersion", resource_version)
                    if event["type"] in {"ADDED", "MODIFIED"}:
                        with self._lock:
                            self.snapshots.append(snapshot(obj))
                    if self._stop.is_set():
                        break
            except ApiException as error:
                if error.status == 410:
                    resource_version = ""
                else:
                    time.sleep(0.5)
            except Exception:
                time.sleep(0.5)


def weights_never_rise_after_a_failed_check(snapshots: Iterable[Snapshot]) -> list[str]:
    """Violations: within one rollout (one canary version), a weight above one seen after a Failed check."""
    problems: list[str] = []
    failed_at: dict[str | None, int] = {}
    for shot in snapshots:
        key = shot.canary_version
        if key in failed_at and shot.canary_version is not None and shot.weight > failed_at[key]:
            problems.append(f"{shot.name} {key}: weight {shot.weight} after a failed check at {failed_at[key]}")
        if shot.verdict == "Failed" and key is not None:
            failed_at[key] = min(failed_at.get(key, shot.weight), shot.weight)
    return problems


@dataclass
class Rollouts:
    """ModelDeployments in one namespace, with helpers for starting rollouts and checking the invariants."""

    api_client: ApiClient
    namespace: str
    traffic: SyntheticTraffic
    spec: Callable[[str], dict[str, Any]]
    custom: client.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.custom = client.CustomObjectsApi(self.api_client)

    def create(self, name: str, version: str = "1.0.0", upcoming: Iterable[str] = ()) -> None:
        """Create `name` at `version`; the canaries of the `upcoming` versions get traffic from now on, so that
        Prometheus has a few samples of them before their first check."""
        for later in upcoming:
            self.traffic.serve(self.namespace, name, later)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": self.spec(version),
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any],
                self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def status(self, name: str) -> dict[str, Any]:
        obj = self.get(name)
        return dict((obj or {}).get("status") or {})

    def roll_out(self, name: str, version: str) -> None:
        self.traffic.serve(self.namespace, name, version)
        patch = {"spec": {"model": {"version": version}}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, patch)

    def finished(self, name: str, version: str) -> bool:
        return finished(self.status(name), version)

    def stable(self, name: str, version: str) -> bool:
        status = self.status(name)
        return status.get("phase") == "Stable" and status.get("stableVersion") == version

    def children(self) -> dict[str, list[tuple[str, str]]]:
        """(kind, name) of every Deployment, Service and HTTPRoute in the namespace, by owning ModelDeployment."""
        apps, core = client.AppsV1Api(self.api_client), client.CoreV1Api(self.api_client)

        def as_json(listing: object) -> dict[str, Any]:
            return cast(dict[str, Any], self.api_client.sanitize_for_serialization(listing))  # type: ignore[no-untyped-call]

        listed: list[tuple[str, dict[str, Any]]] = [
            *(("Deployment", d) for d in as_json(apps.list_namespaced_deployment(self.namespace))["items"]),
            *(("Service", s) for s in as_json(core.list_namespaced_service(self.namespace))["items"]),
            *(
                ("HTTPRoute", r)
                for r in cast(
                    dict[str, Any],
                    self.custom.list_namespaced_custom_object(
                        "gateway.networking.k8s.io", "v1", self.namespace, "httproutes"
                    ),
                )["items"]
            ),
        ]
        owned: dict[str, list[tuple[str, str]]] = {}
        for kind, obj in listed:
            for owner in obj["metadata"].get("ownerReferences") or []:
                if owner.get("kind") == "ModelDeployment":
                    owned.setdefault(owner["name"], []).append((kind, obj["metadata"]["name"]))
        return owned

    def duplicate_children(self) -> list[str]:
        """Children whose name is not one of their owner's fixed child names (a duplicate would need another)."""
        problems = []
        for owner, kids in self.children().items():
            names = ChildNames.of(owner)
            allowed = {
                ("Deployment", names.stable_deployment),
                ("Deployment", names.canary_deployment),
                ("Service", names.service),
                ("Service", names.canary_service),
                ("HTTPRoute", names.route),
            }
            problems += [f"{owner}: unexpected child {kid}" for kid in kids if kid not in allowed]
            problems += [f"{owner}: {kid} twice" for kid in set(kids) if kids.count(kid) > 1]
        return problems

    def wait(self, check: Callable[[], bool], what: str, timeout: float, watched: Iterable[Any] = ()) -> None:
        wait_until(check, timeout=timeout, what=what, interval=0.3, watched=list(watched))


def finished(status: dict[str, Any], version: str) -> bool:
    """The rollout of `version` has ended (its history entry written, no canary weight left)."""
    history = status.get("history") or []
    return (
        bool(history)
        and history[-1]["version"] == version
        and status.get("phase") in {"Stable", "RolledBack"}
        and int(status.get("canaryWeight") or 0) == 0
    )


def history_problems(status: dict[str, Any], rollouts: list[str]) -> list[str]:
    """The history must hold exactly one entry per rollout started, in order, each with its expected outcome."""
    history = [(entry["version"], entry["outcome"]) for entry in status.get("history") or []]
    expected = [(version, expected_outcome(version)) for version in rollouts]
    return [] if history == expected else [f"history {history} != expected {expected}"]
