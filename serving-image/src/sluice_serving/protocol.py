"""Open Inference Protocol (V2) tensors in JSON: request validation and response encoding."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson

from sluice_serving.models import NUMPY_TYPES, Array, TensorSpec, datatype_of

_FLOATS = ("FP16", "FP32", "FP64")
_INTS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
# The model datatypes a request tensor of one datatype may feed: floats feed floats, integers feed
# integers or floats.
_ACCEPTS = {
    **{t: frozenset(_FLOATS) for t in _FLOATS},
    **{t: frozenset(_FLOATS + _INTS) for t in _INTS},
    "BOOL": frozenset(("BOOL",)),
    "BYTES": frozenset(("BYTES",)),
}
# The Python types (as orjson parses them) the JSON data of a datatype may hold; `bool` is not a number here.
_PYTHON_TYPES: dict[str, frozenset[type]] = {
    **dict.fromkeys(_FLOATS, frozenset((int, float))),
    **dict.fromkeys(_INTS, frozenset((int,))),
    "BOOL": frozenset((bool,)),
    "BYTES": frozenset((str,)),
}


class StringLimits(NamedTuple):
    """Bounds on BYTES (string) tensor data: characters in one string and in all strings of one tensor."""

    per_string: int = 65_536
    total: int = 1 << 20


DEFAULT_STRING_LIMITS = StringLimits()


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status and the message goes in `error`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class InferRequest(NamedTuple):
    """A validated V2 inference request: one array per model input and the outputs wanted."""

    id: str | None
    inputs: dict[str, Array]
    outputs: tuple[str, ...]


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying why it is not one."""
    if not body:
        raise RequestError(400, "the request body is empty; expected a JSON object")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError(400, f"the request body must be a JSON object, not {type(doc).__name__}")
    return doc


def parse_infer(
    body: bytes,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    strings: StringLimits = DEFAULT_STRING_LIMITS,
) -> InferRequest:
    """Validate a V2 infer request against the model's signature."""
    doc = parse_json(body)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, "'id' must be a string")
    if not isinstance(doc.get("parameters", {}), dict):
        raise RequestError(400, "'parameters' must be an object")
    tensors = doc.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise RequestError(400, "'inputs' must be a non-empty list of tensors")
    specs = {s.name: s for s in inputs}
    arrays: dict[str, Array] = {}
    for i, tensor in enumerate(tensors):
        if not isinstance(tensor, dict):
            raise RequestError(400, f"inputs[{i}] must be an object with name, shape, datatype and data")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise RequestError(400, f"inputs[{i}] has no 'name' string")
        spec = specs.get(name)
        if spec is None:
            raise RequestError(400, f"unknown input {name!r}; the model's inputs are {sorted(specs)}")
        if name in arrays:
            raise RequestError(400, f"input {name!r} is given twice")
        arrays[name] = decode_tensor(tensor, spec, strings)
    missing = [n for n in specs if n not in arrays]
    if missing:
        raise RequestError(400, f"missing input(s) {missing}")
    return InferRequest(request_id, arrays, _wanted_outputs(doc.get("outputs"), outputs))


def _wanted_outputs(requested: Any, outputs: Sequence[TensorSpec]) -> tuple[str, ...]:
    names = tuple(o.name for o in outputs)
    if requested is None:
        return names
    if not isinstance(requested, list):
        raise RequestError(400, "'outputs' must be a list of objects with a 'name'")
    wanted = []
    for o in requested:
        name = o.get("name") if isinstance(o, dict) else None
        if not isinstance(name, str):
            raise RequestError(400, "'outputs' must be a list of objects with a 'name'")
        if name not in names:
            raise RequestError(400, f"unknown output {name!r}; the model's outputs are {list(names)}")
        wanted.append(name)
    return tuple(wanted) or names


