"""The answer check of `make bench-serving`'s gRPC rows: `python grpc_check.py TARGET BODY` makes one ModelInfer call
to TARGET with the serialized ModelInferRequest in the file BODY and prints its first output's values as JSON. (The
load itself is ghz's; bench/runtimes.py.)"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import grpc
import numpy as np

from sluice_serving.oip import grpc_predict_v2_pb2 as pb

METHOD = "/inference.GRPCInferenceService/ModelInfer"
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


if __name__ == "__main__":
    print(json.dumps(asyncio.run(call_once(sys.argv[1], Path(sys.argv[2]).read_bytes()))))
