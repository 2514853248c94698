"""Adaptive batching on a real server process: concurrent one-row requests are merged into shared model calls, and
every request gets exactly its own answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from integration.serving.conftest import Start
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


def test_concurrent_requests_share_model_calls_and_each_gets_exactly_its_own_answer(
    start: Start, tmp_path: Path
) -> None:
    model = tmp_path / "rows-model"
    model.mkdir()
    (model / "model.py").write_text(ROWS_MODEL)
    digest = sha256_digest(pack_directory(model, 1 << 20))
    server = start({
        "MODEL_URI": str(model), "MODEL_FORMAT": "python", "MODEL_DIGEST": digest,
        "SLUICE_MAX_BATCH_SIZE": "16", "SLUICE_MAX_BATCH_TIME": "0.02",
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
    assert metric(server, "sluice_serving_requests_total", code="200") == REQUESTS
