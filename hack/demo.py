"""A local canary demo: control plane (kwok), Prometheus, real model servers, the operator, and load.

Rolls out a good version (promoted step by step) and then a bad one (half its requests fail: rolled back on its
own), drawing each change with the plugin's own live view (`kubectl sluice status --watch`). Everything it starts
runs on 127.0.0.1 and is stopped by PID on exit (Ctrl-C included); with --keep it stays up until Ctrl-C and says
how to watch it with the plugin.

    .venv/bin/python hack/demo.py            # interval 10 s, steps 10/25/50
    .venv/bin/python hack/demo.py --short    # interval 3 s, steps 25/50 (also SLUICE_DEMO_SHORT=1), for CI
    .venv/bin/python hack/demo.py --keep     # leave it running afterwards (make demo KEEP=1)
    .venv/bin/python hack/demo.py --real     # on the real node: the chart's operator pod, serving containers,
                                             # Traefik's Gateway (make demo NODES=real; root, `make images` first)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from kubernetes import client  # noqa: E402

from harness import ControlPlane, Prometheus, create_namespace, new_api_client  # noqa: E402
from harness.dataplane import DataPlane, LoadGenerator  # noqa: E402
from harness.gateway_standin import create_gateway  # noqa: E402
from harness.realnode import GATEWAY_NAME, GATEWAY_NAMESPACE  # noqa: E402
from integration.operator_support import OperatorProcess  # noqa: E402
from integration.sluice_crd import install_crd  # noqa: E402
from real.release import start_installed_node  # noqa: E402
from real.served import ServedModel, Traffic  # noqa: E402
from sluice.cli.kube import Kube  # noqa: E402
from sluice.cli.live import render_live  # noqa: E402
from sluice.cli.status import change_key  # noqa: E402
from sluice.core.children import MODELDEPLOYMENT_LABEL  # noqa: E402
from unit.serving.support import digest_of, make_batch_of_one_classifier, make_classifier, rows_body  # noqa: E402

GROUP, VERSION, PLURAL, NAME = "sluice.dev", "v1alpha1", "modeldeployments", "iris"
BAD = "3.0.0-bad"


EVENTS_SHOWN = 4


@dataclass
class Demo:
    """A cluster the demo runs on, with its ModelDeployment's namespace, load and operator."""

    custom: client.CustomObjectsApi
    kube: Kube
    namespace: str
    spec: dict[str, Any]
    bad_model: dict[str, Any]
    """spec.model of the version that is rolled back (beside its version)."""
    tally: Callable[[], tuple[int, int]]
    """Requests sent so far and how many failed with a 5xx."""
    problem: Callable[[], str | None]
    """Why the demo cannot go on (the operator exited), or None."""
    watch_command: str
    on_stable: Callable[[], None] = lambda: None
    """Called once the first version is Stable (the real node's load starts then: earlier the Gateway has no ready
    backend to route to)."""


class View:
    """Draws the plugin's live view of the demo's ModelDeployment each time it changes."""

    def __init__(self, demo: Demo, started: float) -> None:
        self.demo, self.started = demo, started
        self.last_key: tuple[Any, ...] | None = None

    def draw(self) -> None:
        kube = self.demo.kube
        md = kube.get(NAME)
        events = kube.events(str(md.metadata.get("uid", "")), EVENTS_SHOWN)
        key = change_key(md, events or [])
        if key == self.last_key:
            return
        self.last_key = key
        pods = kube.pods(f"{MODELDEPLOYMENT_LABEL}={NAME}")
        served, errors = self.demo.tally()
        footer = f"{time.monotonic() - self.started:.0f}s · load {served} sent, {errors} 5xx"
        state = str(md.status.phase or "Pending")
        print(render_live(md, events, pods, datetime.now(UTC), state=state, footer=footer), flush=True)
        print("-" * 80, flush=True)


def rollout_spec(model: dict[str, Any], steps: list[int], interval: int, gateway: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model,
        "replicas": 1,
        "traffic": {"gateway": gateway},
        "rollout": {"steps": steps, "interval": f"{interval}s", "progressDeadline": "2m"},
        "analysis": {"minRequests": 10, "maxInconclusiveChecks": 3, "onInconclusive": "Hold"},
    }


def start_kwok(workdir: Path, stack: contextlib.ExitStack, steps: list[int], interval: int) -> Demo:
    """The local control plane with kwok nodes, the operator as a process, a model server per pod (the bad
    version's fail half their answers: SLUICE_FAULT_ERROR_RATE) and the harness's load generator."""
    print("starting the control plane and Prometheus ...")
    plane = ControlPlane.start(workdir / "control-plane")
    stack.callback(plane.stop)
    prometheus = Prometheus.start(workdir / "prometheus")
    stack.callback(prometheus.stop)
    install_crd(plane)
    api_client = stack.enter_context(plane.api_client())
    namespace = create_namespace(api_client, prefix="demo")
    create_gateway(api_client, namespace)  # `public`, which the control plane's Gateway stand-in accepts routes of
    operator = OperatorProcess(
        plane.kubeconfig,
        workdir / "operator.log",
        {"SLUICE_PROMETHEUS_URL": prometheus.url, "SLUICE_RESYNC_SECONDS": "2", "SLUICE_NAMESPACES": namespace},
    ).start()
    stack.callback(operator.stop)
    dataplane = DataPlane(
        api_client,
        prometheus,
        namespace,
        workdir / "dataplane",
        extra_env={BAD: {"SLUICE_FAULT_ERROR_RATE": "0.5"}},
    ).start()
    stack.callback(dataplane.stop)
    model = make_classifier(workdir / "models")
    load = LoadGenerator(dataplane, NAME, rows_body(model.rows[:1], "FP32"), rate=30, duration=900).start()
    stack.callback(load.stop)

    def tally() -> tuple[int, int]:
        by_version = load.stats.by_version
        return sum(by_version.values()), sum(n for (_, code), n in by_version.items() if code >= 500)

    model_spec = {"version": "1.0.0", "uri": model.onnx.as_uri(), "format": "onnx"}
    return Demo(
        client.CustomObjectsApi(api_client),
        Kube(api_client, namespace),
        namespace,
        rollout_spec(model_spec, steps, interval, {"parentRefs": [{"name": "public"}]}),
        {"version": BAD},
        tally,
        lambda: None if operator.is_running() else f"the operator exited:\n{operator.log_tail()}",
        f"KUBECONFIG={plane.kubeconfig} {REPO}/.venv/bin/kubectl-sluice status {NAME} -n {namespace} --watch",
    )


