"""The floor of the gRPC rows (docs/benchmarks.md, "gRPC: where the time goes"): a grpc.aio server on uvloop, as
sluice_serving's, whose ModelInfer parses the request and answers a fixed ModelInferResponse, doing no other work.
`python grpc_floor.py PORT`, then load it with ghz as runtimes.ghz_load does; `GRPC_FLOOR_LOOP=asyncio` runs it on
asyncio's own loop instead."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import grpc
import numpy as np

from sluice_serving.oip import grpc_predict_v2_pb2 as pb

SERVICE = "inference.GRPCInferenceService"


def _answer() -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name="model", model_version="1")
    response.outputs.add(name="predict", datatype="INT64", shape=[1])
    response.raw_output_contents.append(np.zeros(1, np.int64).tobytes())
    return response


ANSWER = _answer()


async def model_infer(request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
    return ANSWER


async def serve(port: int) -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        model_infer,
        request_deserializer=pb.ModelInferRequest.FromString,
        response_serializer=lambda m: m.SerializeToString(),
    )
    server = grpc.aio.server(handlers=(grpc.method_handlers_generic_handler(SERVICE, {"ModelInfer": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    if os.environ.get("GRPC_FLOOR_LOOP") == "asyncio":
        asyncio.run(serve(int(sys.argv[1])))
    else:
        import uvloop

        uvloop.run(serve(int(sys.argv[1])))
