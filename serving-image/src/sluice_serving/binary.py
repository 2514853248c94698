"""Tensors as raw bytes: the binary tensor data extension of the REST API (`Inference-Header-Content-Length`,
`binary_data_size`) and the `raw_input_contents`/`raw_output_contents` of gRPC share these decoders and encoders.

Layout (the extension's, which gRPC's raw contents use too): numbers little-endian in row-major order, BOOL one byte
per element, BYTES each element as a 4-byte little-endian length followed by that many bytes. Every size is checked
against the shape before an array exists, and floats must be finite (JSON cannot carry NaN or infinity, and the
scikit-learn runtime relies on that)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from sluice_serving.errors import RequestError, StringLimits
from sluice_serving.models import NUMPY_TYPES, Array, datatype_of

_LENGTH = struct.Struct("<I")


def split_binary(tensors: Sequence[Any], region: memoryview) -> list[memoryview | None]:
    """The binary data of each request tensor (None for those in JSON), taken in order from `region`, the bytes
    after the JSON header: each tensor with `parameters.binary_data_size` takes that many bytes, and together
    they must take all of `region`."""
    chunks: list[memoryview | None] = []
    offset = 0
    for i, tensor in enumerate(tensors):
        size = binary_size(tensor)
        if size is None:
            chunks.append(None)
            continue
        if "data" in tensor:
            raise RequestError(400, f"inputs[{i}] has both 'data' and binary_data_size")
        if offset + size > len(region):
            raise RequestError(400, "the binary_data_size parameters add up to more than the binary data sent")
        chunks.append(region[offset : offset + size])
        offset += size
    if offset != len(region):
        raise RequestError(400, "the binary data sent is longer than the binary_data_size parameters add up to")
    return chunks


def binary_size(tensor: Any) -> int | None:
    """A request tensor's `parameters.binary_data_size` (None when it has none), or a 400."""
    params = tensor.get("parameters") if isinstance(tensor, dict) else None
    if not isinstance(params, dict) or "binary_data_size" not in params:
        return None
    size = params["binary_data_size"]
    if type(size) is not int or size < 0:
        raise RequestError(400, "'binary_data_size' must be a non-negative integer")
    return size


def decode_raw(  # noqa: PLR0917 (the tensor's four facts, where it is, and the limits)
    raw: memoryview | bytes, datatype: str, target: str, count: int, what: str, strings: StringLimits
) -> Array:
    """`count` elements of `datatype` from `raw` as a 1-D array of the model's `target` datatype."""
    if datatype == "BYTES":
        return _decode_strings(raw, count, what, strings)
    width = np.dtype(NUMPY_TYPES[datatype]).itemsize
    if len(raw) != count * width:
        raise RequestError(400, f"{what} has {len(raw)} bytes but {count} {datatype} values take {count * width}")
    if datatype == "BOOL":
        flags: Array = np.frombuffer(raw, dtype=np.uint8) != 0
        return flags
    values = np.frombuffer(raw, dtype=np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<"))
    return cast_checked(values, target, what)


def cast_checked(values: Array, target: str, what: str) -> Array:
    """`values` (numbers) as a new array of `target`: floats must be finite, integers must fit."""
    kind = values.dtype.kind
    if kind == "f" and not np.isfinite(values).all():
        raise RequestError(400, f"{what} holds NaN or infinity")
    dtype = np.dtype(NUMPY_TYPES[target])
    if kind in "iu" and dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        if int(values.min()) < info.min or int(values.max()) > info.max:
            raise RequestError(400, f"{what} holds a value out of range for {target}")
    return values.astype(dtype)


def _decode_strings(raw: memoryview | bytes, count: int, what: str, strings: StringLimits) -> Array:
    if len(raw) > strings.total * 4 + count * 4:  # 4 bytes of UTF-8 per character at most, and the lengths
        raise RequestError(400, f"{what} holds more than SLUICE_MAX_STRINGS_TOTAL_CHARS ({strings.total}) characters")
    values: list[str] = []
    offset = 0
    total = 0
    data = bytes(raw)
    for _ in range(count):
        if offset + 4 > len(data):
            raise RequestError(400, f"{what} holds fewer than {count} length-prefixed BYTES elements")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > len(data):
            raise RequestError(400, f"{what} holds a BYTES element longer than the data sent")
        values.append(utf8(data[offset : offset + length], what, strings))
        total += len(values[-1])
        offset += length
    if offset != len(data):
        raise RequestError(400, f"{what} holds more bytes than {count} BYTES elements")
    if total > strings.total:
        raise RequestError(400, f"{what} holds more than SLUICE_MAX_STRINGS_TOTAL_CHARS ({strings.total}) characters")
    array = np.empty(count, dtype=object)
    array[:] = values
    return array


def utf8(value: bytes, what: str, strings: StringLimits) -> str:
    """One BYTES element as text: the models take strings. At most SLUICE_MAX_STRING_CHARS characters."""
    if len(value) > strings.per_string * 4:
        raise RequestError(400, f"{what} holds a string longer than SLUICE_MAX_STRING_CHARS ({strings.per_string})")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, f"{what} holds a BYTES element that is not UTF-8") from None
    if len(text) > strings.per_string:
        raise RequestError(400, f"{what} holds a string longer than SLUICE_MAX_STRING_CHARS ({strings.per_string})")
    return text


def encode_raw(array: Array) -> bytes:
    """An output array in the binary layout (row-major)."""
    datatype = datatype_of(array)
    flat = np.ascontiguousarray(array).reshape(-1)
    if datatype == "BYTES":
        parts = []
        for value in flat.tolist():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    if datatype == "BOOL":
        return flat.astype(np.uint8).tobytes()
    return flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
