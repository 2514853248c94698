"""The floor for ASGI stacks: a bare ASGI app (no framework) on uvicorn with httptools and uvloop,
doing the same work as the servers (parse the V2 JSON, predict, answer V2 JSON), no validation,
no metrics. Runs in the KServe bench virtualenv (which has uvicorn). Environment: BENCH_MODEL,
BENCH_FORMAT (sklearn|onnx)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import joblib
import numpy as np
import orjson

FORMAT = os.environ.get("BENCH_FORMAT", "sklearn")
if FORMAT == "onnx":
    import onnxruntime as ort

    _options = ort.SessionOptions()
    _options.intra_op_num_threads = 1
    _session = ort.InferenceSession(os.environ["BENCH_MODEL"], _options, providers=["CPUExecutionProvider"])
else:
    _model = joblib.load(os.environ["BENCH_MODEL"])


def _predict(doc: dict[str, Any]) -> bytes:
    tensor = doc["inputs"][0]
    if FORMAT == "onnx":
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        name, y = "label", _session.run(["label"], {"input": x})[0]
    else:
        x = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        name, y = "predict", _model.predict(x)
    out = {"name": name, "datatype": "INT64", "shape": list(y.shape), "data": y}
    return orjson.dumps({"model_name": "model", "outputs": [out]}, option=orjson.OPT_SERIALIZE_NUMPY)


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        status, payload = 200, _predict(orjson.loads(body))
    else:
        status, payload = 200, b'{"ready":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
