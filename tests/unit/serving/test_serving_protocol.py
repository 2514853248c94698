"""V2 tensor decoding: what is accepted, and what is refused with a 400 that says why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice_serving.errors import RequestError
from sluice_serving.models import NUMPY_TYPES, TensorSpec
from sluice_serving.protocol import all_finite, decode_tensor, parse_infer, tensor_json
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


@pytest.mark.parametrize(
    ("values", "datatype", "target"),
    [
        ([1.0, float("nan"), 2.0], "FP64", "FP32"),  # (as gRPC's floats can be)
        ([1.0, float("inf"), 2.0], "FP64", "FP64"),
        ([float("-inf"), 1.0, 2.0], "FP32", "FP16"),
        ([float("inf"), float("-inf"), 2.0], "FP64", "FP64"),  # (+inf and -inf do not cancel out)
        ([1e39, 1.0, 2.0], "FP32", "FP32"),  # finite in JSON, infinite in float32
        ([10**39, 1, 2], "INT64", "FP32"),
        ([70000.0, 1.0, 2.0], "FP32", "FP16"),
    ],
)
def test_nan_infinity_and_values_out_of_a_float_range_are_refused(
    values: list[Any], datatype: str, target: str
) -> None:
    spec = TensorSpec("input", target, (-1, 3))
    with pytest.raises(RequestError, match=r"NaN or infinity|out of range") as caught:
        decode_tensor(tensor(values, [1, 3], datatype), spec)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("values", "target"),
    [([3e38, -3e38, 1e20], "FP32"), ([1e308, -1e308, 1e200], "FP64"), ([60000.0, -300.0, 0.5], "FP16")],
)
def test_large_finite_floats_are_accepted_though_their_squares_overflow(values: list[float], target: str) -> None:
    array = decode_tensor(tensor(values, [1, 3], "FP64"), TensorSpec("input", target, (-1, 3)))
    assert array.tolist() == np.array([values], dtype=array.dtype).tolist()


@given(
    st.sampled_from(["FP16", "FP32", "FP64"]),
    st.lists(st.floats() | st.sampled_from([3.4e38, -3.4e38, 1e-45, 65504.0]), min_size=1, max_size=40),
)
def test_the_finite_check_agrees_with_numpy_on_any_float_array(target: str, values: list[float]) -> None:
    with np.errstate(over="ignore"):
        array = np.array(values, dtype=NUMPY_TYPES[target])
    assert all_finite(array, target) == bool(np.isfinite(array).all())


@pytest.mark.parametrize("size", [4096, 4097, 100_000])
def test_the_finite_check_finds_a_nan_at_the_end_of_a_long_input(size: int) -> None:
    array = np.ones(size, dtype=np.float32)
    assert all_finite(array, "FP32")
    array[-1] = np.nan
    assert not all_finite(array, "FP32")


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


def test_each_request_is_checked_against_the_signature_it_is_given() -> None:
    other = (TensorSpec("other", "FP32", (-1, 3)),)
    body = infer_body(tensor([1, 2, 3], [1, 3], "FP32"))
    for _ in range(2):  # (the second time from the tensors' index kept per signature)
        assert parse_infer(body, (FP32,), OUTPUTS).inputs["input"].tolist() == [[1, 2, 3]]
        with pytest.raises(RequestError, match="unknown input 'input'; the model's inputs are \\['other'\\]"):
            parse_infer(body, other, OUTPUTS)
        with pytest.raises(RequestError, match="missing input"):
            parse_infer(body, [FP32, *other], OUTPUTS)
