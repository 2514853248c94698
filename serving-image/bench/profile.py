"""`make bench-profile`: where a batch-1 request's time goes in sluice_serving, in figures that a busy machine does
not move (docs/benchmarks.md, "Where the time goes").

- **Instructions per request, by stage** (callgrind, user space): one process loads the bench's model and runs
  each stage of the request path N times in turn, the real functions on the real bytes (HTTP parse, JSON decode,
  validation, predict, encode, metrics, write, and the whole request through the HTTP protocol to a sink
  transport); valgrind dumps its counts at a marker call (`os.getppid`) between stages, so each part of the
  output is one stage's N runs. The whole request's count minus the stages' is the glue between them.
- **Garbage collections per 1,000 requests** by generation, in the same process (uninstrumented figures,
  deterministic for a given allocation pattern), and the collector's thresholds.
- **Syscalls and threads per request** of the real server processes (sluice_serving and, when `make
  bench-serving` has made its virtualenv, the bare-ASGI floor), from `strace -c -f` while wrk sends batch-1
  requests on 16 connections: the count of each syscall divided by the requests wrk completed, and each thread
  with its CPU ticks and context switches over the run (a pool thread that wakes per request shows here).

Usage: `python serving-image/bench/profile.py [--requests N] [--only stages,syscalls] [--formats onnx,sklearn]`;
prints a Markdown report. Needs valgrind (Debian package), strace and wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STAGES = ("HTTP parse", "JSON decode", "validation", "predict", "encode", "metrics", "write", "whole request")


class _Sink:
    """A transport that keeps nothing: what the server writes is counted, not sent."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool:
        return False


