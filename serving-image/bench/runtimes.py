"""The rows `make bench-serving` has beyond scikit-learn and ONNX over REST (issue 17): XGBoost and LightGBM models,
trained on the same data, against MLServer's mlserver-xgboost and mlserver-lightgbm runtimes; the scikit-learn model
over gRPC against MLServer's gRPC (load from ghz, a Go gRPC load generator built on first use from its pinned Go
module, the same client for both); and sluice_serving with adaptive batching on (SLUICE_MAX_BATCH_SIZE) beside it
off. run.py runs them in the same run, cell by cell."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import xgboost

from sluice_serving.oip import grpc_predict_v2_pb2 as pb

HERE = Path(__file__).resolve().parent
PROTO = HERE.parents[0] / "src" / "sluice_serving" / "oip" / "grpc_predict_v2.proto"
GHZ = "github.com/bojand/ghz/cmd/ghz@v0.121.0"
TREES = ("xgboost", "lightgbm")
GRPC = "grpc"
"""The row group of the scikit-learn model over gRPC."""
FILES = {"sklearn": "model.joblib", "onnx": "model.onnx", "xgboost": "model.json", "lightgbm": "model.txt"}
MLSERVER_RUNTIMES = {
    "sklearn": "mlserver_sklearn.SKLearnModel",
    "xgboost": "mlserver_xgboost.XGBoostModel",
    "lightgbm": "mlserver_lightgbm.LightGBMModel",
}
BATCHING = "16"
"""SLUICE_MAX_BATCH_SIZE of the batching rows: the connections of the busiest cell."""
PEER_TARGETS = {"xgboost": "xgboost", "lightgbm": "lightgbm", GRPC: "sklearn, gRPC"}
"""The new rows' targets (issue 17): at batch 1, 16 connections, >= 2x the best MLServer req/s, <= half its p99."""


def make_trees(work: Path, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> dict[str, Callable[[Any], Any]]:
    """XGBoost and LightGBM classifiers of (x, y) saved natively in `work`; their predict() by format."""
    booster = xgboost.XGBClassifier(n_estimators=100, max_depth=6, n_jobs=1).fit(x, y)
    booster.save_model(work / FILES["xgboost"])
    light = lightgbm.LGBMClassifier(n_estimators=100, n_jobs=1, verbose=-1).fit(x, y)
    light.booster_.save_model(work / FILES["lightgbm"])
    return {"xgboost": booster.predict, "lightgbm": light.predict}


def grpc_payload(work: Path, data: np.ndarray[Any, Any]) -> Path:
    """A serialized ModelInferRequest of the rows `data` (FP64 contents) for the scikit-learn model's `predict`."""
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input",
        datatype="FP64",
        shape=list(data.shape),
        contents=pb.InferTensorContents(fp64_contents=data.ravel()),
    )
    request = pb.ModelInferRequest(
        model_name="model", inputs=[tensor], outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="predict")]
    )
    path = work / f"{GRPC}-{len(data)}.pb"
    path.write_bytes(request.SerializeToString())
    return path


