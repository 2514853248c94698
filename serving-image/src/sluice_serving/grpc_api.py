"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, SLUICE_GRPC_PORT): the same app, the
same validation and the same metrics as REST (`protocol="grpc"`), on grpc.aio in the server's event loop.

A request becomes the V2 JSON values REST parses (`request_doc`), or, with `raw_input_contents`, the binary layout
REST's binary extension uses, so both protocols share one validator (`protocol.parse_infer_doc`). Outputs are
answered as `raw_output_contents`, as Triton does; its clients and KServe's read them. A refused request gets the
gRPC status code its HTTP status stands for and the same message. Every byte is bounded as on REST: messages
larger than SLUICE_MAX_BODY_BYTES and metadata larger than SLUICE_MAX_HEADER_BYTES are refused by grpc itself,
connections idle for SLUICE_KEEPALIVE_TIMEOUT are closed, and a connection's RPCs must finish within
SLUICE_REQUEST_TIMEOUT of it being told to go away (every 10 minutes)."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from sluice_serving.app import App
from sluice_serving.binary import encode_raw, utf8
from sluice_serving.errors import RequestError
from sluice_serving.metrics import GRPC
from sluice_serving.models import Model, Results, datatype_of
from sluice_serving.oip import grpc_predict_v2_pb2 as pb
from sluice_serving.protocol import InferRequest, parse_infer_doc

log = logging.getLogger("sluice_serving.grpc")

SERVICE = "inference.GRPCInferenceService"
_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_CONTENTS = {
    "BOOL": "bool_contents",
    **dict.fromkeys(("INT8", "INT16", "INT32"), "int_contents"),
    "INT64": "int64_contents",
    **dict.fromkeys(("UINT8", "UINT16", "UINT32"), "uint_contents"),
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The `contents` field of each datatype (FP16 has none: it is sent as raw contents)."""
_MAX_CONNECTION_AGE_MS = 600_000


class InferenceService:
    """The six RPCs of the protocol over one `App`."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def server_live(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.app.ready)

    async def model_ready(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        await _call(context, self.app.check_model, request.name, request.version or None)
        return pb.ModelReadyResponse(ready=self.app.ready)

    async def server_metadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**self.app.server_metadata())

    async def model_metadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        doc = await _call(context, self.app.metadata, request.name, request.version or None)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=doc["name"],
            versions=doc["versions"],
            platform=doc["platform"],
            inputs=[tensor(**t) for t in doc["inputs"]],
            outputs=[tensor(**t) for t in doc["outputs"]],
        )

    async def model_infer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        """One inference, counted and timed like REST's (`protocol="grpc"`, `code`: the HTTP status its gRPC
        status stands for, so that the operator's error rate reads both)."""
        metrics = self.app.metrics
        started = time.perf_counter()
        metrics.in_flight_inc()
        outcome = _Outcome()
        strings = self.app.strings

        def parse(model: Model) -> InferRequest:
            doc, raws = request_doc(request, strings)
            return parse_infer_doc(doc, model.inputs, model.outputs, strings, raws)

        def reply(infer: InferRequest, results: Results, fallback: str | None) -> pb.ModelInferResponse:
            if fallback is not None:
                context.set_trailing_metadata((("x-sluice-fallback", fallback),))
            return self._response(infer, results)

        version = request.model_version or None
        try:
            response: pb.ModelInferResponse = await _call(
                context, self.app.infer, request.model_name, version, parse, reply, outcome=outcome
            )
            outcome.status = 200
            return response
        finally:
            metrics.in_flight_dec()
            if outcome.status is not None:  # None: the client cancelled the RPC before it was answered
                metrics.record("infer", outcome.status, time.perf_counter() - started, GRPC)

    def _response(self, infer: InferRequest, results: Results) -> pb.ModelInferResponse:
        response = pb.ModelInferResponse(
            model_name=self.app.cfg.model_name, model_version=self.app.cfg.model_version, id=infer.id or ""
        )
        for name in infer.outputs:
            array = results[name]
            response.outputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
            response.raw_output_contents.append(encode_raw(array))
        return response


class _Outcome:
    """The HTTP status an RPC's answer stands for (the `code` label)."""

    status: int | None = None


