"""Fuzz targets for the model server's untrusted-input code: the V2 and V1 decoders and the HTTP glue (the
httptools callbacks in sluice_serving.server with the App behind them). Each target takes raw bytes and fails
(raises AssertionError or an unexpected exception) only on a real defect: an exception other than a 4xx
RequestError, a 5xx answer, more than one response per request, or an array much larger than the request.

Run under atheris by tests/fuzz/run_atheris.py (`make stress`, and a short smoke run in the normal suite); every
input that ever failed is kept in tests/fuzz/crashes/ and replayed by tests/fuzz/test_fuzz_targets.py.
"""

from __future__ import annotations

import asyncio
import re
import tracemalloc

import numpy as np
from sklearn.linear_model import LinearRegression

from sluice_serving.app import App
from sluice_serving.config import Config
from sluice_serving.errors import RequestError
from sluice_serving.metrics import Metrics
from sluice_serving.models import SklearnModel, TensorSpec
from sluice_serving.protocol import parse_infer, parse_v1_instances
from sluice_serving.server import HttpProtocol, Server

WIDTH = 4
SPECS = (
    (TensorSpec("input", "FP64", (-1, WIDTH)),),
    (TensorSpec("ids", "INT64", (-1,)),),
    (TensorSpec("flags", "BOOL", (2, -1)),),
    (TensorSpec("text", "BYTES", (-1, 2)),),
)
OUTPUTS = (TensorSpec("predict", "FP64", (-1,)),)
AMPLIFICATION = 8
"""An array may take at most this many bytes per request byte (8-byte numbers need at least "0," each)."""
MEMORY_PER_BYTE = 32
"""Peak bytes a decode may allocate per request byte: parsed JSON (a float object and its list slot: 32 bytes
for as little as "1.5,") plus the flattened list and the array."""
_STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")


def decode(data: bytes) -> None:
    """First byte: which signature (and V2, V2 with binary data, or V1); the rest: the request body. With
    tracemalloc tracing (the runner and the replay tests turn it on), the memory a decode takes is bounded by the
    body's size too."""
    if not data:
        return
    selector, body = data[0], data[1:]
    inputs = SPECS[selector % len(SPECS)]
    tracing = tracemalloc.is_tracing()
    if tracing:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    try:
        if selector & 0x80:
            arrays = [parse_v1_instances(body, inputs[0])]
        elif selector & 0x40 and body:  # the binary tensor data extension: the next byte is the JSON's length
            arrays = list(parse_infer(body[1:], inputs, OUTPUTS, header_length=body[0]).inputs.values())
        else:
            arrays = list(parse_infer(body, inputs, OUTPUTS).inputs.values())
    except RequestError as exc:
        refused = exc.status
        arrays = []
    else:
        refused = 400
    assert 400 <= refused < 500, refused
    if tracing:
        peak = tracemalloc.get_traced_memory()[1] - before
        assert peak <= MEMORY_PER_BYTE * len(body) + (1 << 20), f"{peak} bytes to decode {len(body)}"
    for array, spec in zip(arrays, inputs, strict=False):  # no arrays after a RequestError
        assert array.ndim == len(spec.shape)
        assert array.nbytes <= AMPLIFICATION * max(len(body), 1), (array.shape, array.dtype, len(body))


class _Transport:
    """What the protocol writes, and whether it closed or paused reading."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _app() -> App:
    env = {"MODEL_URI": "/model.joblib", "SLUICE_MAX_BODY_BYTES": "4096", "SLUICE_MAX_HEADER_BYTES": "2048",
           "SLUICE_MAX_URL_BYTES": "512"}  # fmt: skip
    cfg = Config.from_env(env)
    app = App(cfg, Metrics(cfg, None))
    x = np.arange(40, dtype=np.float64).reshape(10, WIDTH)
    model = SklearnModel(LinearRegression().fit(x, x.sum(axis=1)))
    app.set_model(model)
    app.metrics.model_loaded(0.0, model.feature_names, WIDTH, model.classifier)
    return app


_APP = _app()
_LOOP = asyncio.new_event_loop()


def http(data: bytes) -> None:
    """First byte: where to split the rest into two reads; the rest: what a client sends on one connection."""
    if not data:
        return
    _LOOP.run_until_complete(_http(data[0], data[1:]))


async def _http(split: int, stream: bytes) -> None:
    transport = _Transport()
    protocol = HttpProtocol(Server(_APP))
    protocol.connection_made(transport)  # type: ignore[arg-type]
    cut = split * len(stream) // 255
    for chunk in (stream[:cut], stream[cut:]):
        if chunk and not transport.closed:
            protocol.data_received(chunk)
    await asyncio.sleep(0)  # queued pipelined requests are answered on the next loop turns
    await asyncio.sleep(0)
    protocol.connection_lost(None)
    codes = [int(code) for code in _STATUS.findall(bytes(transport.written))]
    assert all(code < 500 for code in codes), (codes, bytes(transport.written)[:500])


def dispatch(data: bytes) -> None:
    """The atheris entry point: the first byte picks the target."""
    if data:
        (decode if data[0] & 1 else http)(data[1:])


def seeds() -> dict[str, bytes]:
    """Starting inputs: a valid request for each target."""
    row = b"[" + b", ".join([b"1.5"] * WIDTH) + b"]"
    v2 = b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ' + row + b"}]}"
    v1 = b'{"instances": [' + row + b"]}"
    post = b"POST /v2/models/model/infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(v2), v2)
    text = b'{"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}]}'
    binary = (
        b'{"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "parameters": {"binary_data_size": 10}}]}'
    )
    return {
        "v2": b"\x01\x00" + v2,
        "v1": b"\x01\x80" + v1,
        "bytes": b"\x01\x03" + text,
        "binary": b"\x01\x43" + bytes([len(binary)]) + binary + b"\x01\x00\x00\x00a\x01\x00\x00\x00b",
        "http": b"\x00\x80" + post + b"GET /metrics HTTP/1.1\r\n\r\n",
        "expect": b"\x00\x40" + post.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n", 1),
    }
