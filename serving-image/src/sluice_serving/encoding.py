"""Open Inference Protocol (V2) answers: output tensors as JSON values or binary data, and JSON bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from sluice_serving.binary import encode_raw
from sluice_serving.models import Array, datatype_of


def encode_outputs(
    arrays: dict[str, Array], wanted: Sequence[str], binary: frozenset[str] = frozenset()
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """V2 output tensors (flat row-major data) for the `wanted` outputs, and the binary data of those in `binary`
    (their tensors carry `binary_data_size` instead of `data`), in order."""
    tensors = []
    chunks = []
    for name in wanted:
        if name in binary:
            array = arrays[name]
            chunk = encode_raw(array)
            chunks.append(chunk)
            tensors.append({
                "name": name, "datatype": datatype_of(array), "shape": list(array.shape),
                "parameters": {"binary_data_size": len(chunk)},
            })  # fmt: skip
        else:
            tensors.append(tensor_json(name, arrays[name]))
    return tensors, chunks


def tensor_json(name: str, array: Array) -> dict[str, Any]:
    datatype = datatype_of(array)
    flat = array if array.ndim == 1 and array.flags.c_contiguous else np.ascontiguousarray(array).reshape(-1)
    data: Any = flat.tolist() if datatype in ("BYTES", "FP16") else flat
    if datatype == "BYTES":
        data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in data]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def dumps(doc: Any) -> bytes:
    """JSON bytes; numpy arrays are serialised natively."""
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
