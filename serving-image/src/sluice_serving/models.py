"""Model runtimes behind one small interface (`Model`): ONNX (onnxruntime) and scikit-learn (joblib or skops) here,
XGBoost and LightGBM in sluice_serving.trees, custom Python models in sluice_serving.custom."""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger("sluice_serving.models")

Array = npt.NDArray[Any]
Results = dict[str, Array]
"""A model's outputs by name."""

# V2 datatype <-> numpy dtype. BYTES tensors are numpy object/str arrays.
NUMPY_TYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_ONNX_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
FORMATS = ("onnx", "sklearn", "xgboost", "lightgbm", "python")
_CODE_HINT = (
    "pickle-based model files (joblib/pickle) and custom Python models are code: they load only with "
    "MODEL_DIGEST pinned (sha256:<hex>)"
)


class ModelError(RuntimeError):
    """The model file cannot be served; the message says why."""


_DATATYPES = {np.dtype(t): name for name, t in NUMPY_TYPES.items() if name != "BYTES"}


def datatype_of(array: Array) -> str:
    """The V2 datatype of a numpy array (strings and objects are BYTES)."""
    datatype = _DATATYPES.get(array.dtype)
    if datatype is not None:
        return datatype
    if array.dtype.kind in "USO":
        return "BYTES"
    raise ModelError(f"the model produced an unsupported dtype {array.dtype}")


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of the model's signature; -1 in `shape` is a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class Model:
    """A loaded model: its signature and `predict`.

    `prediction_output` names the output that the prediction metrics read; `classifier` says whether its
    values are class labels (counted) or numbers (bucketed). `feature_names` label the input features.
    """

    platform = ""
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    prediction_output = ""
    classifier = False
    feature_names: tuple[str, ...] = ()

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> dict[str, Array]:
        """Run the model; return at least the `wanted` outputs and `prediction_output`."""
        raise NotImplementedError

    def answer(self, inputs: dict[str, Array], wanted: Sequence[str]) -> Results | Awaitable[Results]:
        """What the server calls: `predict`'s results, or an awaitable of them for a model that answers later
        without blocking the event loop (the fault-injecting wrapper, sluice_serving.faults)."""
        return self.predict(inputs, wanted)

    def read_signature(self) -> None:
        """For a model described by its tensors alone: the first output is the prediction, a class label when its
        datatype is an integer, a boolean or a string; the features are the columns of a 2-D first input."""
        first = self.outputs[0]
        self.prediction_output = first.name
        self.classifier = first.datatype.startswith(("INT", "UINT", "BOOL", "BYTES"))
        width = self.inputs[0].shape[1] if len(self.inputs[0].shape) == 2 else -1
        self.feature_names = tuple(str(i) for i in range(max(width, 0)))

    def warm_up(self) -> None:
        """Run one zero batch so the first request does not pay for lazy allocations."""
        feed = {}
        for spec in self.inputs:
            if any(d < 0 for d in spec.shape[1:]) or spec.datatype == "BYTES":
                return
            feed[spec.name] = np.zeros((1, *spec.shape[1:]), dtype=NUMPY_TYPES[spec.datatype])
        try:
            self.predict(feed, [o.name for o in self.outputs])
        except Exception as exc:  # a model that rejects zeros still serves real inputs
            log.debug("warm-up skipped", extra={"error": str(exc)})


