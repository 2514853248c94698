"""Checks of a real server made with other projects' clients only: Triton's `tritonclient` (HTTP and gRPC) and
KServe's `InferenceRESTClient`/`InferenceGRPCClient`. No request here is built by our own code.

Both clients carry their own copy of the `inference` gRPC messages in protobuf's default descriptor pool, and two
copies cannot load in one process, so each check runs in a fresh interpreter (`isolated`); the clients are imported
inside the checks, never by the test process."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from unit.serving.datatypes import ECHO_DATATYPES, NUMPY_OF

MAX_BODY_BYTES = 65_536
"""The echo server's SLUICE_MAX_BODY_BYTES: the cap on a REST body and on a gRPC message alike."""
LARGE_ROWS = 10_000
"""Rows of an FP32 [rows, 2] input that take more than MAX_BODY_BYTES (80 KB)."""


def isolated(check: Callable[..., None], *args: Any) -> None:
    """Run `check(*args)` in a fresh interpreter; its assertion errors are raised here."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(check, args)


def sample(datatype: str) -> np.ndarray[Any, Any]:
    """A [2, 2] array of `datatype` (BYTES: text, one of it not ASCII and one empty)."""
    if datatype == "BYTES":
        return np.array([["a", "é"], ["c", ""]], dtype=np.object_)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    return np.array([[1, 2], [3, 120]], dtype=NUMPY_OF[datatype])


def _text(array: np.ndarray[Any, Any]) -> list[Any]:
    return [[v.decode() if isinstance(v, bytes) else v for v in row] for row in array.tolist()]


def triton_http(url: str) -> None:
    """Readiness, metadata, every datatype echoed (inputs and outputs as binary data, then as JSON), and errors."""
    for binary in (True, False):
        _triton_http(url, binary)


def _triton_http(url: str, binary: bool) -> None:
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    client = th.InferenceServerClient(url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("model")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("model")
    assert [t["datatype"] for t in metadata["inputs"]] == list(ECHO_DATATYPES)
    inputs = _triton_inputs(th, lambda datatype: {"binary_data": binary or datatype == "FP16"})
    outputs = [th.InferRequestedOutput(f"{d.lower()}_out", binary_data=binary) for d in ECHO_DATATYPES]
    result = client.infer("model", inputs, outputs=outputs, request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    _check_echoed(result)
    _refused(lambda: client.infer("other", inputs), InferenceServerException, "404", "unknown model")
    _refused(lambda: client.infer("model", inputs[1:]), InferenceServerException, "400", "missing input")
    large = th.InferInput("fp32", [LARGE_ROWS, 2], "FP32")
    large.set_data_from_numpy(np.zeros((LARGE_ROWS, 2), np.float32), binary_data=binary)
    _refused(lambda: client.infer("model", [large]), InferenceServerException, "413", "SLUICE_MAX_BODY_BYTES")
    assert client.is_server_ready()


def triton_grpc(url: str) -> None:
    """The same over gRPC (tritonclient sends raw_input_contents)."""
    import tritonclient.grpc as tg
    from tritonclient.utils import InferenceServerException

    client = tg.InferenceServerClient(url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("model")
    assert "binary_tensor_data" in client.get_server_metadata().extensions
    metadata = client.get_model_metadata("model")
    assert [t.datatype for t in metadata.inputs] == list(ECHO_DATATYPES)
    assert list(metadata.inputs[0].shape) == [-1, 2]
    inputs = _triton_inputs(tg, lambda datatype: {})
    result = client.infer("model", inputs, request_id="g-1")
    assert result.get_response().id == "g-1"
    _check_echoed(result)
    _refused(lambda: client.infer("other", inputs), InferenceServerException, "NOT_FOUND", "unknown model")
    _refused(lambda: client.infer("model", inputs[1:]), InferenceServerException, "INVALID_ARGUMENT", "missing")
    large = tg.InferInput("fp32", [LARGE_ROWS, 2], "FP32")
    large.set_data_from_numpy(np.zeros((LARGE_ROWS, 2), np.float32))
    _refused(lambda: client.infer("model", [large]), InferenceServerException, "RESOURCE_EXHAUSTED", "larger than")
    assert client.is_server_ready()


def _triton_inputs(module: Any, options: Callable[[str], dict[str, Any]]) -> list[Any]:
    """One [2, 2] input of every datatype, made with tritonclient's `module` (http or grpc)."""
    inputs = []
    for datatype in ECHO_DATATYPES:
        tensor = module.InferInput(datatype.lower(), [2, 2], datatype)
        tensor.set_data_from_numpy(sample(datatype), **options(datatype))
        inputs.append(tensor)
    return inputs


def _check_echoed(result: Any) -> None:
    for datatype in ECHO_DATATYPES:
        got = result.as_numpy(f"{datatype.lower()}_out")
        assert got is not None, datatype
        assert _text(got) == sample(datatype).tolist(), datatype


def kserve_clients(base: str, grpc_url: str) -> None:
    """KServe's REST and gRPC clients: readiness, every datatype echoed (binary data, and JSON for all but FP16,
    which that client sends only as binary data), and errors."""
    asyncio.run(_kserve(base, grpc_url))


async def _kserve(base: str, grpc_url: str) -> None:
    import grpc
    import httpx
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

    def request(binary: bool, model: str = "model") -> Any:
        inputs = []
        for datatype in ECHO_DATATYPES:
            tensor = InferInput(datatype.lower(), [2, 2], datatype)
            tensor.set_data_from_numpy(sample(datatype), binary_data=binary or datatype == "FP16")
            inputs.append(tensor)
        return InferRequest(model, inputs, request_id="k-1")

    def check(response: Any) -> None:
        assert response.id == "k-1"
        got = {o.name: _text(o.as_numpy()) for o in response.outputs}
        assert got == {f"{d.lower()}_out": sample(d).tolist() for d in ECHO_DATATYPES}

    rest = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    assert await rest.is_server_live(base)
    assert await rest.is_server_ready(base)
    assert await rest.is_model_ready(base, "model")
    for binary in (True, False):
        check(await rest.infer(base, request(binary), model_name="model"))
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        await rest.infer(base, request(False, "other"), model_name="other")
    await rest.close()
    client = InferenceGRPCClient(grpc_url, retries=0)
    assert await client.is_server_live()
    assert await client.is_server_ready()
    assert await client.is_model_ready("model")
    check(await client.infer(request(True)))
    # contents for all inputs but FP16, whose raw contents the protocol allows only when no input has contents
    with pytest.raises(grpc.aio.AioRpcError, match="INVALID_ARGUMENT"):
        await client.infer(request(False))
    await client.close()


def _refused(call: Callable[[], Any], error: type[Exception], status: str, message: str) -> None:
    with pytest.raises(error, match=re.escape(status) + ".*" + re.escape(message)):
        call()
