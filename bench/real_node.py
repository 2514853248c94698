"""`make bench-real`: sluice on the real node, measured in one run and written into docs/benchmarks.md (block
`<!-- bench:real:start/end -->`).

One real node (tests/harness/realnode.py: containerd, kubelet, kube-proxy, CoreDNS, Traefik as the Gateway), the
chart installed with helm from `make images`' images, Prometheus scraping the serving pods as a PodMonitor would.
Then, on one ModelDeployment behind Gateway `public`:

- serving pod created -> Ready (image present, model fetched over HTTP, digest verified, loaded): every serving pod
  of the run, from its creationTimestamp to its Ready condition (1 s resolution);
- requests through the Gateway vs straight to the stable pod's IP: wrk, 1 thread, 16 connections, a fixed duration
  each (bounded load), req/s and p99;
- served-share error per step: a good version promoted through steps [20, 50], the share of answers from it
  counted per step against the step's weight;
- breach -> canary weight 0: versions whose answers fail (an ONNX export that fails every batch) rolled out
  with interval 5 s under steady load, from the step's start (`status.stepStartedAt`) to the route's canary
  weight 0, beside the kwok figure of `make bench` (same settings).

    .venv/bin/python bench/real_node.py [--no-doc] [--repetitions N] [--wrk-seconds S]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from bench.lab import load_average  # noqa: E402
from bench.run import RESULTS, machine, pct, stamp, write_section, wrk  # noqa: E402
from harness import create_namespace, new_api_client, wait_until  # noqa: E402
from harness.tools import find_tools  # noqa: E402
from real.release import start_installed_node  # noqa: E402
from real.served import ServedModel, Traffic  # noqa: E402
from real.support import RealCluster  # noqa: E402
from sluice.core.children import SERVING_PORT  # noqa: E402
from unit.serving.support import digest_of, make_batch_of_one_classifier, make_classifier, rows_body  # noqa: E402

NAME = "bench"
STEPS = [20, 50]
KWOK_ROLLBACK = "p50 5.2 s, max 10.2 s (kwok, `make bench` rollback section, 2026-11-27)"


def parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def versions() -> dict[str, str]:
    """The version line of each component the figures depend on."""
    tools = find_tools()

    def first_line(*command: str) -> str:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        return (done.stdout or done.stderr).strip().splitlines()[0]

    traefik = first_line(str(tools.binary("traefik")), "version").split()[-1]  # "Version:      v3.6.12"
    return {
        "kubelet": f"kubelet {first_line(str(tools.binary('kubelet')), '--version').split()[-1]}",
        "containerd": first_line("containerd", "--version"),
        "runc": first_line("runc", "--version"),
        "traefik": f"Traefik {traefik}",
        "wrk": first_line("wrk", "-v").split(" Copyright")[0],
    }


def ready_seconds(cluster: RealCluster, namespace: str) -> dict[str, float]:
    """Serving pods of the namespace that are Ready: creationTimestamp -> Ready condition, by pod name."""
    listed = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json"))
    found = {}
    for pod in listed["items"]:
        for condition in pod.get("status", {}).get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                created = parse_time(pod["metadata"]["creationTimestamp"])
                found[pod["metadata"]["name"]] = parse_time(condition["lastTransitionTime"]) - created
    return found


def breach_to_zero(deployed: ServedModel, broken: Path, models_url: str, version: str) -> dict[str, Any]:
    """Roll out a version whose answers fail, under load; seconds from its step's start to canary weight 0."""
    deployed.apply(version, uri=f"{models_url}/{broken.name}", artifact=("onnx", digest_of(broken)))
    step_started: float | None = None
    weighted = False
    with Traffic(deployed, 300) as load:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = deployed.status()
            if step_started is None and status.get("canaryVersion") == version and status.get("stepStartedAt"):
                step_started = parse_time(status["stepStartedAt"])
            weight = deployed.canary_weight() or 0
            weighted = weighted or weight > 0
            if step_started is not None and weighted and weight == 0:
                zero = time.time()
                break
            time.sleep(0.2)
        else:
            raise TimeoutError(f"{version} still had canary weight after 300 s")
    wait_until(lambda: deployed.history_entry(version) is not None, timeout=60, what=f"{version} in the history")
    entry = deployed.history_entry(version) or {}
    return {"seconds": zero - step_started, "outcome": entry["outcome"], "answers": dict(load.answers)}


