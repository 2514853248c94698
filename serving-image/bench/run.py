"""`make bench-serving`: sluice_serving vs Seldon MLServer vs KServe vs a bare ASGI app vs in-process
predict(), side by side on this machine, with wrk on loopback. Writes the table into docs/benchmarks.md.

Models and payloads are made in a temporary directory; MLServer and KServe live in their own
virtualenvs under ~/.cache/sluice-bench (created on first use, with their own pins), and so does the bare-ASGI
floor, installed from its hashed lock (floor.lock: current uvicorn[standard] with the serving lock's numpy,
onnxruntime, scikit-learn and orjson, the versions sluice_serving runs with). Environment: BENCH_DURATION (seconds
per wrk run, default 5), BENCH_ONLY (comma-separated server names), BENCH_NO_DOC=1 (print only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime as ort
import runtimes
from runtimes import GRPC, TREES
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOC = REPO / "docs" / "benchmarks.md"
CACHE = Path(os.environ.get("SLUICE_BENCH_CACHE", Path.home() / ".cache" / "sluice-bench"))
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
CONNECTIONS = (2, 16)
BATCHES = (1, 32)
FEATURES = 20
FORMATS = ("sklearn", "onnx", *TREES, GRPC)
SKLEARN_VERSION = __import__("sklearn").__version__
VENVS = {
    "mlserver": [
        "mlserver==1.7.1",
        "mlserver-sklearn==1.7.1",
        "mlserver-xgboost==1.7.1",
        "mlserver-lightgbm==1.7.1",
        "uvloop<0.22",
        f"scikit-learn=={SKLEARN_VERSION}",
    ],
    "kserve": ["kserve", "onnxruntime", f"scikit-learn=={SKLEARN_VERSION}"],
    "floor": ["--require-hashes", "-r", str(HERE / "floor.lock")],
}
SHARED = ("numpy", "onnxruntime", "scikit-learn", "orjson")
"""The libraries every server's prediction and JSON run on: the floor must have sluice_serving's versions."""
OWN = ("sluice-serving", "uvicorn", "uvloop", "httptools", "mlserver", "mlserver-sklearn", "kserve")
START_MARK = "<!-- bench-serving:start -->"
END_MARK = "<!-- bench-serving:end -->"


@dataclass
class Server:
    """How to start one server under test."""

    name: str
    fmt: str
    command: Callable[[int, Path], list[str]]
    env: Callable[[Path], dict[str, str]] = lambda _: {}
    setup: Callable[[int, Path], None] = lambda _port, _dir: None
    results: dict[str, Any] = field(default_factory=dict)
    grpc_port: int = 0
    """Set for the gRPC rows: the port their load goes to (the HTTP port answers readiness)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_venv(name: str) -> Path:
    venv = CACHE / name
    marker = venv / ".sluice-bench-ok"
    wanted = "\n".join(VENVS[name]) + ("\n" + (HERE / "floor.lock").read_text() if name == "floor" else "")
    if marker.exists() and marker.read_text() == wanted:
        return venv
    print(f"creating {venv} ({' '.join(VENVS[name])})", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    python = shutil.which("python3.11") or sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", *VENVS[name]], check=True)
    marker.write_text(wanted)
    return venv


def versions(python: Path | str) -> dict[str, str]:
    """The versions of the shared libraries and the server's own packages in one environment."""
    code = (
        "import importlib.metadata as m, json, sys\nout = {}\nfor p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(out))"
    )
    done = subprocess.run([str(python), "-c", code, *SHARED, *OWN], capture_output=True, text=True, check=True)
    found: dict[str, str] = json.loads(done.stdout)
    return found


def floor_command(venv: Path, port: int) -> list[str]:
    """The bare-ASGI floor under uvicorn (uvloop, httptools, no access log) from `venv`."""
    return [str(venv / "bin/uvicorn"), "bare_asgi:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
            "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
            "warning"]  # fmt: skip


def make_models(work: Path) -> dict[str, Any]:
    x, y = make_classification(n_samples=4000, n_features=FEATURES, n_informative=10, random_state=7)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    joblib.dump(model, work / "model.joblib")
    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, FEATURES]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    (work / "model.onnx").write_bytes(onx.SerializeToString())
    predicts = {"sklearn": model.predict, "onnx": model.predict, **runtimes.make_trees(work, x, y)}
    rows = np.random.default_rng(1).normal(size=(32, FEATURES)).round(6)
    payloads: dict[str, Any] = {}
    for batch in BATCHES:
        payloads[f"{GRPC}-{batch}"] = (runtimes.grpc_payload(work, rows[:batch]), model.predict(rows[:batch]).tolist())
    for fmt, datatype, output in (("sklearn", "FP64", "predict"), ("onnx", "FP32", "label"),
                                  ("xgboost", "FP32", "predict"), ("lightgbm", "FP64", "predict")):  # fmt: skip
        for batch in BATCHES:
            data = rows[:batch]
            doc = {
                "inputs": [{"name": "input", "shape": [batch, FEATURES], "datatype": datatype,
                            "data": data.ravel().tolist()}],
                "outputs": [{"name": output}],
            }  # fmt: skip
            path = work / f"{fmt}-{batch}.json"
            path.write_text(json.dumps(doc))
            payloads[f"{fmt}-{batch}"] = (path, predicts[fmt](data).tolist())
    return {"model": model, "payloads": payloads, "x": rows}


