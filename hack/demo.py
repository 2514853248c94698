"""A local canary demo: control plane (kwok), Prometheus, real model servers, the operator, and load.

Rolls out a good version (promoted step by step) and then a bad one (half its requests fail: rolled back on its
own), drawing each change with the plugin's own live view (`kubectl sluice status --watch`). Everything it starts
runs on 127.0.0.1 and is stopped by PID on exit (Ctrl-C included); with --keep it stays up until Ctrl-C and says
how to watch it with the plugin.

    .venv/bin/python hack/demo.py            # interval 10 s, steps 10/25/50
    .venv/bin/python hack/demo.py --short    # interval 3 s, steps 25/50 (also SLUICE_DEMO_SHORT=1), for CI
    .venv/bin/python hack/demo.py --keep     # leave it running afterwards (make demo KEEP=1)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from kubernetes import client  # noqa: E402

from harness import ControlPlane, Prometheus, create_namespace  # noqa: E402
from harness.dataplane import DataPlane, LoadGenerator  # noqa: E402
from integration.operator_support import OperatorProcess  # noqa: E402
from integration.sluice_crd import install_crd  # noqa: E402
from sluice.cli.kube import Kube  # noqa: E402
from sluice.cli.live import render_live  # noqa: E402
from sluice.cli.status import change_key  # noqa: E402
from sluice.core.children import MODELDEPLOYMENT_LABEL  # noqa: E402
from unit.serving.support import make_classifier, rows_body  # noqa: E402

GROUP, VERSION, PLURAL, NAME = "sluice.dev", "v1alpha1", "modeldeployments", "iris"
BAD = "3.0.0-bad"


EVENTS_SHOWN = 4


class View:
    """Draws the plugin's live view of the demo's ModelDeployment each time it changes."""

    def __init__(self, kube: Kube, load: LoadGenerator, started: float) -> None:
        self.kube, self.load, self.started = kube, load, started
        self.last_key: tuple[Any, ...] | None = None

    def draw(self) -> None:
        md = self.kube.get(NAME)
        events = self.kube.events(str(md.metadata.get("uid", "")), EVENTS_SHOWN)
        key = change_key(md, events or [])
        if key == self.last_key:
            return
        self.last_key = key
        pods = self.kube.pods(f"{MODELDEPLOYMENT_LABEL}={NAME}")
        served = sum(self.load.stats.by_version.values())
        errors = sum(n for (_, code), n in self.load.stats.by_version.items() if code >= 500)
        footer = f"{time.monotonic() - self.started:.0f}s · load {served} sent, {errors} 5xx"
        state = str(md.status.phase or "Pending")
        print(render_live(md, events, pods, datetime.now(UTC), state=state, footer=footer), flush=True)
        print("-" * 80, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", default=os.environ.get("SLUICE_DEMO_SHORT") == "1")
    parser.add_argument("--keep", action="store_true", help="stay up after the demo until Ctrl-C")
    args = parser.parse_args()
    interval, steps = (3, [25, 50]) if args.short else (10, [10, 25, 50])
    workdir = Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    print(f"work directory (logs): {workdir}")
    stoppers: list[Any] = []
    stack = contextlib.ExitStack()
    stoppers.append(stack.close)
    try:
        print("starting the control plane and Prometheus ...")
        plane = ControlPlane.start(workdir / "control-plane")
        stoppers.append(plane.stop)
        prometheus = Prometheus.start(workdir / "prometheus")
        stoppers.append(prometheus.stop)
        install_crd(plane)
        api_client = stack.enter_context(plane.api_client())
        namespace = create_namespace(api_client, prefix="demo")
        operator = OperatorProcess(
            plane.kubeconfig,
            workdir / "operator.log",
            {"SLUICE_PROMETHEUS_URL": prometheus.url, "SLUICE_RESYNC_SECONDS": "2", "SLUICE_NAMESPACES": namespace},
        ).start()
        stoppers.append(operator.stop)
        dataplane = DataPlane(
            api_client,
            prometheus,
            namespace,
            workdir / "dataplane",
            extra_env={BAD: {"SLUICE_FAULT_ERROR_RATE": "0.5"}},
        ).start()
        stoppers.append(dataplane.stop)
        model = make_classifier(workdir / "models")
        custom = client.CustomObjectsApi(api_client)
        spec = {
            "model": {"version": "1.0.0", "uri": model.onnx.as_uri(), "format": "onnx"},
            "replicas": 1,
            "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
            "rollout": {"steps": steps, "interval": f"{interval}s", "progressDeadline": "2m"},
            "analysis": {"minRequests": 10, "maxInconclusiveChecks": 3, "onInconclusive": "Hold"},
        }
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": NAME}}
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {**body, "spec": spec})
        load = LoadGenerator(dataplane, NAME, rows_body(model.rows[:1], "FP32"), rate=30, duration=900).start()
        stoppers.append(load.stop)
        started = time.monotonic()
        view = View(Kube(api_client, namespace), load, started)

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
                if not operator.is_running():
                    raise RuntimeError(f"the operator exited:\n{operator.log_tail()}")
                time.sleep(0.5)
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s; operator log: {operator.log_path}")

        budget = 60 + interval * (len(steps) + 3) * 2
        watch("1.0.0 deploying", lambda s: s.get("phase") == "Stable", budget)

        def ended(outcome: str, version: str) -> Any:
            def check(s: dict[str, Any]) -> bool:
                last = (s.get("history") or [{}])[-1]
                return bool(last.get("outcome") == outcome and last.get("version") == version and not s["canaryWeight"])

            return check

        for version, outcome in (("2.0.0", "Promoted"), (BAD, "RolledBack")):
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"model": {"version": version}}}
            )
            final = watch(f"rolling out {version} (expect {outcome})", ended(outcome, version), budget)
            print(f"=> {final['history'][-1]['outcome']}: {final['history'][-1].get('message', '')}")
        print("demo finished: 2.0.0 promoted, 3.0.0-bad rolled back automatically")
        if args.keep:
            print(
                "the cluster stays up until Ctrl-C; watch it with the plugin from another terminal:\n"
                f"  KUBECONFIG={plane.kubeconfig} {REPO}/.venv/bin/kubectl-sluice status {NAME} -n {namespace} --watch",
                flush=True,
            )
            while operator.is_running():
                time.sleep(1)
            print(f"the operator exited:\n{operator.log_tail()}")
        return 0
    except KeyboardInterrupt:
        print("interrupted")
        return 130
    finally:
        print("tearing down ...")
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception as error:  # keep tearing down the rest
                print(f"teardown: {type(error).__name__}: {error}")


if __name__ == "__main__":
    sys.exit(main())