def grpc_answer(target: str, body: Path) -> list[float]:
    """The first output of one ModelInfer call (grpc_check.py, in its own process: no grpc in this one)."""
    out = subprocess.run([sys.executable, str(HERE / "grpc_check.py"), target, str(body)], capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    return list(json.loads(out.stdout))


def ensure_ghz(cache: Path) -> Path:
    """ghz, built once into `cache`/bin from its pinned module (`go install`; about a minute on two cores)."""
    binary = cache / "bin" / "ghz"
    marker = cache / "bin" / ".ghz-version"
    if binary.exists() and marker.exists() and marker.read_text() == GHZ:
        return binary
    if shutil.which("go") is None:
        sys.exit("the gRPC rows need Go to build ghz (make setup installs it)")
    print(f"building {GHZ} into {binary.parent}", flush=True)
    subprocess.run(["go", "install", GHZ], env={**os.environ, "GOBIN": str(binary.parent)}, check=True)
    marker.write_text(GHZ)
    return binary


def ghz_load(cache: Path, target: str, body: Path, connections: int, seconds: int) -> dict[str, Any]:
    """`connections` connections to `target`, each with one ModelInfer call in flight, for `seconds`: req/s, p50,
    p99 and failed calls, as the wrk rows have them. ghz runs on one core (`--cpus 1`, GOMAXPROCS), as wrk does
    (`-t1`): with both cores it took 170-360 us of CPU per call against 150-190 us on one, CPU the server under
    test (whichever it is) shares (docs/benchmarks.md, "gRPC: where the time goes")."""
    command = [
        str(ensure_ghz(cache)), "--insecure", "--proto", str(PROTO), "--import-paths", str(PROTO.parent),
        "--call", "inference.GRPCInferenceService/ModelInfer", "--binary-file", str(body),
        "--concurrency", str(connections), "--connections", str(connections), "--duration", f"{seconds}s",
        "--cpus", "1", "--duration-stop", "wait",
        "--format", "json", target,
    ]  # fmt: skip
    report = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout)
    latency = {int(d["percentage"]): d["latency"] / 1e6 for d in report.get("latencyDistribution") or ()}
    ok = (report.get("statusCodeDistribution") or {}).get("OK", 0)
    return {
        "rps": ok / (report["total"] / 1e9),
        "p50_ms": latency.get(50, 0.0),
        "p99_ms": latency.get(99, 0.0),
        "non2xx": report["count"] - ok,
        "socket_errors": "",
    }


def tree_floors(work: Path, x: np.ndarray[Any, Any]) -> dict[str, Callable[[int], Callable[[], Any]]]:
    """In-process predict() of the tree models on one thread, as the server calls them, by format."""
    booster = xgboost.Booster(params={"nthread": 1}, model_file=str(work / FILES["xgboost"]))
    light = lightgbm.Booster(model_file=str(work / FILES["lightgbm"]))
    x32 = x.astype(np.float32)
    return {
        "xgboost": lambda batch: lambda: booster.inplace_predict(x32[:batch], validate_features=False),
        "lightgbm": lambda batch: lambda: light.predict(x[:batch], num_threads=1),
    }


def peer_targets(fmt: str, get: Callable[[str], dict[str, Any] | None]) -> str:
    """The target lines of a new row group: sluice_serving (one and two workers) against the best MLServer row."""
    peers = [r for n in ("MLServer default", "MLServer tuned") if (r := get(f"{n} ({fmt})")) is not None]
    lines = []
    for label in ("sluice_serving", "sluice_serving 2 workers"):
        ours = get(f"{label} ({fmt})")
        if ours is None or not peers:
            continue
        best = max(peers, key=lambda r: r["rps"])
        best_p99 = min(r["p99_ms"] for r in peers)
        met_rps = "met" if ours["rps"] >= 2 * best["rps"] else "NOT met"
        met_p99 = "met" if ours["p99_ms"] <= best_p99 / 2 else "NOT met"
        lines.append(
            f"- {label}: {ours['rps']:.0f} req/s, p99 {ours['p99_ms']:.2f} ms; req/s >= 2x best MLServer "
            f"({best['rps']:.0f}): {met_rps}; p99 <= half of their best ({best_p99:.2f} ms): {met_p99}"
        )
    if not lines:
        return f"Targets ({PEER_TARGETS[fmt]}): not checked (a server is missing from this run)."
    return f"Targets ({PEER_TARGETS[fmt]}, batch 1, 16 connections):\n" + "\n".join(lines)


def batching_line(fmt: str, get: Callable[[str], dict[str, Any] | None]) -> str | None:
    """Batching on against off (one worker each), batch 1, 16 connections: the ratio of req/s and of p99."""
    on, off = get(f"sluice_serving batching ({fmt})"), get(f"sluice_serving ({fmt})")
    if on is None or off is None:
        return None
    return (f"- {fmt}: on {on['rps']:.0f} req/s, p99 {on['p99_ms']:.2f} ms; off {off['rps']:.0f} req/s, p99 "
            f"{off['p99_ms']:.2f} ms: {on['rps'] / off['rps']:.2f}x the req/s, {on['p99_ms'] / off['p99_ms']:.2f}x "
            "the p99")  # fmt: skip
