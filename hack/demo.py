"""A local canary demo: control plane (kwok), Prometheus, real model servers, the operator, and load.

Rolls out a good version (promoted step by step) and then a bad one (half its requests fail: rolled back on its
own), printing the phase, weights and the last check's metric values as it goes. Everything it starts runs on
127.0.0.1 and is stopped by PID on exit (Ctrl-C included).

    .venv/bin/python hack/demo.py            # interval 10 s, steps 10/25/50
    .venv/bin/python hack/demo.py --short    # interval 3 s, steps 25/50 (also SLUICE_DEMO_SHORT=1), for CI
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from kubernetes import client  # noqa: E402

from harness import ControlPlane, Prometheus, create_namespace  # noqa: E402
from harness.dataplane import DataPlane, LoadGenerator  # noqa: E402
from integration.operator_support import OperatorProcess  # noqa: E402
from integration.sluice_crd import install_crd  # noqa: E402
from sluice.cli.render import weight_bar  # noqa: E402
from unit.serving.support import make_classifier, rows_body  # noqa: E402

GROUP, VERSION, PLURAL, NAME = "sluice.dev", "v1alpha1", "modeldeployments", "iris"
BAD = "3.0.0-bad"


def view(status: dict[str, Any], load: LoadGenerator, started: float) -> str:
    check = status.get("lastCheck") or {}
    metrics = " ".join(
        f"{m['name']}={m['value']:.3g}" if m.get("value") is not None else f"{m['name']}=-"
        for m in check.get("metrics", [])
    )
    served = sum(load.stats.by_version.values())
    errors = sum(n for (_, code), n in load.stats.by_version.items() if code >= 500)
    return (
        f"{time.monotonic() - started:6.1f}s  phase={status.get('phase', '-'):<12} "
        f"stable={status.get('stableVersion', '-'):<10} canary={status.get('canaryVersion') or '-':<10} "
        f"traffic {weight_bar(status.get('canaryWeight', 0), width=10):<17} "
        f"last check: {check.get('verdict', '-'):<12} {metrics}  "
        f"[load: {served} sent, {errors} 5xx]"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", default=os.environ.get("SLUICE_DEMO_SHORT") == "1")
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

        def status() -> dict[str, Any]:
            obj = cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME))
            return cast(dict[str, Any], obj.get("status") or {})

        def watch(what: str, done: Any, timeout: float) -> dict[str, Any]:
            print(f"--- {what}")
            deadline, last = time.monotonic() + timeout, ""
            while time.monotonic() < deadline:
                current = status()
                line = view(current, load, started)
                if line[8:].split("  [load", maxsplit=1)[0] != last[8:].split("  [load", maxsplit=1)[0]:
                    print(line, flush=True)
                last = line
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