def decode_tensor(tensor: dict[str, Any], spec: TensorSpec, strings: StringLimits = DEFAULT_STRING_LIMITS) -> Array:
    """A request tensor as a numpy array of the model's dtype, or a 400 naming what is wrong.

    The element types and count are checked on the parsed JSON before any array exists, so that no value can
    choose the array's dtype (one long string among numbers would make a fixed-width string array as wide as
    that string for every element)."""
    name = spec.name
    shape = tensor.get("shape")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(400, f"input {name!r}: 'shape' must be a list of non-negative integers")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str):
        raise RequestError(400, f"input {name!r}: 'datatype' is missing")
    accepted = _ACCEPTS.get(datatype)
    if accepted is None:
        raise RequestError(400, f"input {name!r}: unknown datatype {datatype!r}")
    if spec.datatype not in accepted:
        raise RequestError(400, f"input {name!r}: datatype {datatype} does not fit the model's {spec.datatype}")
    if len(shape) != len(spec.shape) or any(w not in (-1, d) for w, d in zip(spec.shape, shape, strict=False)):
        raise RequestError(400, f"input {name!r}: shape {shape} does not match the model's {list(spec.shape)}")
    if "data" not in tensor:
        params = tensor.get("parameters")
        if isinstance(params, dict) and "binary_data_size" in params:
            raise RequestError(400, f"input {name!r}: binary tensor data is not supported; send JSON data")
        raise RequestError(400, f"input {name!r}: 'data' is missing")
    size = math.prod(shape)
    if size == 0:
        raise RequestError(400, f"input {name!r}: shape {shape} holds no elements")
    data = tensor["data"]
    if type(data) is not list:
        data = [data]
    if data and type(data[0]) is list:  # the nested form
        flat = _flatten(data, shape)
        if flat is None:
            raise RequestError(400, f"input {name!r}: 'data' is ragged or not nested as shape {shape}")
    elif len(data) != size:
        raise RequestError(400, f"input {name!r}: 'data' has {len(data)} values but shape {shape} needs {size}")
    else:
        flat = data
    array = _array(flat, datatype, spec.datatype, f"input {name!r}: 'data'", strings)
    return array.reshape(shape)


def parse_v1_instances(body: bytes, spec: TensorSpec, strings: StringLimits = DEFAULT_STRING_LIMITS) -> Array:
    """The `instances` of a V1 `:predict` request as one array for the model's single input (checked like
    `decode_tensor`: nesting and element types before any array exists)."""
    doc = parse_json(body)
    instances = doc.get("instances", doc.get("inputs"))
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "'instances' must be a non-empty list")
    dims: list[int] = []
    level: Any = instances
    while len(dims) < len(spec.shape) and type(level) is list:
        dims.append(len(level))
        level = level[0] if level else None
    flat = _flatten(instances, dims)
    if flat is None:
        raise RequestError(400, f"'instances' is ragged: every row must have shape {dims[1:]}")
    if len(dims) != len(spec.shape) or any(w not in (-1, d) for w, d in zip(spec.shape[1:], dims[1:], strict=True)):
        raise RequestError(400, f"'instances' has shape {dims}, the model takes {list(spec.shape)}")
    return _array(flat, spec.datatype, spec.datatype, "'instances'", strings).reshape(dims)


def _flatten(data: list[Any], dims: Sequence[int]) -> list[Any] | None:
    """The values of `data` in row-major order when it is nested exactly as `dims`, else None. Walks one level
    at a time and stops at the first list of the wrong length, so it never holds more than `data` does."""
    if len(data) != dims[0]:
        return None
    level = data
    for dim in dims[1:]:
        inner: list[Any] = []
        for item in level:
            if type(item) is not list or len(item) != dim:
                return None
            inner.extend(item)
        level = inner
    return level


def _array(flat: list[Any], datatype: str, target: str, what: str, strings: StringLimits) -> Array:
    """`flat` (JSON values of the request's `datatype`) as a 1-D array of the model's `target` datatype."""
    if not set(map(type, flat)) <= _PYTHON_TYPES[datatype]:
        raise RequestError(400, f"{what} holds values that are not {datatype}")
    if datatype == "BYTES":
        lengths = list(map(len, flat))
        if max(lengths) > strings.per_string:
            raise RequestError(400, f"{what} holds a string longer than SLUICE_MAX_STRING_CHARS ({strings.per_string})")
        if sum(lengths) > strings.total:
            raise RequestError(
                400, f"{what} holds more than SLUICE_MAX_STRINGS_TOTAL_CHARS ({strings.total}) characters"
            )
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array
    try:
        return np.array(flat, dtype=NUMPY_TYPES[target])
    except OverflowError:
        raise RequestError(400, f"{what} holds a value out of range for {target}") from None


def encode_outputs(arrays: dict[str, Array], wanted: Sequence[str]) -> list[dict[str, Any]]:
    """V2 output tensors (flat row-major data) for the `wanted` outputs."""
    return [tensor_json(name, arrays[name]) for name in wanted]


def tensor_json(name: str, array: Array) -> dict[str, Any]:
    datatype = datatype_of(array)
    flat = np.ascontiguousarray(array).reshape(-1)
    data: Any = flat.tolist() if datatype in ("BYTES", "FP16") else flat
    if datatype == "BYTES":
        data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in data]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def dumps(doc: Any) -> bytes:
    """JSON bytes; numpy arrays are serialised natively."""
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
