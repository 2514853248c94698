"""V2 tensor decoding: what is accepted, and what is refused with a 400 that says why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sluice_serving.encoding import tensor_json
from sluice_serving.errors import DEFAULT_STRING_LIMITS, RequestError
from sluice_serving.models import NUMPY_TYPES, TensorSpec
from sluice_serving.protocol import _parse_common, _parse_general, all_finite, decode_tensor, parse_infer
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


_COMMON_SPECS = [
    TensorSpec("input", "FP32", (-1, 3)),
    TensorSpec("x", "INT8", (2,)),
    TensorSpec("input", "FP16", (-1, -1)),
]
_COMMON_OUTPUTS = (TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 2)))
_NUMBERS = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
_ODD_VALUES = st.sampled_from([True, None, "1.5", [1.0], 70000.0, 3.5e38, 300, -1, 0.5])


@st.composite
def _near_common_requests(draw: st.DrawFn) -> tuple[TensorSpec, dict[str, Any]]:
    """Requests in the common form, or with one part of them changed."""
    changes = ["nothing", "nothing", "name", "shape", "datatype", "data", "value", "value", "dims", "dims", "extra"]
    changed = draw(st.sampled_from([*changes, "extra", "signs", "inputs", "id", "parameters", "outputs"]))

    spec = draw(st.sampled_from(_COMMON_SPECS))
    rows = draw(st.integers(min_value=1, max_value=2))  # (never 3: a transposed [rows, 3] is then wrong)
    shape = [rows, *(d if d >= 0 else 2 for d in spec.shape[1:])] if spec.shape[0] == -1 else list(spec.shape)
    size = int(np.prod(shape))
    numbers = st.integers(min_value=-100, max_value=100) if spec.datatype.startswith("INT") else _NUMBERS
    data: list[Any] = draw(st.lists(numbers, min_size=size, max_size=size))
    if changed == "value":
        data[draw(st.integers(min_value=0, max_value=size - 1))] = draw(_ODD_VALUES | _NUMBERS)
    one_of: dict[str, list[Any]] = {
        "name": ["other"],
        "shape": [
            [*shape, 1],
            [size],
            [-1, *shape[1:]],
            [float(d) for d in shape],
            [0, *shape[1:]],
        ],
        "signs": [[-d for d in shape]],  # the same size, but no dimension is valid
        "dims": [shape[::-1]],  # the same rank and size, a fixed dimension wrong
        "datatype": ["FP64", "INT64", "BOOL", "FP32"],
        "data": [data[:-1], [*data, 1], data[0], [data]],
        "extra": [{}, {"a": 1}, 1, {"a": [1]}],
        "id": [7, None, ["r1"]],
        "parameters": [{}, {"binary_data_output": True}],
        "outputs": [
            [{"name": "nope"}],
            [{"name": "label", "parameters": {"binary_data": True}}],
            {},
            [{"name": "label"}, 1],
        ],
    }
    alternatives = one_of.get(changed)
    swap = draw(st.sampled_from(alternatives)) if alternatives else None

    def pick(name: str, usual: Any) -> Any:
        return swap if changed == name else usual

    tensor: dict[str, Any] = {
        "name": pick("name", spec.name),
        "shape": pick("shape", pick("dims", pick("signs", shape))),
        "datatype": pick("datatype", spec.datatype),
        "data": pick("data", data),
    }
    if changed == "extra":
        tensor[draw(st.sampled_from(["parameters", "extra"]))] = swap
    doc: dict[str, Any] = {"inputs": [tensor, tensor] if changed == "inputs" else [tensor]}
    if changed == "id" or draw(st.booleans()):
        doc["id"] = pick("id", "r1")
    if changed == "parameters":
        doc["parameters"] = swap
    outputs = draw(st.sampled_from([None, [], [{"name": "label"}], [{"name": "probabilities"}, {"name": "label"}]]))
    if changed == "outputs" or outputs is not None:
        doc["outputs"] = pick("outputs", outputs)
    return spec, doc


@settings(max_examples=400)
@given(_near_common_requests())
@example((_COMMON_SPECS[2], {"inputs": [{"name": "input", "shape": [-1, -2], "datatype": "FP16", "data": [1, 2]}]}))
@example((_COMMON_SPECS[0], {"inputs": [{"name": "input", "shape": [3, 1], "datatype": "FP32", "data": [1, 2, 3]}]}))
def test_the_common_request_path_answers_exactly_what_the_general_path_does(
    case: tuple[TensorSpec, dict[str, Any]],
) -> None:
    spec, doc = case
    common = _parse_common(doc, spec, _COMMON_OUTPUTS)
    if common is None:
        return  # the general path takes it
    general = _parse_general(doc, (spec,), _COMMON_OUTPUTS, DEFAULT_STRING_LIMITS, None)  # raises if it refuses
    assert (common.id, common.outputs, common.binary_outputs) == (general.id, general.outputs, general.binary_outputs)
    assert common.inputs.keys() == general.inputs.keys()
    for name, array in common.inputs.items():
        expected = general.inputs[name]
        assert (array.dtype, array.shape) == (expected.dtype, expected.shape)
        assert np.array_equal(array, expected)


def test_a_plain_request_takes_the_common_path() -> None:
    spec = _COMMON_SPECS[0]
    doc = {"id": "r1", "inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1, 2.5, 3, 4, 5, 6]}]}
    common = _parse_common({**doc, "outputs": [{"name": "label"}]}, spec, _COMMON_OUTPUTS)
    assert common is not None
    assert (common.id, common.outputs, common.inputs["input"].tolist()) == ("r1", ("label",), [[1, 2.5, 3], [4, 5, 6]])
    everything = _parse_common(doc, spec, _COMMON_OUTPUTS)
    assert everything is not None
    assert everything.outputs == ("label", "probabilities")