def _raw_request(body: bytes) -> bytes:
    """The request as wrk sends it (bench/post.lua)."""
    head = (
        "POST /v2/models/model/infer HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _stage_steps(model_path: Path, fmt: str, body: bytes) -> tuple[list[Callable[[], object]], Any]:
    """One callable per stage (STAGES), each the server's own code on this request; and the Metrics."""
    import orjson

    from sluice_serving.app import App
    from sluice_serving.config import Config
    from sluice_serving.metrics import Metrics
    from sluice_serving.models import ModelFile, load_model
    from sluice_serving.protocol import parse_infer_doc
    from sluice_serving.server import HttpProtocol, Server

    cfg = Config.from_env()
    metrics = Metrics(cfg)
    app = App(cfg, metrics)
    model = load_model(ModelFile.read(model_path), fmt, True, cfg.num_threads)
    width = model.inputs[0].shape[1] if len(model.inputs[0].shape) == 2 else -1
    metrics.model_loaded(0.1, model.feature_names, width, model.classifier)
    app.set_model(model)
    server = Server(app)
    whole = HttpProtocol(server)
    whole.connection_made(_Sink())  # type: ignore[arg-type]
    parse_only = HttpProtocol(server)
    parse_only.connection_made(_Sink())  # type: ignore[arg-type]
    parse_only._process = lambda request: None  # type: ignore[method-assign]
    raw = _raw_request(body)
    doc = orjson.loads(body)
    request = parse_infer_doc(doc, model.inputs, model.outputs, app.strings)
    results = model.predict(request.inputs, request.outputs)
    reply = app._infer_reply(request, results, None)
    x, y = next(iter(request.inputs.values())), results[model.prediction_output]

    def observe() -> None:
        metrics.record("infer", 200, 0.0004)
        metrics.distributions.observe(x, y)

    return [
        lambda: parse_only.data_received(raw),
        lambda: orjson.loads(body),
        lambda: parse_infer_doc(doc, model.inputs, model.outputs, app.strings),
        lambda: model.predict(request.inputs, request.outputs),
        lambda: app._infer_reply(request, results, None),
        observe,
        lambda: whole._write(reply, False, False),
        lambda: whole.data_received(raw),
    ], metrics


async def _run_stages(model_path: Path, fmt: str, body: bytes, n: int) -> dict[str, Any]:
    """The child under callgrind: each stage n times between marker calls; returns the GC counts."""
    steps, metrics = await _stage_steps(model_path, fmt, body)
    for step in steps:  # warm up, then start every stage on an empty metrics buffer
        for _ in range(64):
            step()
    metrics.distributions.flush()
    gc.collect()
    gc.freeze()  # as the server does once the model is loaded
    collections: dict[str, list[int]] = {}
    for name, step in zip(STAGES, steps, strict=True):
        os.getppid()  # marker: callgrind dumps the counts so far
        before = [s["collections"] for s in gc.get_stats()]
        for _ in range(n):
            step()
        collections[name] = [s["collections"] - b for s, b in zip(gc.get_stats(), before, strict=True)]
    os.getppid()
    return {"gc": collections, "thresholds": list(gc.get_threshold())}


def _child(args: argparse.Namespace) -> None:
    try:
        import uvloop

        result = uvloop.run(_run_stages(Path(args.model), args.fmt, Path(args.body).read_bytes(), args.requests))
    except ImportError:
        result = asyncio.run(_run_stages(Path(args.model), args.fmt, Path(args.body).read_bytes(), args.requests))
    Path(args.out).write_text(json.dumps(result))


def _server_env(work: Path, fmt: str) -> dict[str, str]:
    import hashlib

    path = work / ("model.onnx" if fmt == "onnx" else "model.joblib")
    return {
        **os.environ,
        "MODEL_URI": str(path), "MODEL_FORMAT": fmt, "MODEL_NAME": "model", "MODEL_VERSION": "1",
        "MODEL_DIGEST": "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(),
        "MODEL_CACHE_DIR": str(work / "cache"), "SLUICE_HOST": "127.0.0.1", "SLUICE_LOG_LEVEL": "WARNING",
        "PYTHONHASHSEED": "0",
    }  # fmt: skip


def stages(work: Path, fmt: str, n: int) -> dict[str, Any]:
    """Instructions per request of each stage (callgrind) and GC collections per 1,000 requests."""
    out = Path(tempfile.mkdtemp(dir=work))
    model = work / ("model.onnx" if fmt == "onnx" else "model.joblib")
    cmd = [
        "valgrind", "--tool=callgrind", "--dump-before=getppid", "--separate-threads=yes",
        f"--callgrind-out-file={out}/cg.out",
        sys.executable, __file__, "--child", "--model", str(model), "--fmt", fmt,
        "--body", str(work / f"{fmt}-1.json"), "--requests", str(n), "--out", str(out / "gc.json"),
    ]  # fmt: skip
    subprocess.run(cmd, env=_server_env(work, fmt), check=True, capture_output=True)
    parts = {}
    # Only the main thread's counts: under valgrind (which serialises threads) a thread onnxruntime starts with
    # the model can run during a stage and add instructions in proportion to its wall time, not to its work.
    for dump in out.glob("cg.out.*-01"):
        text = dump.read_text(errors="replace")
        part = int(re.search(r"^part: (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
        parts[part] = int(re.search(r"^summary: (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    # part 1 ends at the first marker (start-up); parts 2.. are the stages in order
    per_request = {name: parts[i + 2] / n for i, name in enumerate(STAGES)}
    gc_counts = json.loads((out / "gc.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {"instructions": per_request, **gc_counts}


def _threads(pid: int) -> dict[str, dict[str, int]]:
    threads = {}
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        try:
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = (task / "status").read_text()
            threads[f"{task.name} {(task / 'comm').read_text().strip()}"] = {
                "cpu_ticks": int(stat[11]) + int(stat[12]),
                "ctx_switches": sum(int(v) for v in re.findall(r"ctxt_switches:\s+(\d+)", status)),
            }
        except OSError:
            continue
    return threads


def whole(command: list[str], env: dict[str, str], port: int, body: Path, seconds: int) -> dict[str, Any]:
    """User-space instructions per request of a whole server process (callgrind, counting only while wrk sends
    batch-1 requests on 16 connections): the HTTP server, the event loop and the app, as deployed."""
    import run

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        devnull = subprocess.DEVNULL
        proc = subprocess.Popen(
            [*valgrind, *command], env={**env, "PORT": str(port)}, cwd=tmp, stdout=devnull, stderr=devnull,
            start_new_session=True,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}/v2/models/model"
            run.wait_ready(base + "/ready", proc, timeout=900)
            run.wrk(base + "/infer", body, 16, 2)  # warm-up
            subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
            result = run.wrk(base + "/infer", body, 16, seconds)
            subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=120)
        text = next(Path(tmp).glob("cg.out.*")).read_text(errors="replace")
    requests = result["rps"] * seconds
    summary = int(re.search(r"^summary: (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    return {"requests": requests, "per_request": summary / requests}


def syscalls(command: list[str], env: dict[str, str], port: int, body: Path, seconds: int) -> dict[str, Any]:
    """Syscalls per request and the threads of one server process under wrk (16 connections, batch 1)."""
    import run

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(command, env={**env, "PORT": str(port)}, cwd=tmp, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}/v2/models/model"
            run.wait_ready(base + "/ready", proc)
            run.wrk(base + "/infer", body, 16, 1)  # warm-up
            before = _threads(proc.pid)
            trace = Path(tmp) / "strace.txt"
            tracer = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", str(trace), "-p", str(proc.pid)])
            time.sleep(0.5)
            result = run.wrk(base + "/infer", body, 16, seconds)
            requests = result["rps"] * seconds
            after = _threads(proc.pid)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=30)
            counts = {}
            for line in trace.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                    counts[fields[-1]] = int(fields[3])
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    threads = {
        name: {k: after[name][k] - before.get(name, {k: 0})[k] for k in ("cpu_ticks", "ctx_switches")} for name in after
    }
    per_request = {name: count / requests for name, count in sorted(counts.items(), key=lambda kv: -kv[1])}
    return {"requests": requests, "syscalls": per_request, "threads": threads}


def report(results: dict[str, Any]) -> str:
    lines = []
    stage_runs = {fmt: r for fmt, r in results.items() if "instructions" in r}
    if stage_runs:
        lines += ["| stage | " + " | ".join(f"{fmt} instructions" for fmt in stage_runs) + " |",
                  "|---|" + "---:|" * len(stage_runs)]  # fmt: skip
        for name in STAGES:
            lines.append(f"| {name} | " + " | ".join(f"{r['instructions'][name]:,.0f}" for r in stage_runs.values())
                         + " |")  # fmt: skip
        glue = [r["instructions"]["whole request"] - sum(r["instructions"][s] for s in STAGES[:-1])
                for r in stage_runs.values()]  # fmt: skip
        lines.append("| glue (whole request minus the stages) | " + " | ".join(f"{g:,.0f}" for g in glue) + " |")
        lines.append("")
        for fmt, r in stage_runs.items():
            per_k = [round(c * 1000 / r["n"], 2) for c in r["gc"]["whole request"]]
            lines.append(f"- {fmt}: garbage collections per 1,000 whole requests (gen 0/1/2): {per_k}; thresholds "
                         f"{r['thresholds']}")  # fmt: skip
    for label, r in results.items():
        if label.startswith("whole "):
            cells = ", ".join(
                f"{server} {v['per_request']:,.0f} ({v['requests']:.0f} requests)" for server, v in r.items()
            )
            fmt = label.removeprefix("whole ")
            lines += ["", f"- {fmt}, whole server process, user-space instructions per request: {cells}"]
        if "syscalls" not in r:
            continue
        calls = ", ".join(f"{name} {v:.3f}" for name, v in r["syscalls"].items() if v >= 0.001)
        lines += ["", f"**{label}** ({r['requests']:.0f} requests under strace): syscalls per request: {calls}",
                  "", "| thread | CPU ticks | context switches |", "|---|---:|---:|"]  # fmt: skip
        lines += [f"| {name} | {t['cpu_ticks']} | {t['ctx_switches']} |" for name, t in r["threads"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4096, help="runs of each stage under callgrind")
    parser.add_argument("--only", default="stages,whole,syscalls")
    parser.add_argument("--formats", default="onnx,sklearn")
    parser.add_argument("--seconds", type=int, default=3, help="wrk's run under strace")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for flag in ("--model", "--fmt", "--body", "--out"):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    import run

    only = set(args.only.split(","))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sluice-profile-") as tmp:
        work = Path(tmp)
        run.make_models(work)
        for fmt in args.formats.split(","):
            if "stages" in only:
                print(f"callgrind: {fmt}, {args.requests} runs of each stage", flush=True)
                results[fmt] = {**stages(work, fmt, args.requests), "n": args.requests}
            env = _server_env(work, fmt)
            floor = run.CACHE / "floor"
            floor_env = {**env, "BENCH_MODEL": env["MODEL_URI"], "BENCH_FORMAT": fmt}
            if "whole" in only:
                print(f"callgrind: whole servers, {fmt}", flush=True)
                port = run.free_port()
                results[f"whole {fmt}"] = {
                    "sluice_serving": whole(
                        [str(run.REPO / ".venv/bin/sluice-serving")],
                        env,
                        port,
                        work / f"{fmt}-1.json",
                        args.seconds * 10,
                    )
                }
                if (floor / "bin" / "uvicorn").exists():
                    port = run.free_port()
                    results[f"whole {fmt}"]["bare ASGI floor"] = whole(
                        run.floor_command(floor, port), floor_env, port, work / f"{fmt}-1.json", args.seconds * 10
                    )
            if "syscalls" in only:
                results[f"sluice_serving ({fmt})"] = syscalls(
                    [str(run.REPO / ".venv/bin/sluice-serving")], env, run.free_port(), work / f"{fmt}-1.json",
                    args.seconds)  # fmt: skip
                if (floor / "bin" / "uvicorn").exists():
                    port = run.free_port()
                    results[f"bare ASGI floor ({fmt})"] = syscalls(
                        run.floor_command(floor, port), floor_env, port, work / f"{fmt}-1.json", args.seconds
                    )
    print(report(results))


if __name__ == "__main__":
    main()