class WrappedModel(Model):
    """A model around another (`model`), with its signature: fault injection, batching."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.platform = model.platform
        self.inputs = model.inputs
        self.outputs = model.outputs
        self.prediction_output = model.prediction_output
        self.classifier = model.classifier
        self.feature_names = model.feature_names


class OnnxModel(Model):
    """An ONNX graph run by onnxruntime on the CPU."""

    platform = "onnxruntime_onnx"

    def __init__(self, file: ModelFile, num_threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(file.data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load {file.name}: {exc}") from exc
        self.inputs = tuple(self._spec(i) for i in self._session.get_inputs())
        self.outputs = tuple(self._spec(o) for o in self._session.get_outputs())
        self.read_signature()
        # onnxruntime's public `run` checks the feed again on every call (its input names, graph capture, OrtValue
        # ownership; about a microsecond, docs/benchmarks.md). Requests reach `predict` validated against this
        # signature, as numpy arrays, on the CPU provider alone, so its binding's `run` (same arguments) is called
        # when the session has one.
        binding_run = getattr(getattr(self._session, "_sess", None), "run", None)
        self._run = binding_run if callable(binding_run) else self._session.run

    @staticmethod
    def _spec(node: Any) -> TensorSpec:
        datatype = _ONNX_TYPES.get(node.type)
        if datatype is None:
            hint = " (skl2onnx: convert with options={'zipmap': False})" if "map" in node.type else ""
            raise ModelError(f"ONNX tensor {node.name!r} has type {node.type}, which is not a tensor{hint}")
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
        return TensorSpec(node.name, datatype, shape)

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> dict[str, Array]:
        """Run only the outputs wanted and the prediction output (onnxruntime skips the graph's nodes that feed
        no requested output, and copies out only those asked for)."""
        names = wanted if self.prediction_output in wanted else (*wanted, self.prediction_output)
        return dict(zip(names, self._run(names, inputs, None), strict=True))  # (a name given twice is answered twice)


class SklearnModel(Model):
    """A scikit-learn estimator (or pipeline) with `predict` and, for classifiers, `predict_proba`."""

    platform = "sklearn"

    def __init__(self, estimator: Any) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise ModelError(f"the loaded object ({type(estimator).__name__}) has no predict() method")
        self._est = estimator
        width = int(getattr(estimator, "n_features_in_", -1))
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            self.feature_names = tuple(str(n) for n in names)
            # Requests carry plain arrays; the names are only metric labels.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
        else:
            self.feature_names = tuple(str(i) for i in range(max(width, 0)))
        self.inputs = (TensorSpec("input", "FP64", (-1, width)),)
        classes = getattr(estimator, "classes_", None)
        self.classifier = classes is not None
        self._proba = self.classifier and callable(getattr(estimator, "predict_proba", None))
        label_type = datatype_of(np.asarray(classes)) if classes is not None else "FP64"
        outputs = [TensorSpec("predict", label_type, (-1,))]
        if self._proba and classes is not None:
            outputs.append(TensorSpec("predict_proba", "FP64", (-1, len(classes))))
        self.outputs = tuple(outputs)
        self.prediction_output = "predict"

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> dict[str, Array]:
        if not getattr(_THREAD, "assume_finite", False):
            _assume_finite()
        x = inputs["input"]
        out = {"predict": np.asarray(self._est.predict(x))}
        if self._proba and "predict_proba" in wanted:
            out["predict_proba"] = np.asarray(self._est.predict_proba(x))
        return out


_THREAD = threading.local()


def _assume_finite() -> None:
    """Skip scikit-learn's NaN/infinity scan of every input (about a fifth of a batch-1 predict): requests are
    JSON, which cannot carry NaN or infinity (orjson refuses them), and every value is cast to float64. The
    setting is per thread in scikit-learn, so each thread that predicts sets it once."""
    import sklearn

    sklearn.set_config(assume_finite=True)
    _THREAD.assume_finite = True


@dataclass(frozen=True)
class ModelFile:
    """A model file's bytes, as read once to check its digest, and its name (for messages). Loading from these
    bytes, never from the path again, means the model that runs is the one that was verified. `directory`: the
    bytes are a directory's canonical encoding (sluice_serving.custom.pack_directory), not a file's."""

    name: str
    data: bytes
    directory: bool = False
    format: str = ""
    """The format its source declared (a models:/ uri's flavor); empty: none."""

    @classmethod
    def read(cls, path: Path) -> ModelFile:
        return cls(path.name, path.read_bytes())


def load_model(file: ModelFile, fmt: str, digest_pinned: bool, num_threads: int) -> Model:
    """Load the (already verified) `file` as `fmt` (one of FORMATS) and warm it up."""
    model: Model
    if file.directory and fmt != "python":
        raise ModelError(f"{file.name} is a directory: only the python format loads one")
    if fmt == "onnx":
        model = OnnxModel(file, num_threads)
    elif fmt in ("xgboost", "lightgbm"):
        from sluice_serving import trees

        model = trees.load(file, fmt, num_threads)
    elif fmt == "python":
        require_pinned(file, digest_pinned)
        from sluice_serving import custom

        model = custom.PythonModel(file)
    else:
        is_zip = file.data[:4] == b"PK\x03\x04"
        model = SklearnModel(_load_skops(file, digest_pinned) if is_zip else _load_pickle(file, digest_pinned))
    model.warm_up()
    return model


def require_pinned(file: ModelFile, digest_pinned: bool) -> None:
    """Code (a pickle, a custom Python model) runs only when its digest was pinned and checked."""
    if not digest_pinned:
        raise ModelError(f"refusing to load {file.name}: {_CODE_HINT}")


def _load_pickle(file: ModelFile, digest_pinned: bool) -> Any:
    require_pinned(file, digest_pinned)
    import joblib

    try:
        return joblib.load(io.BytesIO(file.data))
    except Exception as exc:
        raise ModelError(f"joblib cannot load {file.name}: {exc}") from exc


def _load_skops(file: ModelFile, digest_pinned: bool) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise ModelError(f"{file.name} is a skops file: install sluice-serving[skops]") from None
    try:
        untrusted = sio.get_untrusted_types(data=file.data)
    except Exception as exc:
        raise ModelError(f"skops cannot read {file.name}: {exc}") from exc
    if untrusted and not digest_pinned:
        raise ModelError(
            f"refusing to load {file.name}: it needs types skops does not trust ({', '.join(untrusted)}); "
            "pin MODEL_DIGEST to trust this exact file"
        )
    try:
        return sio.loads(file.data, trusted=untrusted)
    except Exception as exc:
        raise ModelError(f"skops cannot load {file.name}: {exc}") from exc
