"""An ONNX model cannot make the server read files outside the model's directory through external data.

ONNX tensors may live in "external data" files named by a path inside the model. onnxruntime checks that the path
stays inside the model's directory since 1.24.1 (since 1.24.3 for models loaded from bytes): serving-image's
pyproject.toml requires onnxruntime>=1.24.3. On 1.23.2 the model below loads and answers with the file's bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from sluice_serving.models import ModelError, load_model


def _model_reading(location: str, path: Path) -> None:
    """A model computing X + W, where W (4 floats) is external data at `location`."""
    weights = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    for key, value in {"location": location, "offset": "0", "length": "16"}.items():
        weights.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "add",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True)
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/hostname"])
def test_onnx_external_data_outside_the_model_directory_is_refused(tmp_path: Path, location: str) -> None:
    np.arange(4, dtype=np.float32).tofile(tmp_path / "secret.bin")
    model = tmp_path / "model" / "model.onnx"
    _model_reading(location, model)
    with pytest.raises(ModelError, match="External data path"):
        load_model(model, "onnx", digest_pinned=True, num_threads=1)
