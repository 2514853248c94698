"""The gRPC load of `make bench-serving` (wrk speaks HTTP/1.1 only): `python grpc_load.py TARGET BODY CONNECTIONS
SECONDS` opens CONNECTIONS channels (each its own HTTP/2 connection) to TARGET, each with one ModelInfer call in
flight at a time, sends the serialized ModelInferRequest in the file BODY for SECONDS, and prints req/s, p50 and p99
as JSON (the fields of the bench's wrk rows). `python grpc_load.py TARGET BODY` makes one call and prints its first
output as numbers. The same client, in its own process, drives every server of a gRPC row."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from sluice_serving.oip import grpc_predict_v2_pb2 as pb

METHOD = "/inference.GRPCInferenceService/ModelInfer"
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
"""Without it, channels to one target share one connection."""
RAW_TYPES = {"INT64": np.int64, "INT32": np.int32, "FP64": np.float64, "FP32": np.float32, "BOOL": np.bool_}
CONTENTS = ("int64_contents", "int_contents", "fp64_contents", "fp32_contents", "bool_contents")


def first_output(reply: bytes) -> list[float]:
    """The first output tensor's values of a serialized ModelInferResponse (raw or typed contents)."""
    response = pb.ModelInferResponse.FromString(reply)
    out = response.outputs[0]
    if response.raw_output_contents:
        raw = np.frombuffer(response.raw_output_contents[0], dtype=RAW_TYPES[out.datatype])
        return [float(v) for v in raw]
    for name in CONTENTS:
        values = getattr(out.contents, name)
        if values:
            return [float(v) for v in values]
    return []


async def call_once(target: str, body: bytes) -> list[float]:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await channel.unary_unary(METHOD)(body, timeout=10)
    return first_output(reply)


async def load(target: str, body: bytes, connections: int, seconds: float) -> dict[str, object]:
    times: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal errors
        async with grpc.aio.insecure_channel(target, options=OWN_CONNECTION) as channel:
            infer = channel.unary_unary(METHOD)
            while (started := time.perf_counter()) < deadline:
                try:
                    await infer(body, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                times.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    times.sort()
    if not times:
        return {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "non2xx": errors, "socket_errors": ""}
    return {
        "rps": len(times) / elapsed,
        "p50_ms": times[len(times) // 2] * 1e3,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3,
        "non2xx": errors,
        "socket_errors": "",
    }


def main() -> None:
    target, body = sys.argv[1], Path(sys.argv[2]).read_bytes()
    if len(sys.argv) == 3:
        print(json.dumps(asyncio.run(call_once(target, body))))
        return
    print(json.dumps(asyncio.run(load(target, body, int(sys.argv[3]), float(sys.argv[4])))))


if __name__ == "__main__":
    main()
