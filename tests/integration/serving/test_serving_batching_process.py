"""Adaptive batching on a real server process: concurrent one-row requests, over REST and over gRPC (Triton's
client), are merged into shared model calls, and every request gets exactly its own answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from integration.serving.conftest import Start, free_port
from integration.serving.oip_clients import isolated
from integration.serving.test_serving_lifecycle import metric
from sluice_serving.custom import pack_directory
from sluice_serving.fetch import sha256_digest
from unit.serving.support import infer_body, tensor

pytestmark = pytest.mark.integration

ROWS_MODEL = '''
import numpy as np


class Model:
    """Answers each row's first value (`echo`) and the number of rows of the call it was part of (`rows`)."""

    def load(self):
        pass

    def metadata(self):
        return {
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}],
            "outputs": [{"name": "echo", "datatype": "FP64", "shape": [-1]},
                        {"name": "rows", "datatype": "INT64", "shape": [-1]}],
        }

    def predict(self, inputs):
        x = inputs["input"]
        return {"echo": x[:, 0], "rows": np.full(len(x), len(x), dtype=np.int64)}
'''
REQUESTS = 64


async def ask_concurrently(base: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        bodies = [infer_body(tensor([float(i), 0.5], [1, 2]), id=f"r{i}") for i in range(REQUESTS)]
        return list(await asyncio.gather(*(client.post("/v2/models/model/infer", content=b) for b in bodies)))


def triton_grpc_concurrently(url: str) -> None:
    """REQUESTS one-row infer calls at once with tritonclient's gRPC asyncio client: each answers its own row."""
    import tritonclient.grpc.aio as tga

    async def ask() -> list[tuple[float, int]]:
        client = tga.InferenceServerClient(url)

        async def one(i: int) -> tuple[float, int]:
            tensor = tga.InferInput("input", [1, 2], "FP64")
            tensor.set_data_from_numpy(np.array([[float(i), 0.5]]))
            result = await client.infer("model", [tensor])
            return float(result.as_numpy("echo")[0]), int(result.as_numpy("rows")[0])

        try:
            return list(await asyncio.gather(*(one(i) for i in range(REQUESTS))))
        finally:
            await client.close()

    answers = asyncio.run(ask())
    assert [echo for echo, _ in answers] == [float(i) for i in range(REQUESTS)]
    assert 1 < max(rows for _, rows in answers) <= 16


def test_concurrent_requests_share_model_calls_and_each_gets_exactly_its_own_answer(
    start: Start, tmp_path: Path
) -> None:
    model = tmp_path / "rows-model"
    model.mkdir()
    (model / "model.py").write_text(ROWS_MODEL)
    digest = sha256_digest(pack_directory(model, 1 << 20))
    grpc_port = free_port()
    server = start({
        "MODEL_URI": str(model), "MODEL_FORMAT": "python", "MODEL_DIGEST": digest,
        "SLUICE_MAX_BATCH_SIZE": "16", "SLUICE_MAX_BATCH_TIME": "0.02", "SLUICE_GRPC_PORT": str(grpc_port),
    })  # fmt: skip
    server.wait_ready()
    replies = asyncio.run(ask_concurrently(server.base))
    assert [r.status_code for r in replies] == [200] * REQUESTS
    docs = [r.json() for r in replies]
    assert [d["id"] for d in docs] == [f"r{i}" for i in range(REQUESTS)]
    assert [d["outputs"][0]["data"] for d in docs] == [[float(i)] for i in range(REQUESTS)]
    rows = [d["outputs"][1]["data"][0] for d in docs]
    assert max(rows) > 1, "some requests shared a model call"
    assert max(rows) <= 16, "no call is larger than SLUICE_MAX_BATCH_SIZE"
    wrong_width = server.client.post("/v2/models/model/infer", content=infer_body(tensor([1.0], [1, 1])))
    assert wrong_width.status_code == 400
    assert metric(server, "sluice_serving_requests_total", protocol="rest", code="200") == REQUESTS
    isolated(triton_grpc_concurrently, f"127.0.0.1:{grpc_port}")
    assert metric(server, "sluice_serving_requests_total", protocol="grpc", code="200") == REQUESTS
