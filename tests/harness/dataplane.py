"""A local data plane for the kwok control plane: real `sluice-serving` processes standing in for serving pods,
scraped by the harness Prometheus, and a load generator that splits requests the way the cluster would.

Serving pods on kwok nodes are Running and Ready but run nothing. `DataPlane` polls the API (every `poll_seconds`)
for Ready pods labelled `app.kubernetes.io/managed-by=sluice` in one namespace and, for each, runs
`python -m sluice_serving` on 127.0.0.1 with a free port and the pod's container env (literal `value`s; MODEL_URI
etc.), plus the extra env the test gives for that pod's `MODEL_VERSION` (how a test makes a version misbehave,
e.g. `{"2.0.0-bad": {"SLUICE_FAULT_ERROR_RATE": "0.5"}}`). Each process is a Prometheus target labelled
`namespace` and `pod` (the labels a Kubernetes scrape attaches); its own series carry `model`, `version` and
`track`. When the pod goes away (or stops being Ready) the target is removed and the process stopped by PID.

`LoadGenerator` sends V2 infer requests over loopback at a bounded rate for a bounded time: through the HTTPRoute
`<name>` when it exists (the rule its path, headers and query parameters select by Gateway API's precedence,
`harness.routing`; a backend Service of that rule chosen by the backendRefs' weights, then a ready process of a pod
matching that Service's selector), otherwise to a ready process of a pod matching the entry Service `<name>`'s
selector (the replica ratio decides the split). A `RequestMirror` filter on the route's rule is honoured as a
gateway does: that percentage of requests is also sent, as a copy, to a ready process behind the mirror's
backend Service, and its answer is discarded (counted in `LoadStats.mirrored`).

`ServiceFront` is a loopback front for in-cluster Service URLs (what the operator's `canary_url_template`
setting points at in tests): `http://127.0.0.1:<port>/{namespace}/{service}/<path>` is forwarded to a ready
process of a pod matching that Service's selector.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from harness.processes import ProcessRecord, free_port, launch, stop_processes, tail
from harness.prometheus import Prometheus
from harness.routing import Request, select_rule

MANAGED_SELECTOR = "app.kubernetes.io/managed-by=sluice"
_OVERRIDDEN = frozenset({"PORT", "SLUICE_HOST", "MODEL_CACHE_DIR"})
MAX_RATE = 200.0
"""Requests per second the load generator never exceeds, whatever it is asked."""
DRAIN_SECONDS = 2.0
"""How long a gone pod's process keeps running after it left the routing (a load generator refreshes its split
every 0.5 s), as a real pod outlives its endpoint."""


@dataclass
class ServingInstance:
    """One `sluice-serving` process standing in for one pod."""

    pod: str
    uid: str
    labels: dict[str, str]
    env: dict[str, str]
    port: int
    record: ProcessRecord
    target: str
    ready: bool = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def model_name(self) -> str:
        return self.env.get("MODEL_NAME", "model")

    @property
    def version(self) -> str:
        return self.env.get("MODEL_VERSION", "")

    @property
    def track(self) -> str:
        return self.env.get("SLUICE_TRACK", "stable")


def _pod_ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status is None or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _container_env(pod: Any) -> dict[str, str]:
    containers = pod.spec.containers or []
    if not containers:
        return {}
    return {e.name: e.value for e in containers[0].env or [] if e.value is not None and e.name not in _OVERRIDDEN}


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


class DataPlane:
    """Serving processes for the Ready sluice pods of one namespace; use as a context manager or start()/stop()."""

    def __init__(
        self,
        api_client: ApiClient,
        prometheus: Prometheus,
        namespace: str,
        workdir: Path,
        *,
        extra_env: Mapping[str, Mapping[str, str]] | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.namespace = namespace
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._prometheus = prometheus
        self._workdir = workdir
        self._extra_env = {version: dict(env) for version, env in (extra_env or {}).items()}
        self._poll = poll_seconds
        self._instances: dict[str, ServingInstance] = {}
        self._retiring: list[tuple[float, ServingInstance]] = []
        """Processes of pods gone: out of routing at once, stopped `DRAIN_SECONDS` later (as endpoints go first)."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"dataplane-{namespace}", daemon=True)
        self._http = httpx.Client(timeout=2.0)
        self.errors: list[str] = []
        """Failures of the poll loop (kept for the test's diagnostics; the loop carries on)."""

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> DataPlane:
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling, then every process by PID, and remove every target."""
        self._stopping.set()
        self._thread.join(timeout=30)
        with self._lock:
            instances = [*self._instances.values(), *(instance for _, instance in self._retiring)]
            self._instances.clear()
            self._retiring.clear()
        for instance in instances:
            self._prometheus.remove_target(instance.target)
        stop_processes([instance.record for instance in instances], grace_seconds=10)
        self._http.close()

    def __enter__(self) -> DataPlane:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def set_extra_env(self, version: str, env: Mapping[str, str]) -> None:
        """Extra env for processes of pods serving `version` started from now on."""
        with self._lock:
            self._extra_env[version] = dict(env)

    # -- views -----------------------------------------------------------------------------------------------

    def instances(self, *, ready_only: bool = True) -> list[ServingInstance]:
        with self._lock:
            return [i for i in self._instances.values() if i.ready or not ready_only]

    def ready_versions(self) -> Counter[tuple[str, str]]:
        """(version, track) -> ready processes."""
        return Counter((i.version, i.track) for i in self.instances())

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- serving {i.pod} ({i.version}/{i.track}, :{i.port}) ---\n{tail(i.record.log_path, lines)}"
            for i in self.instances(ready_only=False)
        )

    # -- the poll loop ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._sync()
            except Exception as error:  # the API or a process hiccup: try again next round
                self.errors.append(f"{type(error).__name__}: {error}")
                del self.errors[:-20]
            self._stopping.wait(self._poll)

    def _sync(self) -> None:
        pods = self._core.list_namespaced_pod(self.namespace, label_selector=MANAGED_SELECTOR).items
        wanted: dict[str, Any] = {str(pod.metadata.uid): pod for pod in pods if pod.metadata and _pod_ready(pod)}
        with self._lock:
            gone = [i for uid, i in self._instances.items() if uid not in wanted]
            for instance in gone:
                del self._instances[instance.uid]
            now = time.monotonic()
            self._retiring += [(now + DRAIN_SECONDS, instance) for instance in gone]
            due = [instance for deadline, instance in self._retiring if deadline <= now]
            self._retiring = [(deadline, instance) for deadline, instance in self._retiring if deadline > now]
        for instance in due:
            self._prometheus.remove_target(instance.target)
            stop_processes([instance.record], grace_seconds=5)
        for uid, pod in wanted.items():
            if uid not in self._instances and not self._stopping.is_set():
                self._launch(pod)
        for instance in self.instances(ready_only=False):
            if not instance.ready:
                self._probe(instance)

    def _launch(self, pod: Any) -> None:
        env = _container_env(pod)
        with self._lock:
            env.update(self._extra_env.get(env.get("MODEL_VERSION", ""), {}))
        port = free_port()
        name = pod.metadata.name
        log_path = self._workdir / f"{name}.log"
        env.update(
            {"PORT": str(port), "SLUICE_HOST": "127.0.0.1", "MODEL_CACHE_DIR": str(self._workdir / "model-cache")}
        )
        command: list[str | Path] = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m"]
        record = launch(f"serving-{name}", [*command, "sluice_serving"], log_path, die_with_parent=True)
        target = f"{self.namespace}-{name}"
        instance = ServingInstance(name, pod.metadata.uid, dict(pod.metadata.labels or {}), env, port, record, target)
        with self._lock:
            self._instances[instance.uid] = instance
        self._prometheus.add_target(
            target, f"127.0.0.1:{port}", labels={"namespace": self.namespace, "pod": name, "job": "sluice-serving"}
        )

    def _probe(self, instance: ServingInstance) -> None:
        with contextlib.suppress(httpx.HTTPError):
            if self._http.get(instance.base_url + "/v2/health/ready").status_code == 200:
                instance.ready = True

    # -- routing ---------------------------------------------------------------------------------------------

    def _service_selector(self, name: str) -> dict[str, str] | None:
        try:
            service = self._core.read_namespaced_service(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict((service.spec.selector if service.spec else None) or {})

    def _selected(self, service: str, instances: list[ServingInstance]) -> list[ServingInstance]:
        """The instances Service `service` selects (all of them when it does not exist: an empty selector)."""
        selector = self._service_selector(service) or {}
        return [i for i in instances if _matches(selector, i.labels)]

    def _route(self, name: str) -> dict[str, Any] | None:
        """HTTPRoute `name`; None when it does not exist."""
        try:
            return cast(
                dict[str, Any],
                self._custom.get_namespaced_custom_object(
                    "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", name
                ),
            )
        except ApiException as error:
            if error.status != 404:
                raise
            return None

    def routing(self, name: str, request: Request | None = None) -> list[tuple[int, list[ServingInstance]]]:
        """How traffic for `name` splits now: (weight, ready processes behind that backend) per backend of the
        route's rule `request` takes (`harness.routing`; by default an infer request without headers); empty when
        no rule's match applies."""
        route = self._route(name)
        instances = self.instances()
        if route is None:
            return [(1, self._selected(name, instances))]
        request = request or Request(f"/v2/models/{name}/infer")
        rule = select_rule(route.get("spec", {}).get("rules", []), request) or {}
        return [
            (int(ref.get("weight", 1)), self._selected(ref["name"], instances)) for ref in rule.get("backendRefs", [])
        ]

    def mirror(self, name: str) -> tuple[int, list[ServingInstance]]:
        """The RequestMirror filter of HTTPRoute `name`: (percent, ready processes behind the mirror's backend);
        (0, []) without a route or a filter."""
        route = self._route(name)
        if route is None:
            return 0, []
        for rule in route.get("spec", {}).get("rules", []):
            for rule_filter in rule.get("filters", []):
                if rule_filter.get("type") != "RequestMirror":
                    continue
                mirror = rule_filter["requestMirror"]
                fraction = mirror.get("fraction")
                if "percent" in mirror:
                    percent = int(mirror["percent"])
                elif fraction is not None:
                    percent = round(100 * int(fraction["numerator"]) / int(fraction.get("denominator", 100)))
                else:
                    percent = 100
                return percent, self._selected(mirror["backendRef"]["name"], self.instances())
        return 0, []

    def forward(self, service: str, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """Send one request to a ready process behind `service` (503 when there is none)."""
        selector = self._service_selector(service)
        backends = [i for i in self.instances() if selector is not None and _matches(selector, i.labels)]
        if not backends:
            return 503, b'{"error": "no ready endpoint"}'
        headers = {"Content-Type": "application/json"} if body else {}
        response = self._http.request(
            method, random.choice(backends).base_url + path, content=body or None, headers=headers, timeout=30.0
        )
        return response.status_code, response.content


class ServiceFront:
    """A loopback front for in-cluster Service URLs (the operator's `canary_url_template` in tests):
    `http://127.0.0.1:<port>/<namespace>/<service>/<path>` goes to a ready process behind that Service, through
    the DataPlane added for that namespace. Use as a context manager or stop() it."""

    def __init__(self) -> None:
        self._planes: dict[str, DataPlane] = {}
        planes = self._planes

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                _, namespace, service, rest = [*self.path.split("/", 3), "", "", ""][:4]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                plane = planes.get(namespace)
                if plane is None:
                    status, answer = 404, b'{"error": "no data plane for this namespace"}'
                else:
                    try:
                        status, answer = plane.forward(service, self.command, "/" + rest, body)
                    except (httpx.HTTPError, ApiException) as error:
                        status, answer = 502, str(error).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _forward  # noqa: N815 (http.server's names)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="service-front", daemon=True)
        self._thread.start()

    @property
    def url_template(self) -> str:
        """`http://127.0.0.1:<port>/{namespace}/{service}` (the operator fills the placeholders in)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/{{namespace}}/{{service}}"

    def add(self, dataplane: DataPlane) -> None:
        self._planes[dataplane.namespace] = dataplane

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> ServiceFront:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@dataclass
class LoadStats:
    sent: int = 0
    dropped: int = 0
    """Requests for a backend with weight but no ready process (a real cluster would fail them)."""
    by_version: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(version, HTTP status) -> responses; status 0 for a transport error."""
    mirrored: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(version, HTTP status) -> mirrored copies sent (their answers discarded, as a gateway does)."""


class LoadGenerator:
    """V2 infer requests for ModelDeployment `name` at `rate` per second for at most `duration` seconds, each with
    `headers` and `query` parameters (routed by the HTTPRoute's rule they select, as a Gateway does)."""

    def __init__(
        self,
        dataplane: DataPlane,
        name: str,
        body: bytes,
        *,
        rate: float = 30.0,
        duration: float = 300.0,
        refresh_seconds: float = 0.5,
        workers: int = 16,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> None:
        self._dataplane = dataplane
        self._name = name
        self._body = body
        self._request = Request(f"/v2/models/{name}/infer", headers=dict(headers or {}), query=dict(query or {}))
        self._interval = 1.0 / min(max(rate, 0.1), MAX_RATE)
        self._duration = duration
        self._refresh = refresh_seconds
        self._workers = workers
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{name}", daemon=True)
        self._lock = threading.Lock()
        self.stats = LoadStats()

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        deadline = time.monotonic() + self._duration
        split: list[tuple[int, list[ServingInstance]]] = []
        mirror: tuple[int, list[ServingInstance]] = (0, [])
        refreshed = 0.0
        with (
            httpx.Client(timeout=10.0, limits=httpx.Limits(max_connections=self._workers)) as http,
            ThreadPoolExecutor(self._workers, thread_name_prefix=f"load-{self._name}") as pool,
        ):
            next_send = time.monotonic()
            while not self._stopping.is_set() and time.monotonic() < deadline:
                now = time.monotonic()
                if now - refreshed >= self._refresh:
                    with contextlib.suppress(Exception):  # keep the last split when the API hiccups
                        split = self._dataplane.routing(self._name, self._request)
                        mirror = self._dataplane.mirror(self._name)
                    refreshed = now
                instance = self._choose(split)
                if instance is None:
                    with self._lock:
                        self.stats.dropped += 1
                else:
                    pool.submit(self._send, http, instance)
                percent, mirrors = mirror
                if instance is not None and mirrors and random.random() * 100 < percent:
                    pool.submit(self._send, http, random.choice(mirrors), mirrored=True)
                next_send += self._interval
                self._stopping.wait(max(0.0, next_send - time.monotonic()))

    @staticmethod
    def _choose(split: list[tuple[int, list[ServingInstance]]]) -> ServingInstance | None:
        weighted = [(weight, backends) for weight, backends in split if weight > 0]
        if not weighted:
            return None
        _, backends = random.choices(weighted, weights=[weight for weight, _ in weighted])[0]
        return random.choice(backends) if backends else None

    def _send(self, http: httpx.Client, instance: ServingInstance, *, mirrored: bool = False) -> None:
        try:
            response = http.post(
                f"{instance.base_url}/v2/models/{instance.model_name}/infer",
                content=self._body,
                headers={**self._request.headers, "Content-Type": "application/json"},
                params=dict(self._request.query),
            )
            code = response.status_code
        except httpx.HTTPError:
            code = 0
        with self._lock:
            if mirrored:
                self.stats.mirrored[(instance.version, code)] += 1
                return
            self.stats.sent += 1
            self.stats.by_version[(instance.version, code)] += 1
