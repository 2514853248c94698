"""Every V2 datatype, for the echo model (`support.make_echo_model`) and the clients that send them all. A module of
its own so that a client's fresh interpreter imports no more than this (tests/integration/serving/oip_clients.py)."""

from typing import Any

import numpy as np

ECHO_DATATYPES = (
    "FP32", "FP16", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BOOL", "BYTES",
)  # fmt: skip
"""FP32 first: the input the feature metrics read."""

NUMPY_OF: dict[str, Any] = {
    "FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "BOOL": np.bool_, "BYTES": np.object_,
}  # fmt: skip
"""The numpy type a client's array of each datatype has."""