def run(workdir: Path, repetitions: int, wrk_seconds: float) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        installed = start_installed_node(workdir, stack)
        cluster, models, models_url = installed.cluster, installed.models, installed.models_url
        with new_api_client(cluster.kubeconfig) as api_client:
            namespace = create_namespace(api_client, prefix="bench")
        model, broken = make_classifier(models), make_batch_of_one_classifier(models)
        deployed = ServedModel(cluster, namespace, NAME, model, f"{models_url}/{model.joblib.name}")
        result: dict[str, Any] = {"versions": versions(), "load_before": load_average(), "ready_seconds": {}}
        print("stable 1.0.0 ...", flush=True)
        deployed.become_stable()
        result["ready_seconds"].update(ready_seconds(cluster, namespace))

        body = workdir / "body.json"
        body.write_bytes(rows_body(model.rows))
        pod_ip = cluster.kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[0].status.podIP}")
        path = f"/v2/models/{NAME}/infer"
        print("wrk: through the Gateway, then straight to the pod ...", flush=True)
        result["gateway"] = wrk(f"{cluster.gateway_url}{path}", body, wrk_seconds)
        result["direct"] = wrk(f"http://{pod_ip}:{SERVING_PORT}{path}", body, wrk_seconds)

        print("served shares per step (2.0.0 promoted) ...", flush=True)
        shares = deployed.ask_through_promotion("2.0.0")
        result["ready_seconds"].update(ready_seconds(cluster, namespace))
        result["shares"] = {str(step): dict(shares.get(step, {})) for step in STEPS}

        fast = ServedModel(cluster, namespace, NAME, model, deployed.model_url, interval="5s")
        result["breaches"] = []
        for repetition in range(repetitions):
            print(f"breach {repetition + 1}/{repetitions} ...", flush=True)
            result["breaches"].append(breach_to_zero(fast, broken, models_url, f"9.{repetition}.0-failing"))
            result["ready_seconds"].update(ready_seconds(cluster, namespace))
        return result


def render(r: dict[str, Any], took: float, args: argparse.Namespace) -> str:
    v = r["versions"]
    command = f".venv/bin/python bench/real_node.py --repetitions {args.repetitions} --wrk-seconds {args.wrk_seconds:g}"
    lines = [
        f"Run: {stamp()}; {machine()}; load average (1/5/15 min) {r['load_before']} before; the run took "
        f"{took / 60:.1f} min. Command: `{command}` (`make bench-real`).",
        "",
        f"Versions: {v['kubelet']}; {v['containerd']}; {v['runc']}; {v['traefik']}; {v['wrk']}.",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    ready = sorted(r["ready_seconds"].values())
    lines.append(
        f"| serving pod created -> Ready ({len(ready)} pods: serving image present, model fetched over HTTP, "
        f"digest verified, loaded), p50 / max | {pct(ready, 0.5):.0f} s / {ready[-1]:.0f} s |"
    )
    for label, key in (("through Gateway `public` (Traefik)", "gateway"), ("straight to the pod IP", "direct")):
        w = r[key]
        lines.append(
            f"| {label}: wrk 1 thread, 16 connections, {args.wrk_seconds:g} s | {w['rps']:.0f} req/s, "
            f"p99 {w['p99_ms']:.1f} ms ({w['requests']} requests, {w['non2xx']} non-2xx) |"
        )
    for step, counts in r["shares"].items():
        total = sum(counts.values())
        share = 100 * counts.get("2.0.0", 0) / total if total else float("nan")
        lines.append(
            f"| step {step}: share served by 2.0.0 ({total} requests through the Gateway) | {share:.1f} % "
            f"(error {share - int(step):+.1f} points) |"
        )
    seconds = [b["seconds"] for b in r["breaches"]]
    outcomes = ", ".join(f"{b['seconds']:.1f} s ({b['outcome']})" for b in r["breaches"])
    lines += [
        f"| breach -> canary weight 0, interval 5 s, each run | {outcomes} |",
        f"| breach -> canary weight 0, p50 / max | {pct(seconds, 0.5):.1f} s / {max(seconds):.1f} s |",
        f"| the same on kwok stand-ins | {KWOK_ROLLBACK} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-doc", action="store_true", help="print the figures without writing docs/benchmarks.md")
    parser.add_argument("--repetitions", type=int, default=3, help="breach -> weight 0 runs")
    parser.add_argument("--wrk-seconds", type=float, default=15.0, help="duration of each wrk run")
    args = parser.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-real-") as tmp:
        result = run(Path(tmp), args.repetitions, args.wrk_seconds)
    took = time.monotonic() - began
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "real.json").write_text(json.dumps(result, indent=1, default=str))
    text = render(result, took, args)
    print(text, flush=True)
    if not args.no_doc:
        write_section("real", text)


if __name__ == "__main__":
    main()