def floor(work: Path, x: np.ndarray[Any, Any]) -> dict[str, Any]:
    """In-process predict(): per-call latency on one thread, no HTTP, no JSON."""
    model = joblib.load(work / "model.joblib")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(work / "model.onnx"), options, providers=["CPUExecutionProvider"])
    results = {}
    trees = runtimes.tree_floors(work, x)
    for fmt in ("sklearn", "onnx", *TREES):
        for batch in BATCHES:
            xb = x[:batch] if fmt == "sklearn" else x[:batch].astype(np.float32)
            call = trees[fmt](batch) if fmt in TREES else (lambda xb=xb: model.predict(xb)) if fmt == "sklearn" else (
                lambda xb=xb: session.run(["label"], {"input": xb}))  # fmt: skip
            for _ in range(200):
                call()
            times = []
            deadline = time.perf_counter() + 1.0
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                call()
                times.append(time.perf_counter() - t)
            times.sort()
            results[f"{fmt}-{batch}"] = {
                "rps": len(times) / sum(times),
                "p50_ms": times[len(times) // 2] * 1e3,
                "p99_ms": times[int(len(times) * 0.99)] * 1e3,
            }
    return results


def post(url: str, body: bytes) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"not ready after {timeout}s: {url}")


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return total / 1024


def wrk(url: str, body: Path, connections: int, seconds: int) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(HERE / "post.lua"), url]
    out = subprocess.run(cmd, env={**os.environ, "BODY": str(body)}, capture_output=True, text=True, check=True)
    text = out.stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        assert m, text
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {
        "rps": rps,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def servers(work: Path, mlserver: Path | None, kserve: Path | None, floor_venv: Path | None) -> list[Server]:
    digest = "sha256:" + hashlib.sha256((work / "model.joblib").read_bytes()).hexdigest()
    sluice = [str(REPO / ".venv/bin/sluice-serving")]
    out: list[Server] = []
    variants = (("sluice_serving", "1", "1"), ("sluice_serving 2 workers", "2", "1"),
                ("sluice_serving batching", "1", runtimes.BATCHING))  # fmt: skip
    for (label, workers, batch_size), group in itertools.product(variants, FORMATS):
        fmt = "sklearn" if group == GRPC else group
        grpc_port = free_port() if group == GRPC else 0
        out.append(Server(
            f"{label} ({group})", group, lambda port, d: sluice,
            lambda d, fmt=fmt, workers=workers, batch_size=batch_size, grpc_port=grpc_port: {
                "MODEL_URI": str(work / runtimes.FILES[fmt]), "MODEL_FORMAT": fmt, "MODEL_NAME": "model",
                "MODEL_VERSION": "1", "MODEL_DIGEST": digest if fmt == "sklearn" else "",
                "MODEL_CACHE_DIR": str(d / "cache"), "SLUICE_HOST": "127.0.0.1", "SLUICE_LOG_LEVEL": "WARNING",
                "SLUICE_WORKERS": workers, "SLUICE_MAX_BATCH_SIZE": batch_size,
                "SLUICE_GRPC_PORT": str(grpc_port) if grpc_port else "",
            },
            grpc_port=grpc_port,
        ))  # fmt: skip
    if mlserver is not None:
        for tuned, group in itertools.product((False, True), ("sklearn", *TREES, GRPC)):
            fmt = "sklearn" if group == GRPC else group
            grpc_port = free_port()

            def setup(port: int, d: Path, tuned: bool = tuned, fmt: str = fmt, grpc_port: int = grpc_port) -> None:
                settings: dict[str, Any] = {
                    "host": "127.0.0.1", "http_port": port, "grpc_port": grpc_port,
                    "metrics_port": free_port(), "metrics_dir": str(d / "metrics"),
                }  # fmt: skip
                if tuned:
                    settings.update(parallel_workers=0, debug=False, gzip_enabled=False)
                (d / "settings.json").write_text(json.dumps(settings))
                model = {"name": "model", "implementation": runtimes.MLSERVER_RUNTIMES[fmt],
                         "parameters": {"uri": str(work / runtimes.FILES[fmt]), "version": "1"}}  # fmt: skip
                (d / "model-settings.json").write_text(json.dumps(model))

            out.append(Server(
                f"MLServer {'tuned' if tuned else 'default'} ({group})", group,
                lambda port, d: [str(mlserver / "bin/mlserver"), "start", str(d)], setup=setup,
                grpc_port=grpc_port if group == GRPC else 0,
            ))  # fmt: skip
    if kserve is not None:
        for fmt, uri in (("sklearn", "model.joblib"), ("onnx", "model.onnx")):
            env = {"BENCH_MODEL": str(work / uri), "BENCH_FORMAT": fmt}
            out.append(Server(
                f"KServe ({fmt})", fmt,
                lambda port, d: [str(kserve / "bin/python"), str(HERE / "kserve_server.py"),
                                 "--http_port", str(port), "--grpc_port", str(free_port())],
                lambda d, env=env: env,
            ))  # fmt: skip
    if floor_venv is not None:
        for fmt, uri in (("sklearn", "model.joblib"), ("onnx", "model.onnx")):
            env = {"BENCH_MODEL": str(work / uri), "BENCH_FORMAT": fmt}
            out.append(Server(
                f"bare ASGI, uvicorn ({fmt})", fmt, lambda port, d: floor_command(floor_venv, port),
                lambda d, env=env: env,
            ))  # fmt: skip
    return out


@dataclass
class Running:
    """A started server under test."""

    server: Server
    proc: subprocess.Popen[bytes]
    base: str
    log: Path


def start_server(server: Server, work: Path, payloads: dict[str, Any]) -> Running | None:
    """Start one server alone (so its cold start is measured on a quiet machine) and check its answers."""
    port = free_port()
    d = Path(tempfile.mkdtemp(dir=work))
    server.setup(port, d)
    env = {**os.environ, "PORT": str(port), **server.env(d)}
    log = d / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(server.command(port, d), cwd=d, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    running = Running(server, proc, f"http://127.0.0.1:{port}/v2/models/model", log)
    try:
        server.results["cold_start_s"] = wait_ready(running.base + "/ready", proc)
        for batch in BATCHES:
            path, expected = payloads[f"{server.fmt}-{batch}"]
            if server.grpc_port:
                status, got = 200, runtimes.grpc_answer(f"127.0.0.1:{server.grpc_port}", path)
            else:
                status, doc = post(running.base + "/infer", path.read_bytes())
                got = doc["outputs"][0]["data"] if status == 200 else doc
            # Labels, or (MLServer's LightGBM runtime) the probability of class 1.
            if status != 200 or [int(float(v) > 0.5) for v in got] != expected:
                raise RuntimeError(f"wrong answer for batch {batch}: {status} {got}")
    except Exception as exc:
        server.results["error"] = str(exc)
        print(f"  {server.name}: FAILED: {exc}\n{log.read_text()[-2000:]}", flush=True)
        stop_server(running)
        return None
    print(f"  {server.name:32} ready in {server.results['cold_start_s']:.2f} s", flush=True)
    return running


def idle_share(seconds: float = 1.0) -> float:
    """The machine's idle CPU share over `seconds` (/proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(total1 - total0, 1)


def settle(timeout: float = 30.0) -> float:
    """Wait until the servers just started have finished their start-up work (the machine is 90% idle over a
    second), at most `timeout` seconds: the first cell must not measure one server while others still load
    (docs/benchmarks.md, "The scikit-learn variance"). Returns the last idle share."""
    deadline = time.monotonic() + timeout
    share = idle_share()
    while share < 0.9 and time.monotonic() < deadline:
        share = idle_share()
    return share


def measure(running: Running, batch: int, conns: int, payloads: dict[str, Any]) -> None:
    server = running.server
    path, _ = payloads[f"{server.fmt}-{batch}"]
    if server.grpc_port:
        target = f"127.0.0.1:{server.grpc_port}"
        runtimes.ghz_load(CACHE, target, path, conns, 1)  # warm-up
        result = runtimes.ghz_load(CACHE, target, path, conns, DURATION)
    else:
        wrk(running.base + "/infer", path, conns, 1)  # warm-up
        result = wrk(running.base + "/infer", path, conns, DURATION)
    server.results[f"b{batch}-c{conns}"] = result
    print(f"  {server.name:32} batch {batch:2} conns {conns:2}: {result['rps']:8.0f} req/s "
          f"p50 {result['p50_ms']:6.2f} ms p99 {result['p99_ms']:6.2f} ms"
          f"{'  NON-2XX ' + str(result['non2xx']) if result['non2xx'] else ''}", flush=True)  # fmt: skip


def stop_server(running: Running) -> None:
    os.killpg(running.proc.pid, signal.SIGTERM)
    try:
        running.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(running.proc.pid, signal.SIGKILL)
        running.proc.wait()


def table(servers_: list[Server], floors: dict[str, Any]) -> str:
    head = ("| server | model | batch | conns | req/s | p50 ms | p99 ms | RSS MiB | cold start s |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    rows = []
    for fmt in FORMATS:
        model = "sklearn, gRPC" if fmt == GRPC else fmt
        for batch in BATCHES:
            for conns in CONNECTIONS:
                for s in servers_:
                    r = s.results.get(f"b{batch}-c{conns}")
                    if s.fmt != fmt or r is None:
                        continue
                    flag = f" ({r['non2xx']} non-2xx)" if r["non2xx"] else ""
                    rows.append(f"| {s.name.rsplit(' (', 1)[0]} | {model} | {batch} | {conns} | {r['rps']:.0f}{flag} | "
                                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {s.results.get('rss_mib', 0):.0f} | "
                                f"{s.results['cold_start_s']:.2f} |")  # fmt: skip
            f = floors.get(f"{fmt}-{batch}")
            if f is not None:
                rows.append(f"| in-process predict() | {fmt} | {batch} | 1 thread | {f['rps']:.0f} | "
                                f"{f['p50_ms']:.3f} | {f['p99_ms']:.3f} | | |")  # fmt: skip
    failed = [f"- {s.name}: {s.results['error']}" for s in servers_ if "error" in s.results]
    return "\n".join([head, *rows, *(["", "Failed:", *failed] if failed else [])])


def verdict(servers_: list[Server]) -> str:
    def get(name: str) -> dict[str, Any] | None:
        for s in servers_:
            if s.name == name:
                return s.results.get("b1-c16")  # type: ignore[no-any-return]
        return None

    lines = [_targets("sluice_serving", get("sluice_serving (sklearn)"), get)]
    if get("sluice_serving 2 workers (sklearn)") is not None:
        lines.append(_targets("sluice_serving, SLUICE_WORKERS=2,", get("sluice_serving 2 workers (sklearn)"), get))
    lines += [runtimes.peer_targets(fmt, get) for fmt in (*TREES, GRPC)]
    batching = [line for fmt in FORMATS if (line := runtimes.batching_line(fmt, get)) is not None]
    if batching:
        lines.append(f"Adaptive batching (SLUICE_MAX_BATCH_SIZE={runtimes.BATCHING}) against none, one worker each, "
                     "batch 1, 16 connections:\n" + "\n".join(batching))  # fmt: skip
    lines += [_floor_targets(fmt, get(f"sluice_serving ({fmt})"), get(f"bare ASGI, uvicorn ({fmt})"))
              for fmt in ("sklearn", "onnx")]  # fmt: skip
    return "\n\n".join(lines)


def _floor_targets(fmt: str, ours: dict[str, Any] | None, bare: dict[str, Any] | None) -> str:
    """One process, metrics and validation on, against the fair floor of the same run (issue 20)."""
    if ours is None or bare is None:
        return f"Targets against the floor ({fmt}): not checked (a server is missing from this run)."
    checks = [
        (f"req/s >= 0.9x the floor's ({bare['rps']:.0f})", ours["rps"] >= 0.9 * bare["rps"]),
        (f"p99 <= 1.5x the floor's ({bare['p99_ms']:.2f} ms)", ours["p99_ms"] <= 1.5 * bare["p99_ms"]),
    ]
    lines = [f"- {text}: {'met' if ok else 'NOT met'}" for text, ok in checks]
    return (f"Targets against the bare-ASGI floor ({fmt}, batch 1, 16 connections; sluice_serving "
            f"{ours['rps']:.0f} req/s, p99 {ours['p99_ms']:.2f} ms):\n" + "\n".join(lines))  # fmt: skip


def environments(pythons: dict[str, Path | str]) -> str:
    """Each environment's shared libraries and own packages, and whether the floor's equal sluice_serving's."""
    found = {label: versions(python) for label, python in pythons.items()}
    lines = ["| environment | " + " | ".join(SHARED) + " | own packages |", "|---|" + "---|" * (len(SHARED) + 1)]
    for label, have in found.items():
        mine = ("sluice-serving", "uvloop", "httptools") if "sluice-serving" in have else OWN  # .venv has kserve too
        own = ", ".join(f"{p} {have[p]}" for p in mine if p in have)
        lines.append(f"| {label} | " + " | ".join(have.get(p, "-") for p in SHARED) + f" | {own} |")
    floor_ = found.get("bare ASGI floor (floor.lock)")
    if floor_ is not None:
        ours = found["sluice_serving (.venv)"]
        same = all(floor_.get(p) == ours.get(p) for p in SHARED)
        unfair = "DIFFER from sluice_serving's: its rows are not a fair comparison (make locks, make install)."
        lines += ["", "The floor's shared libraries " + ("equal sluice_serving's." if same else unfair)]
    return "\n".join(lines)


def _targets(label: str, ours: dict[str, Any] | None, get: Callable[[str], dict[str, Any] | None]) -> str:
    others = [r for n in ("MLServer default (sklearn)", "MLServer tuned (sklearn)", "KServe (sklearn)")
              if (r := get(n)) is not None]  # fmt: skip
    if ours is None or not others:
        return "Targets: not checked (a server is missing from this run)."
    best = max(others, key=lambda r: r["rps"])
    best_p99 = min(r["p99_ms"] for r in others)
    checks = [
        (f"req/s >= 2x best of MLServer/KServe ({best['rps']:.0f})", ours["rps"] >= 2 * best["rps"]),
        (f"p99 <= half of their best p99 ({best_p99:.2f} ms)", ours["p99_ms"] <= best_p99 / 2),
    ]
    lines = [f"- {text}: {'met' if ok else 'NOT met'}" for text, ok in checks]
    return (f"Targets (sklearn, batch 1, 16 connections; {label} {ours['rps']:.0f} req/s, "
            f"p99 {ours['p99_ms']:.2f} ms):\n" + "\n".join(lines))  # fmt: skip


def main() -> None:
    load_before = os.getloadavg()[0]
    only = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()}
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    mlserver = ensure_venv("mlserver") if not only or "mlserver" in only else None
    kserve = ensure_venv("kserve") if not only or "kserve" in only else None
    floor_venv = ensure_venv("floor") if not only or "asgi" in only else None
    pythons = {"sluice_serving (.venv)": sys.executable, "bare ASGI floor (floor.lock)": floor_venv,
               "MLServer": mlserver, "KServe": kserve}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        work = Path(tmp)
        made = make_models(work)
        floors = floor(work, made["x"])
        todo = [s for s in servers(work, mlserver, kserve, floor_venv)
                if not only or any(o.lower() in s.name.lower() for o in only)]  # fmt: skip
        if any(s.grpc_port for s in todo):
            runtimes.ensure_ghz(CACHE)
        print("starting servers one at a time (cold start):", flush=True)
        running = [r for r in (start_server(s, work, made["payloads"]) for s in todo) if r is not None]
        idle = settle()
        print(f"machine {idle:.0%} idle before the first cell", flush=True)
        try:
            # Cell by cell, every server in turn (alternating the order), so that load from elsewhere on
            # the machine falls on all of them alike.
            cells = [(fmt, b, c) for fmt in FORMATS for b in BATCHES for c in CONNECTIONS]
            for n, (fmt, batch, conns) in enumerate(cells):
                turn = [r for r in running if r.server.fmt == fmt]
                for r in turn if n % 2 == 0 else reversed(turn):
                    measure(r, batch, conns, made["payloads"])
            for r in running:
                r.server.results["rss_mib"] = tree_rss_mib(r.proc.pid)
        finally:
            for r in running:
                stop_server(r)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (f"{stamp}; {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
               f"scikit-learn {SKLEARN_VERSION}, onnxruntime {ort.__version__}, "
               f"xgboost {runtimes.xgboost.__version__}, lightgbm {runtimes.lightgbm.__version__}; "
               f"wrk -t1 (gRPC: ghz --cpus 1), {DURATION} s per cell after a 1 s warm-up; "
               f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
               f"{idle:.0%} idle before the first cell"
               )  # fmt: skip
    envs = environments({label: Path(venv) / "bin/python" if label != "sluice_serving (.venv)" else venv
                         for label, venv in pythons.items() if venv is not None})  # fmt: skip
    text = f"Run: {machine}.\n\n{table(todo, floors)}\n\n{envs}\n\n{verdict(todo)}\n"
    print("\n" + text)
    (CACHE / "last-run.json").write_text(json.dumps({s.name: s.results for s in todo}, indent=1))
    if os.environ.get("BENCH_NO_DOC") or only:
        return
    doc = DOC.read_text()
    start, end = doc.index(START_MARK) + len(START_MARK), doc.index(END_MARK)
    DOC.write_text(doc[:start] + "\n" + text + doc[end:])
    print(f"table written to {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