async def _call(context: Any, fn: Callable[..., Any], *args: Any, outcome: _Outcome | None = None) -> Any:
    """`fn(*args)`, awaited when it answers later; a RequestError ends the RPC with its status code and message,
    anything else with INTERNAL and a fixed text (the traceback goes to the log). grpc's `abort` raises."""
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        return result
    except RequestError as exc:
        status, code, message = exc.status, _STATUS.get(exc.status, grpc.StatusCode.INTERNAL), exc.message
    except Exception:
        log.exception("unexpected error", extra={"rpc": getattr(fn, "__name__", "")})
        status, code, message = 500, grpc.StatusCode.INTERNAL, "internal error"
    if outcome is not None:
        outcome.status = status
    await context.abort(code, message)
    raise AssertionError("grpc's abort returned")  # it raises, ending the RPC


def request_doc(request: pb.ModelInferRequest, strings: Any) -> tuple[dict[str, Any], list[bytes] | None]:
    """A gRPC infer request as the V2 JSON values (and the raw contents of its inputs, if it has them)."""
    raws = list(request.raw_input_contents) or None
    if raws is not None and len(raws) != len(request.inputs):
        raise RequestError(400, "raw_input_contents must hold one entry per input, in the order of the inputs")
    inputs = []
    for tensor in request.inputs:
        doc: dict[str, Any] = {
            "name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape),
            "parameters": parameters(tensor.parameters),
        }  # fmt: skip
        if raws is not None and tensor.HasField("contents"):
            raise RequestError(400, f"input {tensor.name!r}: contents and raw_input_contents exclude each other")
        if raws is None:
            doc["data"] = _contents(tensor, strings)
        inputs.append(doc)
    outputs = [{"name": o.name, "parameters": parameters(o.parameters)} for o in request.outputs]
    doc = {"id": request.id or None, "parameters": parameters(request.parameters), "inputs": inputs, "outputs": outputs}
    return doc, raws


def parameters(params: Any) -> dict[str, Any]:
    """A map of InferParameter as JSON values (a parameter with no value is left out)."""
    values = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        if which is not None:
            values[key] = getattr(value, which)
    return values


def _contents(tensor: Any, strings: Any) -> list[Any]:
    """The values of a tensor's `contents`, from the field its datatype uses (and no other)."""
    field = _CONTENTS.get(tensor.datatype)
    used = [f.name for f, _ in tensor.contents.ListFields()]
    if any(name != field for name in used):
        where = f"{field}" if field else "raw_input_contents"
        raise RequestError(400, f"input {tensor.name!r}: {tensor.datatype} data goes in {where}")
    if field is None:
        return []
    values = list(getattr(tensor.contents, field))
    if tensor.datatype == "BYTES":
        return [utf8(v, f"input {tensor.name!r}: 'contents'", strings) for v in values]
    return values


def _handler(method: Callable[[Any, Any], Awaitable[Message]], request_type: Any) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(
        method, request_deserializer=request_type.FromString, response_serializer=lambda m: m.SerializeToString()
    )


def handlers(service: InferenceService) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "ServerLive": _handler(service.server_live, pb.ServerLiveRequest),
            "ServerReady": _handler(service.server_ready, pb.ServerReadyRequest),
            "ModelReady": _handler(service.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": _handler(service.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": _handler(service.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": _handler(service.model_infer, pb.ModelInferRequest),
        },
    )


async def start(app: App, host: str, port: int, reuse_port: bool) -> tuple[grpc.aio.Server, int]:
    """Listen on `port` (0: any) with the REST path's limits; return the server and the bound port."""
    cfg = app.cfg
    options = [
        ("grpc.max_receive_message_length", cfg.max_body_bytes),
        ("grpc.max_metadata_size", cfg.max_header_bytes),
        ("grpc.max_connection_idle_ms", int(cfg.keepalive_timeout * 1000)),
        ("grpc.max_connection_age_ms", _MAX_CONNECTION_AGE_MS),
        ("grpc.max_connection_age_grace_ms", int(cfg.request_timeout * 1000)),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]
    server = grpc.aio.server(
        handlers=(handlers(InferenceService(app)),), options=options, maximum_concurrent_rpcs=cfg.max_connections
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} for gRPC")
    await server.start()
    return server, bound
