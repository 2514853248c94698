"""A custom model for sluice_serving's `python` format (docs/serving.md#custom-python-models): a logistic regression
whose weights are in weights.json, beside this file. Serve the directory with its digest pinned:

    MODEL_FORMAT=python MODEL_URI=examples/custom-model MODEL_DIGEST=$(sluice-serving-digest examples/custom-model) \\
        sluice-serving
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class Model:
    """The class sluice_serving looks for in model.py: load(), predict(inputs) -> outputs, metadata()."""

    def load(self) -> None:
        """Once, before the first request: the model's files are beside this one."""
        doc = json.loads((Path(__file__).parent / "weights.json").read_text())
        self.coef = np.asarray(doc["coef"], dtype=np.float64)
        self.intercept = float(doc["intercept"])

    def metadata(self) -> dict[str, Any]:
        """The V2 signature: the first output is the prediction the metrics read (INT64 labels: a classifier)."""
        return {
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, len(self.coef)]}],
            "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "probability", "datatype": "FP64", "shape": [-1]},
            ],
        }

    def predict(self, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        """Rows of `input` (already validated against metadata()) to one label and one probability each."""
        probability = 1.0 / (1.0 + np.exp(-(inputs["input"] @ self.coef + self.intercept)))
        return {"label": (probability > 0.5).astype(np.int64), "probability": probability}
