"""V2 tensor decoding: what is accepted, and what is refused with a 400 that says why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice_serving.errors import RequestError
from sluice_serving.models import TensorSpec
from sluice_serving.protocol import decode_tensor, parse_infer, tensor_json
from unit.serving.support import infer_body, tensor

FP32 = TensorSpec("input", "FP32", (-1, 3))
OUTPUTS = (TensorSpec("label", "INT64", (-1,)),)


def test_flat_and_nested_data_decode_to_the_same_array() -> None:
    flat = decode_tensor(tensor([1, 2, 3, 4, 5, 6], [2, 3], "FP32"), FP32)
    nested = decode_tensor(tensor([[1, 2, 3], [4, 5, 6]], [2, 3], "FP32"), FP32)
    assert flat.dtype == np.float32
    assert flat.tolist() == nested.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_integers_widen_into_a_float_input() -> None:
    assert decode_tensor(tensor([1, 2, 3], [1, 3], "INT64"), FP32).dtype == np.float32


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (tensor([1, 2, 3], [1, 3], "BYTES"), "does not fit"),
        (tensor([True, False, True], [1, 3], "BOOL"), "does not fit"),
        (tensor([1, 2, 3], [1, 3], "FP128"), "unknown datatype"),
        (tensor([1, 2, 3], [3], "FP32"), "does not match"),
        (tensor([1, 2, 3, 4], [1, 4], "FP32"), "does not match"),
        (tensor([1, 2], [1, 3], "FP32"), "has 2 values"),
        (tensor(["a", "b", "c"], [1, 3], "FP32"), "not FP32"),
        (tensor([[1, 2], [3]], [1, 3], "FP32"), "ragged"),
        (tensor([1, 2, 3], [1, -3], "FP32"), "non-negative"),
        (tensor([], [0, 3], "FP32"), "no elements"),
        ({"name": "input", "shape": [1, 3], "datatype": "FP32"}, "'data' is missing"),
        ({"name": "input", "shape": [1, 3], "data": [1, 2, 3]}, "'datatype' is missing"),
        ({"name": "input", "datatype": "FP32", "data": [1, 2, 3]}, "'shape'"),
    ],
)
def test_a_bad_tensor_is_refused_with_400(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError, match=message) as caught:
        decode_tensor(raw, FP32)
    assert caught.value.status == 400


def test_an_integer_input_refuses_fractional_values() -> None:
    spec = TensorSpec("ids", "INT64", (-1,))
    with pytest.raises(RequestError, match="not INT64"):
        decode_tensor(tensor([1.5], [1], "INT64", name="ids"), spec)


def test_requested_outputs_must_exist() -> None:
    body = infer_body(tensor([1, 2, 3], [1, 3], "FP32"), outputs=[{"name": "nope"}])
    with pytest.raises(RequestError, match="unknown output"):
        parse_infer(body, (FP32,), OUTPUTS)


def test_without_requested_outputs_all_outputs_are_returned() -> None:
    request = parse_infer(infer_body(tensor([1, 2, 3], [1, 3], "FP32"), id="r1"), (FP32,), OUTPUTS)
    assert (request.id, request.outputs) == ("r1", ("label",))


def test_string_outputs_are_bytes_tensors() -> None:
    out = tensor_json("label", np.array(["cat", "dog"], dtype=object))
    assert (out["datatype"], out["data"], out["shape"]) == ("BYTES", ["cat", "dog"], [2])


@given(
    st.integers(min_value=1, max_value=8).flatmap(
        lambda rows: st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=rows * 3, max_size=rows * 3
        )
    )
)
def test_any_finite_float_matrix_decodes_exactly(values: list[float]) -> None:
    rows = len(values) // 3
    array = decode_tensor(tensor(values, [rows, 3], "FP32"), FP32)
    assert array.shape == (rows, 3)
    assert array.ravel().tolist() == np.asarray(values, dtype=np.float32).tolist()


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise_anything_but_a_request_error(body: bytes) -> None:
    statuses = []
    try:
        parse_infer(body, (FP32,), OUTPUTS)
    except RequestError as exc:
        statuses.append(exc.status)
    assert statuses in ([], [400])
