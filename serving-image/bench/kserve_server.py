"""KServe's Python model server with a `kserve.Model` doing what its sklearn server does (the
sklearnserver package is not on PyPI). Runs in the KServe bench virtualenv, not in the repo's.

Environment: BENCH_MODEL (file), BENCH_FORMAT (sklearn|onnx). Command-line flags are KServe's own
(--http_port, --grpc_port, ...).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import joblib
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class Predictor(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str, fmt: str) -> None:
        super().__init__(name)
        self.path = path
        self.fmt = fmt
        self.load()

    def load(self) -> bool:
        if self.fmt == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        else:
            self.model = joblib.load(self.path)
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        x = payload.inputs[0].as_numpy()
        if self.fmt == "onnx":
            name, y = "label", self.session.run(["label"], {"input": x})[0]
        else:
            name, y = "predict", self.model.predict(x)
        out = InferOutput(name=name, shape=list(y.shape), datatype="INT64", data=y.tolist())
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id or str(uuid.uuid4()))


if __name__ == "__main__":
    model: Any = Predictor("model", os.environ["BENCH_MODEL"], os.environ.get("BENCH_FORMAT", "sklearn"))
    ModelServer().start([model])
