"""`make bench`: the operator's performance on the local control plane, written into docs/benchmarks.md.

Sections (each regenerates its own block of docs/benchmarks.md between `<!-- bench:NAME:start/end -->` markers,
as soon as it finishes; the model-server comparison of `make bench-serving` is left as it is):

- scale: N ModelDeployments created at once: time until all are Ready, operator CPU and RSS, API requests per
  object by verb, then a steady state (writes, reads, CPU); the raw write capacity of the same API server for the
  same writes from a tight loop (bench/rawload.py); a py-spy profile of the operator at the largest N.
- rollouts: many rollouts at once with a 10 s interval, fed by a synthetic exporter (bench/exporter.py): step
  timing jitter, and breach to canary weight 0 against the design bound.
- rollback: one rollout with real model servers, the canary failing half its requests: first bad step to canary
  weight 0, against the design bound and against Flagger's worst case for the same settings.
- undo: rollout.keepPrevious: from an undo after a promotion to all traffic on the kept previous revision
  (bench/undo.py), beside Flagger's documented behaviour.
- soak: one model server at 80% of its measured capacity for 10 minutes: errors and RSS over time.

    .venv/bin/python bench/run.py [--only scale,rollouts,rollback,undo,soak] [--quick] [--no-doc]

`--quick` runs small sizes and short durations (development, smoke test); its figures are not published unless
`--doc` is given too. Results also go to .local/bench/<section>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.lab import Lab, Sampler, cpu_seconds, load_average, ready, requests_by_verb, rss_mib, sampled  # noqa: E402
from bench.undo import bench_undo, render_undo  # noqa: E402
from harness import free_port, wait_until  # noqa: E402
from harness.dataplane import DataPlane, LoadGenerator  # noqa: E402
from harness.processes import launch, stop_processes  # noqa: E402
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION  # noqa: E402
from sluice.settings import Settings  # noqa: E402
from unit.serving.support import make_classifier, rows_body  # noqa: E402

DOC = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / ".local" / "bench"
PYTHON = sys.executable
SECTIONS = ("scale", "rollouts", "rollback", "undo", "soak")
DEFAULT_RESYNC_SECONDS: float = Settings.model_fields["resync_seconds"].default
IMAGE = "ghcr.io/sluice-dev/sluice-serving:0.1.0"


@dataclass(frozen=True)
class Config:
    quick: bool
    scale_sizes: tuple[int, ...]
    steady_seconds: float
    rollouts: int
    rollouts_bad: int
    rollout_steps: tuple[int, ...]
    rollback_repetitions: int
    soak_seconds: float

    @classmethod
    def make(cls, quick: bool) -> Config:
        if quick:
            return cls(True, (1, 20, 100), 15.0, 40, 4, (10, 20, 30), 2, 60.0)
        return cls(False, (1, 100, 1000), 30.0, 200, 20, (10, 20, 30, 40, 50), 5, 600.0)


def command_line(section: str, cfg: Config) -> str:
    return f".venv/bin/python bench/run.py --only {section}" + (" --quick" if cfg.quick else "")


def stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def md_spec(version: str, *, gateway: bool = False, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"version": version, "uri": "https://models.example.com/bench/model.onnx", "format": "onnx"},
        "replicas": 1,
        **extra,
    }
    if gateway:
        spec["traffic"] = {"gateway": {"parentRefs": [{"name": "public"}]}}
    return spec


# -- scale ---------------------------------------------------------------------------------------------------------


def py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` until SIGINT: sampling from outside without pausing it, only the thread holding the
    GIL (so the profile is where the operator spends CPU, not where it waits)."""
    spy = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or "py-spy"
    return subprocess.Popen(
        [spy, "record", "--nonblocking", "--gil", "--rate", "50", "--format", "raw", "-o", str(out), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_py_spy(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def top_frames(raw: Path, limit: int = 12) -> dict[str, Any]:
    """From py-spy's collapsed stacks: the functions with the most samples on the stack (inclusive) and on top
    (self), each as (function file, share of samples)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return {"samples": 0, "inclusive": [], "self": []}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for frame in stack.split(";")[1:]:  # the first is the process/thread
            match = _FRAME.match(frame.strip())
            name = frame.strip()
            if match:
                file = match.group("file")
                short = "/".join(file.split("/")[-2:]) if "site-packages" in file or "/src/" in file else file
                name = f"{match.group('func')} ({short})"
            frames.append(name)
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    share = (lambda c: round(100 * c / total, 1)) if total else (lambda c: 0.0)
    ours = Counter({name: c for name, c in inclusive.items() if "(sluice/" in name})
    return {
        "samples": total,
        "inclusive": [(name, share(c)) for name, c in inclusive.most_common(limit)],
        "sluice": [(name, share(c)) for name, c in ours.most_common(limit)],
        "self": [(name, share(c)) for name, c in own.most_common(limit)],
    }


def raw_capacity(lab: Lab, n: int) -> dict[str, Any]:
    """The operator's first-reconcile writes for n fresh ModelDeployments from a tight loop (bench/rawload.py),
    through the same proxy, identity and client as the operator."""
    namespace = lab.namespace(f"raw-{n}")
    lab.create_model_deployments(namespace, {f"m{i:04d}": md_spec("1.0.0") for i in range(n)})
    lab.counting.reset()
    env = {**os.environ, "KUBECONFIG": str(lab.operator_kubeconfig)}
    out = subprocess.run([PYTHON, str(REPO / "bench" / "rawload.py"), "--namespace", namespace], env=env,
                         capture_output=True, text=True, check=False, timeout=900)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"rawload failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["writes_per_second"] = result["first_writes"] / result["write_seconds"]
    result["objects_per_second"] = result["objects"] / result["ready_seconds"]
    result["namespace"] = namespace
    return result


def scale_one(lab: Lab, n: int, cfg: Config, *, profile: bool) -> dict[str, Any]:
    print(f"scale N={n}: load average {load_average()}", flush=True)
    namespace = lab.namespace(f"scale-{n}")
    operator = lab.start_operator([namespace])
    assert operator.record is not None
    pid = operator.record.pid
    result: dict[str, Any] = {"n": n, "load_before": load_average()}
    profile_dir = RESULTS / "profiles"
    profile_dir.mkdir(parents=True, exist_ok=True)
    with sampled(pid) as sampler:
        time.sleep(1.5)
        idle_rss = rss_mib(pid)
        lab.counting.reset()
        spy = py_spy(pid, profile_dir / f"burst-{n}.txt") if profile else None
        started = time.monotonic()
        cpu_before = cpu_seconds(pid)
        lab.create_model_deployments(namespace, {f"m{i:04d}": md_spec("1.0.0") for i in range(n)})
        created = time.monotonic()
        deadline = created + 900
        while True:
            items = lab.list_model_deployments(namespace)
            done = sum(1 for item in items if ready(item))
            if done == n:
                break
            if time.monotonic() > deadline or not operator.is_running():
                raise RuntimeError(f"only {done}/{n} Ready after {time.monotonic() - started:.0f} s\n"
                                   f"{operator.log_tail()}")  # fmt: skip
            time.sleep(0.5)
        all_ready = time.monotonic()
        if spy is not None:
            stop_py_spy(spy)
        burst = requests_by_verb(lab.counting.requests())
        cpu_burst = cpu_seconds(pid) - cpu_before
        # settling: the writes still under way when the last one turned Ready (Events, the last status writes)
        lab.counting.reset()
        settle_deadline, quiet_since, seen_writes = time.monotonic() + 180, time.monotonic(), 0
        while time.monotonic() < settle_deadline and time.monotonic() - quiet_since < 5.0:
            time.sleep(0.5)
            writes_now = len(lab.counting.writes())
            if writes_now != seen_writes:
                seen_writes, quiet_since = writes_now, time.monotonic()
        result.update(settle_seconds=quiet_since - all_ready, settle_writes=seen_writes)
        # steady state
        lab.counting.reset()
        spy = py_spy(pid, profile_dir / f"steady-{n}.txt") if profile else None
        steady_start, steady_cpu0 = time.monotonic(), cpu_seconds(pid)
        time.sleep(cfg.steady_seconds)
        steady_end, steady_cpu1 = time.monotonic(), cpu_seconds(pid)
        if spy is not None:
            stop_py_spy(spy)
        steady = requests_by_verb(lab.counting.requests())
        result["resync_pass"] = resync_pass(lab, namespace, n, pid)
        result.update(
            create_seconds=created - started,
            ready_seconds=all_ready - started,
            objects_per_second=n / (all_ready - started),
            requests=dict(burst),
            requests_per_object={verb: count / n for verb, count in burst.items()},
            writes=sum(c for v, c in burst.items() if v in {"POST", "PUT", "PATCH", "DELETE"}),
            cpu_seconds=cpu_burst,
            cpu_percent_mean=100 * cpu_burst / (all_ready - started),
            cpu_percent_peak=sampler.peak_cpu_percent(started, all_ready),
            rss_idle_mib=idle_rss,
            rss_peak_mib=sampler.max_rss(started, all_ready),
            rss_steady_mib=rss_mib(pid),
            steady_seconds=steady_end - steady_start,
            steady_requests=dict(steady),
            steady_writes=sum(c for v, c in steady.items() if v in {"POST", "PUT", "PATCH", "DELETE"}),
            steady_cpu_percent=100 * (steady_cpu1 - steady_cpu0) / (steady_end - steady_start),
        )
    result["writes_per_second"] = result["writes"] / result["ready_seconds"]
    if profile:
        result["profile"] = {"burst": top_frames(profile_dir / f"burst-{n}.txt"),
                             "steady": top_frames(profile_dir / f"steady-{n}.txt")}  # fmt: skip
    operator.stop()
    print(f"  operator: all Ready in {result['ready_seconds']:.1f} s, {result['writes']} writes, CPU "
          f"{result['cpu_percent_mean']:.0f}%, RSS {result['rss_peak_mib']:.0f} MiB; steady writes "
          f"{result['steady_writes']}, CPU {result['steady_cpu_percent']:.1f}%", flush=True)  # fmt: skip
    # The tight loop after the operator, on the same cluster (the operator's objects stay, idle, until it is done:
    # deleting a thousand Deployments keeps kube-controller-manager busy for minutes).
    raw = result["raw"] = raw_capacity(lab, n)
    result["ratio"] = result["objects_per_second"] / raw["objects_per_second"]
    print(f"  tight loop: {raw['first_writes']} writes in {raw['write_seconds']:.1f} s "
          f"({raw['writes_per_second']:.0f}/s), all Ready in {raw['ready_seconds']:.1f} s; ratio {result['ratio']:.2f}",
          flush=True)  # fmt: skip
    last = n == max(cfg.scale_sizes)
    for name in (namespace, raw["namespace"]):
        lab.drop_namespace(name, wait=not last)
    return result


def resync_pass(lab: Lab, namespace: str, n: int, pid: int) -> dict[str, Any]:
    """What one resync of every object costs: an annotation wakes each loop, which then reconciles an unchanged
    object exactly as a resync does (reads, no writes); counted until every object was read and 3 s passed quietly.
    The CPU also covers handling the annotation's watch event, which a resync does not: an upper bound."""
    lab.counting.reset()
    start, cpu_before = time.monotonic(), cpu_seconds(pid)
    names = [f"m{i:04d}" for i in range(n)]
    lab.patch_model_deployments(namespace, names, {"metadata": {"annotations": {"bench.sluice.dev/poke": "1"}}})
    object_paths = {f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}" for name in names}
    deadline, seen, quiet_since = time.monotonic() + 300, 0, time.monotonic()
    while True:
        time.sleep(0.5)
        requests = lab.counting.requests()
        if len(requests) != seen:
            seen, quiet_since = len(requests), time.monotonic()
        read = {r.path for r in requests if r.method == "GET" and r.path in object_paths}
        if len(read) == n and time.monotonic() - quiet_since >= 3.0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"resync pass: only {len(read)}/{n} objects reconciled after 300 s")
    cpu = cpu_seconds(pid) - cpu_before
    verbs = requests_by_verb(lab.counting.requests())
    return {
        "seconds": time.monotonic() - start,
        "reads_per_object": (verbs["GET"] + verbs["LIST/WATCH"]) / n,
        "writes": sum(c for v, c in verbs.items() if v in {"POST", "PUT", "PATCH", "DELETE"}),
        "cpu_ms_per_object": 1000 * cpu / n,
    }


def bench_scale(cfg: Config, work: Path) -> dict[str, Any]:
    runs = []
    with Lab(work / "scale", pods=max(cfg.scale_sizes), prometheus=False) as lab:
        for n in cfg.scale_sizes:
            runs.append(scale_one(lab, n, cfg, profile=n == max(cfg.scale_sizes)))
    return {"runs": runs}


def render_scale(result: dict[str, Any], cfg: Config) -> str:
    runs = result["runs"]
    verbs = ["GET", "LIST/WATCH", "PATCH", "POST", "PUT", "DELETE"]
    used = [v for v in verbs if any(v in r["requests"] for r in runs)]
    lines = [
        "| N | create s | operator: all Ready s | tight loop: all Ready s | ratio | operator writes/s | "
        "tight loop writes/s | CPU mean % | CPU peak % | RSS idle → peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        raw = r["raw"]
        lines.append(
            f"| {r['n']} | {r['create_seconds']:.1f} | {r['ready_seconds']:.1f} | {raw['ready_seconds']:.1f} | "
            f"{r['ratio']:.2f} | {r['writes_per_second']:.0f} | {raw['writes_per_second']:.0f} | "
            f"{r['cpu_percent_mean']:.0f} | {r['cpu_percent_peak']:.0f} | "
            f"{r['rss_idle_mib']:.0f} → {r['rss_peak_mib']:.0f} |"
        )
    lines += [
        "",
        "ratio: the operator's throughput (N / its time to all Ready) over the tight loop's (N / its time to all "
        "Ready). Tight loop writes/s: its first-reconcile writes over the time they took, the API server's raw "
        "capacity for these writes; operator writes/s: all its writes over its time to all Ready.",
    ]
    lines += ["", "API requests per ModelDeployment, from creation until all are Ready (through the counting proxy):",
              "", "| N | " + " | ".join(used) + " | total |", "|---:|" + "---:|" * (len(used) + 1)]  # fmt: skip
    for r in runs:
        per = r["requests_per_object"]
        lines.append(
            f"| {r['n']} | " + " | ".join(f"{per.get(v, 0):.1f}" for v in used) + f" | {sum(per.values()):.1f} |"
        )
    lines += ["", f"Settling, then the steady state: writes still made after the last one turned Ready, until none "
              f"for 5 s (settled after); then {cfg.steady_seconds:.0f} s with nothing changing (default resync "
              f"{DEFAULT_RESYNC_SECONDS:.0f} s, so no resync falls in it):",
              "", "| N | writes while settling | settled after s | steady writes | steady reads | reads/s | CPU % |"
              " RSS MiB |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in runs:
        reads = sum(c for v, c in r["steady_requests"].items() if v in {"GET", "LIST/WATCH"})
        lines.append(f"| {r['n']} | {r.get('settle_writes', 0)} | {r.get('settle_seconds', 0):.1f} | "
                     f"{r['steady_writes']} | {reads} | {reads / r['steady_seconds']:.1f} | "
                     f"{r['steady_cpu_percent']:.1f} | {r['rss_steady_mib']:.0f} |")  # fmt: skip
    lines += ["", "The safety-net resync, measured as one pass over every object (an annotation wakes each loop, which "
              "reconciles the unchanged object as a resync does; CPU includes handling that watch event, so it is an "
              f"upper bound), and what it costs spread over the default resync of {DEFAULT_RESYNC_SECONDS:.0f} s:",
              "", "| N | pass s | writes | reads per object | CPU ms per object | amortized reads/s | amortized CPU % "
              "|",
              "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in runs:
        rp, per_second = r["resync_pass"], r["n"] / DEFAULT_RESYNC_SECONDS
        lines.append(f"| {r['n']} | {rp['seconds']:.1f} | {rp['writes']} | {rp['reads_per_object']:.1f} | "
                     f"{rp['cpu_ms_per_object']:.1f} | {per_second * rp['reads_per_object']:.2f} | "
                     f"{per_second * rp['cpu_ms_per_object'] / 10:.2f} |")  # fmt: skip
    big = runs[-1]
    goal = "met" if big["ratio"] >= 0.5 else "NOT met"
    zero = "met" if all(r["steady_writes"] == 0 and r["resync_pass"]["writes"] == 0 for r in runs) else "NOT met"
    lines += ["", f"Goals: operator throughput at least half the tight loop's at N={big['n']}: {goal} "
              f"({big['ratio']:.2f}); zero writes in the steady state: {zero}."]  # fmt: skip
    if "profile" in big:
        for phase in ("burst", "steady"):
            prof = big["profile"][phase]
            if prof["samples"] < 20:
                lines += ["", f"py-spy, N={big['n']}, {phase}: {prof['samples']} samples holding the GIL (idle)."]
                continue
            lines += ["", f"py-spy, N={big['n']}, {phase} ({prof['samples']} samples holding the GIL at 50 Hz): % of "
                      "samples with the function on top (self) and sluice's own functions on the stack (inclusive):",
                      "", "| self | % | sluice, inclusive | % |", "|---|---:|---|---:|"]  # fmt: skip
            pairs = zip(prof["self"], prof["sluice"] + [("", "")] * len(prof["self"]), strict=False)
            lines += [f"| `{a}` | {x} | `{b}` | {y} |".replace("``", "") for (a, x), (b, y) in pairs]
    return "\n".join(lines)


# -- concurrent rollouts ----------------------------------------------------------------------------------------------


def parse_time(text: str | None) -> float | None:
    return None if not text else dt.datetime.fromisoformat(text).timestamp()


def bench_rollouts(cfg: Config, work: Path) -> dict[str, Any]:
    interval = 10
    n, bad_count = cfg.rollouts, cfg.rollouts_bad
    names = [f"r{i:03d}" for i in range(n)]
    bad = set(names[:: max(1, n // bad_count)][:bad_count])
    steps = list(cfg.rollout_steps)
    with Lab(work / "rollouts", pods=2 * n, prometheus=True) as lab:
        assert lab.prometheus is not None
        namespace = lab.namespace("rollouts")
        (work / "names.txt").write_text("\n".join(names))
        (work / "bad.txt").write_text("\n".join(sorted(bad)))
        port = free_port()
        exporter = launch("exporter", [PYTHON, REPO / "bench" / "exporter.py", "--port", str(port), "--names",
                                       work / "names.txt", "--bad", work / "bad.txt"],
                          work / "exporter.log", die_with_parent=True)  # fmt: skip
        try:
            lab.prometheus.add_target("bench-exporter", f"127.0.0.1:{port}",
                                      labels={"namespace": namespace, "job": "sluice-serving"})  # fmt: skip
            lab.prometheus.wait_for_query('count(sluice_serving_requests_total{track="canary"}) > 0')
            operator = lab.start_operator([namespace], {"SLUICE_PROMETHEUS_URL": lab.prometheus.url})
            assert operator.record is not None
            analysis = {"minRequests": 10, "maxInconclusiveChecks": 3, "onInconclusive": "Hold"}
            rollout = {"steps": steps, "interval": f"{interval}s", "progressDeadline": "5m"}
            spec = md_spec("1.0.0", gateway=True, rollout=rollout, analysis=analysis)
            lab.create_model_deployments(namespace, dict.fromkeys(names, spec))
            wait_until(lambda: all(ready(i) and i["status"].get("phase") == "Stable"
                                   for i in lab.list_model_deployments(namespace)),
                       timeout=600, what="all Stable", interval=1.0)  # fmt: skip
            print(f"rollouts: {n} Stable; load average {load_average()}", flush=True)
            load_before = load_average()
            with sampled(operator.record.pid) as sampler:
                started = time.monotonic()
                lab.patch_model_deployments(namespace, names, {"spec": {"model": {"version": "2.0.0"}}})
                seen: dict[str, dict[str, set[float]]] = {name: {"steps": set(), "checks": set()} for name in names}
                zero_at: dict[str, float] = {}
                verdicts: dict[str, dict[float, str]] = {name: {} for name in names}
                breach_at: float | None = None
                all_weighted_at: float | None = None
                first_weighted_at: float | None = None
                deadline = time.monotonic() + 120 + interval * (len(steps) + 2)
                while time.monotonic() < deadline:
                    items = lab.list_model_deployments(namespace)
                    now = time.time()
                    for item in items:
                        status, name = item.get("status") or {}, item["metadata"]["name"]
                        if (t := parse_time(status.get("stepStartedAt"))) is not None and status.get("canaryWeight"):
                            seen[name]["steps"].add(t)
                        if (t := parse_time(status.get("lastCheckTime"))) is not None:
                            seen[name]["checks"].add(t)
                            verdicts[name][t] = (status.get("lastCheck") or {}).get("verdict", "?")
                        if breach_at is not None and name in bad and name not in zero_at and \
                                status.get("canaryWeight") == 0 and status.get("phase") == "RolledBack":  # fmt: skip
                            zero_at[name] = now
                    weighted = sum(1 for i in items if (i.get("status") or {}).get("canaryWeight"))
                    if first_weighted_at is None and weighted:
                        first_weighted_at = time.time()
                    # every canary has traffic (or, should their starts spread, three intervals after the first)
                    if (
                        all_weighted_at is None
                        and first_weighted_at is not None
                        and (weighted == n or time.time() > first_weighted_at + 3 * interval)
                    ):
                        all_weighted_at = time.time()
                    if (
                        breach_at is None
                        and all_weighted_at is not None
                        and time.time() > all_weighted_at + 1.5 * interval
                    ):
                        breach_at = float(httpx.post(f"http://127.0.0.1:{port}/breach").text)
                        print(f"  breach at +{time.monotonic() - started:.0f} s", flush=True)
                    finished = sum(1 for i in items if (i.get("status") or {}).get("phase") in {"Stable", "RolledBack"}
                                   and (i.get("status") or {}).get("history"))  # fmt: skip
                    if breach_at is not None and finished == n:
                        break
                    time.sleep(0.5)
                ended = time.monotonic()
            items = lab.list_model_deployments(namespace)
            outcomes = Counter(((i.get("status") or {}).get("history") or [{}])[-1].get("outcome", "unfinished")
                               for i in items)  # fmt: skip
        finally:
            stop_processes([exporter])
    lateness = []
    for name in names:
        marks = sorted(seen[name]["steps"] | seen[name]["checks"])
        checks = sorted(seen[name]["checks"])
        for check in checks:
            earlier = [m for m in marks if m < check - 0.001]
            if earlier:
                lateness.append(check - max(earlier) - interval)
    to_zero = [zero_at[name] - breach_at for name in zero_at] if breach_at else []
    return {
        "n": n,
        "bad": len(bad),
        "steps": steps,
        "interval": interval,
        "load_before": load_before,
        "checks": len(lateness),
        "lateness_p50": pct(lateness, 0.5) if lateness else None,
        "lateness_p99": pct(lateness, 0.99) if lateness else None,
        "lateness_max": max(lateness) if lateness else None,
        "breach_to_zero": sorted(to_zero),
        "rolled_back": len(zero_at),
        "outcomes": dict(outcomes),
        "bound": 2 * interval + 10,
        "flagger_worst": interval * 2,
        "operator_cpu_percent": sampler.cpu_percent(started, ended),
        "operator_rss_mib": sampler.max_rss(started, ended),
        "seconds": ended - started,
        "timelines": {name: {kind: sorted(marks) for kind, marks in seen[name].items()} for name in names},
        "breach_at": breach_at,
        "verdicts": dict(Counter(v for per in verdicts.values() for v in per.values())),
        "verdicts_by_name": verdicts,
        "zero_at": zero_at,
    }


def render_rollouts(r: dict[str, Any], cfg: Config) -> str:
    zero = r["breach_to_zero"]
    lines = [
        f"{r['n']} ModelDeployments (gateway traffic, steps {r['steps']}, interval {r['interval']} s, minRequests 10) "
        f"rolling out 1.0.0 → 2.0.0 at once; {r['bad']} of them start failing half their canary requests "
        f"{1.5 * r['interval']:.0f} s after every canary got traffic. Outcomes: "
        + ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        + ".",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| analysis checks observed | {r['checks']} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(r.get("verdicts", {}).items()))
        + ") |",
        f"| check lateness vs the {r['interval']} s schedule, p50 | {r['lateness_p50']:.2f} s |"
        if r["checks"]
        else "| check lateness | no checks seen |",
        f"| check lateness, p99 | {r['lateness_p99']:.2f} s |" if r["checks"] else None,
        f"| check lateness, max | {r['lateness_max']:.2f} s |" if r["checks"] else None,
        f"| breach to canary weight 0, p50 ({len(zero)}/{r['bad']} rolled back) | "
        + (f"{pct(zero, 0.5):.1f} s |" if zero else "none |"),
        "| breach to canary weight 0, max | " + (f"{max(zero):.1f} s |" if zero else "none |"),
        f"| design bound (2 x interval + 10 s) | {r['bound']} s |",
        f"| Flagger's worst case, interval x (threshold 1 + 1) | {r['flagger_worst']} s |",
        f"| operator CPU (mean over the rollouts) | {r['operator_cpu_percent']:.0f}% |",
        f"| operator RSS (peak) | {r['operator_rss_mib']:.0f} MiB |",
    ]
    return "\n".join(line for line in lines if line is not None)


# -- single rollout, breach to rollback -------------------------------------------------------------------------


def bench_rollback(cfg: Config, work: Path) -> dict[str, Any]:
    interval, steps = 5, [20, 50]
    model = make_classifier(work / "models")
    body = rows_body(model.rows[:1], "FP32")
    times: list[float] = []
    verdicts: list[str] = []
    load_before = load_average()
    with Lab(work / "rollback", pods=2 * cfg.rollback_repetitions + 4, prometheus=True) as lab:
        assert lab.prometheus is not None
        namespace = lab.namespace("rollback")
        operator = lab.start_operator([namespace], {"SLUICE_PROMETHEUS_URL": lab.prometheus.url,
                                                    "SLUICE_PROMETHEUS_TIMEOUT": "3"})  # fmt: skip
        extra = {"2.0.0-bad": {"SLUICE_FAULT_ERROR_RATE": "0.5"}}
        with DataPlane(lab.api, lab.prometheus, namespace, work / "dataplane", extra_env=extra) as plane:
            for k in range(cfg.rollback_repetitions):
                name = f"rb{k}"
                spec = md_spec(
                    "1.0.0",
                    gateway=True,
                    rollout={"steps": steps, "interval": f"{interval}s", "progressDeadline": "2m"},
                    analysis={"minRequests": 10, "maxInconclusiveChecks": 2, "onInconclusive": "Hold"},
                )
                spec["model"]["uri"] = model.onnx.as_uri()  # fmt: skip
                lab.create_model_deployments(namespace, {name: spec})

                def stable(name: str = name) -> bool:
                    return any(i["metadata"]["name"] == name and ready(i) and i["status"].get("phase") == "Stable"
                               for i in lab.list_model_deployments(namespace)) and (
                        any(i.pod.startswith(f"{name}-stable-") for i in plane.instances()))  # fmt: skip

                wait_until(stable, timeout=120, what=f"{name} Stable", interval=0.5)
                with LoadGenerator(plane, name, body, rate=30.0, duration=180):
                    time.sleep(3.0)
                    lab.patch_model_deployments(namespace, [name], {"spec": {"model": {"version": "2.0.0-bad"}}})
                    first: float | None = None
                    checks: list[tuple[Any, Any]] = []
                    deadline = time.monotonic() + 120
                    while time.monotonic() < deadline:
                        item = next(i for i in lab.list_model_deployments(namespace) if i["metadata"]["name"] == name)
                        status = item.get("status") or {}
                        if first is None and status.get("canaryWeight"):
                            first = parse_time(status.get("stepStartedAt"))
                        check = (status.get("lastCheckTime"), (status.get("lastCheck") or {}).get("verdict"))
                        if first is not None and check[0] and check not in checks:
                            checks.append(check)
                        if first is not None and status.get("canaryWeight") == 0:
                            times.append(time.time() - first)
                            verdicts.append(" → ".join(str(v) for _, v in checks))
                            print(f"  rollback {k}: {times[-1]:.1f} s ({status.get('phase')})", flush=True)
                            break
                        time.sleep(0.2)
                    else:
                        raise RuntimeError(f"{name} not rolled back\n{operator.log_tail()}")
                lab.patch_model_deployments(namespace, [name], {"spec": {"replicas": 0}})
    flagger = interval * (1 + 1)
    bound = 2 * interval + 10
    return {"interval": interval, "steps": steps, "times": times, "verdicts": verdicts, "bound": bound,
            "flagger_worst": flagger,
            "load_before": load_before}  # fmt: skip


def render_rollback(r: dict[str, Any], cfg: Config) -> str:
    times = r["times"]
    p50, worst = statistics.median(times), max(times)
    return "\n".join([
        f"One ModelDeployment (gateway traffic, steps {r['steps']}, interval {r['interval']} s, minRequests 10, "
        "maxFailedChecks 1, onInconclusive Hold) with real `sluice-serving` processes for its kwok pods "
        "(`tests/harness/dataplane.py`), 30 requests/s; version `2.0.0-bad` answers half its requests with 500 "
        "(`SLUICE_FAULT_ERROR_RATE=0.5`). Measured: from the first step's start (`status.stepStartedAt`, when the "
        f"canary first gets traffic) to canary weight 0 as seen by polling every 0.2 s; {len(times)} repetitions.",
        "",
        "| figure | value |",
        "|---|---:|",
        "| each run (its checks' verdicts) | "
        + ", ".join(f"{t:.1f} s ({v})" for t, v in zip(times, r.get("verdicts", [""] * len(times)), strict=False))
        + " |",
        f"| p50 / max | {p50:.1f} s / {worst:.1f} s |",
        f"| sluice's design bound, 2 x interval + 10 s | {r['bound']} s |",
        f"| max / design bound | {worst / r['bound']:.2f} |",
        f"| Flagger's worst case for the same settings, interval x (threshold + 1), threshold 1 | "
        f"{r['flagger_worst']} s |",
        f"| p50 / Flagger's worst case | {p50 / r['flagger_worst']:.2f} |",
        f"| max / Flagger's worst case | {worst / r['flagger_worst']:.2f} |",
    ])  # fmt: skip


# -- serving soak -----------------------------------------------------------------------------------------------------


def wrk(url: str, body: Path, seconds: float, *, delay_ms: float | None = None) -> dict[str, Any]:
    script = REPO / "bench" / "paced.lua" if delay_ms is not None else REPO / "serving-image" / "bench" / "post.lua"
    env = {**os.environ, "BODY": str(body), "DELAY_MS": f"{delay_ms or 0:.3f}"}
    cmd = ["wrk", "-t1", "-c16", f"-d{int(seconds)}s", "--latency", "-s", str(script), url]
    text = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout

    def latency(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


def bench_soak(cfg: Config, work: Path) -> dict[str, Any]:
    model = make_classifier(work / "models")
    body_path = work / "body.json"
    body_path.write_bytes(rows_body(model.rows[:1], "FP32"))
    port = free_port()
    env = {"MODEL_URI": str(model.onnx), "MODEL_FORMAT": "onnx", "MODEL_NAME": "model", "MODEL_VERSION": "1",
           "MODEL_CACHE_DIR": str(work / "cache"), "SLUICE_HOST": "127.0.0.1", "SLUICE_LOG_LEVEL": "WARNING",
           "PORT": str(port)}  # fmt: skip
    command: list[str | Path] = ["env", *(f"{k}={v}" for k, v in env.items()), Path(PYTHON).parent / "sluice-serving"]
    server = launch("sluice-serving", command, work / "serving.log", die_with_parent=True)
    base = f"http://127.0.0.1:{port}/v2/models/model"
    load_before = load_average()
    try:
        wait_until(lambda: httpx.get(base + "/ready").status_code == 200, timeout=60, what="serving ready",
                   watched=[server])  # fmt: skip
        wrk(base + "/infer", body_path, 2)  # warm-up
        capacity = wrk(base + "/infer", body_path, 10)
        target = 0.8 * capacity["rps"]
        # wrk is closed-loop: each of the 16 connections waits `delay` after every answer; calibrate it once.
        delay = 1000 * 16 / target
        probe = wrk(base + "/infer", body_path, 5, delay_ms=delay)
        service_ms = max(0.0, 1000 * 16 / max(probe["rps"], 1.0) - delay)
        delay = max(0.0, 1000 * 16 / target - service_ms)
        cpu0 = cpu_seconds(server.pid)
        sampler = Sampler(server.pid, period=5.0).start()
        started = time.monotonic()
        chunks: list[dict[str, Any]] = []
        while time.monotonic() - started < cfg.soak_seconds - 1:
            # 30 s wrk runs back to back, the delay re-calibrated after each (the machine's load drifts)
            left = cfg.soak_seconds - (time.monotonic() - started)
            chunk = wrk(base + "/infer", body_path, max(1.0, min(30.0, left)), delay_ms=delay)
            chunk["delay_ms"] = delay
            chunks.append(chunk)
            service_ms = max(0.0, 1000 * 16 / max(chunk["rps"], 1.0) - delay)
            delay = max(0.0, 1000 * 16 / target - service_ms)
        ended = time.monotonic()
        soak = {
            "requests": sum(c["requests"] for c in chunks),
            "rps": sum(c["requests"] for c in chunks) / (ended - started),
            "p50_ms": statistics.median(c["p50_ms"] for c in chunks),
            "p99_ms": max(c["p99_ms"] for c in chunks),
            "non2xx": sum(c["non2xx"] for c in chunks),
            "socket_errors": sum(c["socket_errors"] for c in chunks),
            "chunks": chunks,
        }
        sampler.stop()
        cpu = 100 * (cpu_seconds(server.pid) - cpu0) / (ended - started)
        rss = [(t - started, m) for t, _, m in sampler.samples]
    finally:
        stop_processes([server])
    minutes = [t / 60 for t, _ in rss]
    values = [m for _, m in rss]
    slope = statistics.linear_regression(minutes, values).slope if len(rss) >= 3 else 0.0
    half = [m for t, m in rss if t >= (ended - started) / 2]
    return {"capacity": capacity, "target_rps": target, "delay_ms": delay, "soak": soak, "seconds": ended - started,
            "rss_first": values[0] if values else 0.0, "rss_last": values[-1] if values else 0.0,
            "rss_max": max(values, default=0.0), "rss_slope_mib_per_min": slope,
            "rss_second_half_range": (max(half) - min(half)) if half else 0.0, "cpu_percent": cpu,
            "load_before": load_before}  # fmt: skip


def render_soak(r: dict[str, Any], cfg: Config) -> str:
    cap, soak = r["capacity"], r["soak"]
    errors = soak["non2xx"] + soak["socket_errors"]
    return "\n".join([
        "One `sluice-serving` process (ONNX classifier, 20 features, batch 1, V2 JSON, metrics on), wrk on loopback "
        "with 16 connections. Capacity: `wrk -t1 -c16 -d10s` after a 2 s warm-up. Soak: the same connections, each "
        "pausing after every answer (wrk's `delay()` hook, `bench/paced.lua`), in 30 s runs back to back, the pause "
        f"calibrated on a 5 s probe and again after every run, for a rate near 80% of capacity, "
        f"{r['seconds'] / 60:.0f} minutes; RSS sampled every 5 s. (wrk2, which paces open-loop, is not packaged in "
        "Debian.)",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| capacity | {cap['rps']:.0f} req/s (p50 {cap['p50_ms']:.2f} ms, p99 {cap['p99_ms']:.2f} ms) |",
        f"| soak target (80%) / achieved | {r['target_rps']:.0f} / {soak['rps']:.0f} req/s |",
        f"| soak requests | {soak['requests']} |",
        f"| soak latency p50 (median of the 30 s runs) / p99 (worst run) | {soak['p50_ms']:.2f} / "
        f"{soak['p99_ms']:.2f} ms |",
        f"| errors (non-2xx + socket errors) | {errors} |",
        f"| server CPU | {r['cpu_percent']:.0f}% |",
        f"| RSS first / last / max | {r['rss_first']:.1f} / {r['rss_last']:.1f} / {r['rss_max']:.1f} MiB |",
        f"| RSS slope (least squares) | {r['rss_slope_mib_per_min']:+.3f} MiB/min |",
        f"| RSS range over the second half | {r['rss_second_half_range']:.1f} MiB |",
    ])  # fmt: skip


# -- the document -----------------------------------------------------------------------------------------------------

RUNNERS: dict[str, tuple[Callable[[Config, Path], dict[str, Any]], Callable[[dict[str, Any], Config], str]]] = {
    "scale": (bench_scale, render_scale),
    "rollouts": (bench_rollouts, render_rollouts),
    "rollback": (bench_rollback, render_rollback),
    "undo": (lambda _cfg, work: bench_undo(work), lambda result, _cfg: render_undo(result)),
    "soak": (bench_soak, render_soak),
}


def write_section(name: str, text: str) -> None:
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    doc = DOC.read_text()
    if start not in doc or end not in doc:
        raise SystemExit(f"{DOC.relative_to(REPO)} has no {start} ... {end} block")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, short durations (not published)")
    parser.add_argument("--doc", action="store_true", help="write the figures of a --quick run into the doc too")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    cfg = Config.make(args.quick)
    publish = not args.no_doc and (not args.quick or args.doc)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in only:
        run, render = RUNNERS[name]
        load = load_average()
        print(f"== {name}: load average (1/5/15 min) {load}", flush=True)
        began = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"sluice-bench-{name}-") as tmp:
            result = run(cfg, Path(tmp))
        took = time.monotonic() - began
        result["section_seconds"] = took
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
        header = (f"Run: {stamp()}; {machine()}; load average (1/5/15 min) {load} before the section; the section "
                  f"took {took / 60:.1f} min. Command: `{command_line(name, cfg)}`"
                  + (" (**quick**: reduced sizes)" if cfg.quick else "") + ".")  # fmt: skip
        text = f"{header}\n\n{render(result, cfg)}\n"
        print(text, flush=True)
        if publish:
            write_section(name, text)
            print(f"{name}: written to {DOC.relative_to(REPO)}", flush=True)


if __name__ == "__main__":
    main()
