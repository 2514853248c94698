"""The fallback that answers when the model raises: a constant, or a second model (e.g. the previous version).

Every fallback answer is marked with the `x-sluice-fallback` response header and counted in
`sluice_serving_fallback_responses_total`, which the canary analysis counts as errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sluice_serving.config import Fallback
from sluice_serving.models import Array, Model, ModelError


class FallbackError(RuntimeError):
    """The fallback cannot answer this request (e.g. an output the constant does not give)."""


class Answerer:
    """Predicts in place of the model; `kind` is the metric label and header value."""

    kind = ""

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> dict[str, Array]:
        raise NotImplementedError


class ConstantAnswerer(Answerer):
    """The same value for every row, per output name."""

    kind = "constant"

    def __init__(self, values: dict[str, Any], prediction_output: str) -> None:
        self._values = {name: np.asarray(value) for name, value in values.items()}
        self._prediction_output = prediction_output

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> dict[str, Array]:
        first = next(iter(inputs.values()))
        rows = first.shape[0] if first.ndim else 1
        out = {}
        for name in (*wanted, self._prediction_output):
            value = self._values.get(name)
            if value is None:
                raise FallbackError(f"the constant fallback gives no value for output {name!r}")
            out[name] = np.broadcast_to(value, (rows, *value.shape))
        return out


class ModelAnswerer(Answerer):
    """A second model with the same inputs and (at least) the same outputs; it answers the wanted outputs and the
    served model's `prediction_output` (which the metrics read)."""

    kind = "model"

    def __init__(self, model: Model, prediction_output: str) -> None:
        self._model = model
        self._prediction_output = prediction_output

    def predict(self, inputs: dict[str, Array], wanted: Sequence[str]) -> dict[str, Array]:
        return self._model.predict(inputs, (*wanted, self._prediction_output))


def answerer(spec: Fallback, model: Model, fallback_model: Model | None) -> Answerer:
    """The fallback for `model`, checked against its signature; ModelError says what does not fit."""
    outputs = {o.name for o in model.outputs}
    if spec.kind == "constant":
        values = {(name or model.prediction_output): value for name, value in spec.outputs}
        unknown = sorted(set(values) - outputs)
        if unknown:
            raise ModelError(f"SLUICE_FALLBACK names unknown output(s) {unknown}; the model's are {sorted(outputs)}")
        if model.prediction_output not in values:
            raise ModelError(f"SLUICE_FALLBACK must give the prediction output {model.prediction_output!r}")
        for name, value in values.items():
            if np.asarray(value).dtype.kind not in "biufU":
                raise ModelError(f"SLUICE_FALLBACK: the value for {name!r} is not a number, string or list of them")
        return ConstantAnswerer(values, model.prediction_output)
    if fallback_model is None:
        raise ModelError("SLUICE_FALLBACK=model but no fallback model was loaded")
    if fallback_model.inputs != model.inputs:
        raise ModelError(
            f"the fallback model's inputs {[i.as_json() for i in fallback_model.inputs]} differ from the "
            f"model's {[i.as_json() for i in model.inputs]}"
        )
    missing = sorted(outputs - {o.name for o in fallback_model.outputs})
    if missing:
        raise ModelError(f"the fallback model lacks the model's output(s) {missing}")
    return ModelAnswerer(fallback_model, model.prediction_output)