def start_real(workdir: Path, stack: contextlib.ExitStack, steps: list[int], interval: int) -> Demo:
    """The real node (containerd, kubelet, kube-proxy, CoreDNS, Traefik's Gateway `public`), the chart installed
    with helm from `make images`' images (the operator a pod), serving pods fetching models from a file server on
    the host address, requests through the Gateway; the bad version is an ONNX export that fails every batch."""
    print("starting the real node, Prometheus and the chart (about a minute) ...")
    installed = start_installed_node(workdir, stack)
    cluster, models, models_url = installed.cluster, installed.models, installed.models_url
    api_client = stack.enter_context(new_api_client(cluster.kubeconfig))
    namespace = create_namespace(api_client, prefix="demo")
    model, broken = make_classifier(models), make_batch_of_one_classifier(models)
    url = f"{models_url}/{model.joblib.name}"
    traffic = Traffic(ServedModel(cluster, namespace, NAME, model, url), 900)

    def start_traffic() -> None:
        stack.enter_context(traffic)

    def tally() -> tuple[int, int]:
        answers = traffic.answers
        return sum(answers.values()), sum(n for answer, n in answers.items() if answer.startswith("failed:5"))

    gateway = {"parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}]}
    model_spec = {"version": "1.0.0", "uri": url, "format": "sklearn", "digest": model.digest}
    bad = {"version": BAD, "uri": f"{models_url}/{broken.name}", "format": "onnx", "digest": digest_of(broken)}
    return Demo(
        client.CustomObjectsApi(api_client),
        Kube(api_client, namespace),
        namespace,
        rollout_spec(model_spec, steps, interval, gateway),
        bad,
        tally,
        lambda: None,
        f"KUBECONFIG={cluster.kubeconfig} {REPO}/.venv/bin/kubectl-sluice status {NAME} -n {namespace} --watch",
        start_traffic,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", default=os.environ.get("SLUICE_DEMO_SHORT") == "1")
    parser.add_argument("--keep", action="store_true", help="stay up after the demo until Ctrl-C")
    parser.add_argument("--real", action="store_true", help="on the real node, the chart installed (root)")
    args = parser.parse_args()
    interval, steps = (3, [25, 50]) if args.short else (10, [10, 25, 50])
    workdir = Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    print(f"work directory (logs): {workdir}")
    stack = contextlib.ExitStack()
    try:
        demo = (start_real if args.real else start_kwok)(workdir, stack, steps, interval)
        custom, namespace = demo.custom, demo.namespace
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": NAME}}
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {**body, "spec": demo.spec})
        view = View(demo, time.monotonic())

        def status() -> dict[str, Any]:
            obj = cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME))
            return cast(dict[str, Any], obj.get("status") or {})

        def watch(what: str, done: Any, timeout: float) -> dict[str, Any]:
            print(f"=== {what}")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                current = status()
                view.draw()
                if done(current):
                    return current
                problem = demo.problem()
                if problem:
                    raise RuntimeError(problem)
                time.sleep(0.5)
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s; logs under {workdir}")

        budget = 60 + interval * (len(steps) + 3) * 2 + (120 if args.real else 0)
        watch("1.0.0 deploying", lambda s: s.get("phase") == "Stable", budget)
        demo.on_stable()

        def ended(outcome: str, version: str) -> Any:
            def check(s: dict[str, Any]) -> bool:
                last = (s.get("history") or [{}])[-1]
                return bool(last.get("outcome") == outcome and last.get("version") == version and not s["canaryWeight"])

            return check

        for model, outcome in (({"version": "2.0.0"}, "Promoted"), (demo.bad_model, "RolledBack")):
            version = model["version"]
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"model": model}})
            final = watch(f"rolling out {version} (expect {outcome})", ended(outcome, version), budget)
            print(f"=> {final['history'][-1]['outcome']}: {final['history'][-1].get('message', '')}")
        print(f"demo finished: 2.0.0 promoted, {BAD} rolled back automatically")
        if args.keep:
            print("the cluster stays up until Ctrl-C; watch it with the plugin from another terminal:", flush=True)
            print(f"  {demo.watch_command}", flush=True)
            while not demo.problem():
                time.sleep(1)
            print(demo.problem())
        return 0
    except KeyboardInterrupt:
        print("interrupted")
        return 130
    finally:
        print("tearing down ...")
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
