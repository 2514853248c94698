"""`make bench` section `undo`: from `kubectl sluice undo` within rollout.keepPrevious to all traffic on the previous
revision, measured on the local control plane with real serving processes, beside Flagger's documented behaviour."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from bench.lab import Lab, load_average, ready
from harness import wait_until
from harness.dataplane import DataPlane, LoadGenerator
from unit.serving.support import make_classifier, rows_body

INTERVAL_SECONDS = 5
STEPS = [20, 50]
REPETITIONS = 3
POLL_SECONDS = 0.05


def _route_canary_weight(lab: Lab, namespace: str, name: str) -> int:
    route = cast(
        dict[str, Any],
        client.CustomObjectsApi(lab.api).get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", name
        ),
    )
    refs = [ref for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
    return next(int(ref.get("weight", 1)) for ref in refs if ref["name"] == f"{name}-canary")


def _phase(lab: Lab, namespace: str, name: str) -> Callable[[str], bool]:
    def is_in(phase: str) -> bool:
        item = next(i for i in lab.list_model_deployments(namespace) if i["metadata"]["name"] == name)
        return ready(item) and (item.get("status") or {}).get("phase") == phase

    return is_in


def _one(lab: Lab, plane: DataPlane, namespace: str, *, name: str, spec: dict[str, Any], body: bytes) -> float:
    """Stable 1.0.0, 2.0.0 promoted with 1.0.0 kept, then the undo: seconds to the route's canary weight 0."""
    lab.create_model_deployments(namespace, {name: spec})
    phase = _phase(lab, namespace, name)
    wait_until(lambda: phase("Stable"), timeout=120, what=f"{name} Stable", interval=0.5)
    with LoadGenerator(plane, name, body, rate=30.0, duration=180):
        lab.patch_model_deployments(namespace, [name], {"spec": {"model": {"version": "2.0.0"}}})
        wait_until(lambda: phase("Promoted"), timeout=120, what=f"{name} promoted, 1.0.0 kept", interval=0.2)
        wait_until(lambda: _route_canary_weight(lab, namespace, name) == 100, timeout=30, what="all on 2.0.0")
        undone = time.monotonic()
        lab.patch_model_deployments(namespace, [name], {"spec": {"model": {"version": "1.0.0"}}})
        while _route_canary_weight(lab, namespace, name) != 0:
            if time.monotonic() - undone > 60:
                raise RuntimeError(f"{name}: the undo did not move the traffic back")
            time.sleep(POLL_SECONDS)
        seconds = time.monotonic() - undone
    lab.patch_model_deployments(namespace, [name], {"spec": {"replicas": 0}})
    return seconds


def bench_undo(work: Path) -> dict[str, Any]:
    model = make_classifier(work / "models")
    body = rows_body(model.rows[:1], "FP32")
    times: list[float] = []
    load_before = load_average()
    with Lab(work / "undo", pods=4 * REPETITIONS + 4, prometheus=True) as lab:
        assert lab.prometheus is not None
        namespace = lab.namespace("undo")
        lab.start_operator([namespace], {"SLUICE_PROMETHEUS_URL": lab.prometheus.url, "SLUICE_PROMETHEUS_TIMEOUT": "3"})
        with DataPlane(lab.api, lab.prometheus, namespace, work / "dataplane") as plane:
            for k in range(REPETITIONS):
                spec = {
                    "model": {"version": "1.0.0", "uri": model.onnx.as_uri(), "format": "onnx"},
                    "replicas": 1,
                    "traffic": {"gateway": {"parentRefs": [{"name": "public"}]}},
                    "rollout": {"steps": STEPS, "interval": f"{INTERVAL_SECONDS}s", "keepPrevious": "5m"},
                    "analysis": {"minRequests": 10, "maxInconclusiveChecks": 2, "onInconclusive": "Hold"},
                }
                times.append(_one(lab, plane, namespace, name=f"undo{k}", spec=spec, body=body))
                print(f"  undo {k}: {times[-1]:.2f} s", flush=True)
    return {"times": times, "interval": INTERVAL_SECONDS, "steps": STEPS, "load_before": load_before}


def render_undo(r: dict[str, Any]) -> str:
    times, interval, steps = r["times"], r["interval"], r["steps"]
    flagger_floor = interval * len(steps)
    return "\n".join([
        f"One ModelDeployment (gateway traffic, steps {steps}, interval {interval} s, `rollout.keepPrevious: 5m`, 1 "
        "replica) with real `sluice-serving` processes for its kwok pods, 30 requests/s: 1.0.0 stable, 2.0.0 "
        "promoted (1.0.0's pods kept), then the spec set back to 1.0.0 as `kubectl sluice undo` writes it. "
        "Measured: from that write to the HTTPRoute's canary weight 0 (all traffic on 1.0.0's kept pods), polling "
        f"the route every {POLL_SECONDS * 1000:.0f} ms; {len(times)} repetitions.",
        "",
        "| figure | value |",
        "|---|---:|",
        "| each run | " + ", ".join(f"{t:.2f} s" for t in times) + " |",
        f"| p50 / max | {statistics.median(times):.2f} s / {max(times):.2f} s |",
        "| HTTPRoute writes for the undo (the e2e test counts them) | 1 |",
        f"| Flagger, same settings: no kept pods; a rollback after promotion is a new canary analysis of the old "
        f"version (its pods start again, then one interval per step before it is promoted back) | at least "
        f"{flagger_floor} s + pod starts |",
    ])  # fmt: skip
