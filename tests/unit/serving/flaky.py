"""A scikit-learn-like model that raises on some inputs, for the fallback tests (unpickled by real servers too:
they get `tests/` on PYTHONPATH)."""

from __future__ import annotations

from typing import Any

import numpy as np


class FlakyModel:
    """Predicts like `model`, but raises RuntimeError when a row's first feature is above `above` (a failing
    model), and ValueError when it is below -100 (input the model rejects, like scikit-learn's checks)."""

    def __init__(self, model: Any, above: float) -> None:
        self.model = model
        self.above = above
        self.classes_ = model.classes_
        self.n_features_in_ = model.n_features_in_

    def _check(self, x: Any) -> None:
        if (np.asarray(x)[:, 0] > self.above).any():
            raise RuntimeError(f"flaky model: a first feature above {self.above}")
        if (np.asarray(x)[:, 0] < -100).any():
            raise ValueError("flaky model: a first feature below -100")

    def predict(self, x: Any) -> Any:
        self._check(x)
        return self.model.predict(x)

    def predict_proba(self, x: Any) -> Any:
        self._check(x)
        return self.model.predict_proba(x)


def save_flaky(model_path: str, out: str, above: float = 1.0) -> str:
    """Wrap the joblib model at `model_path` and save it to `out`; returns its digest."""
    import hashlib

    import joblib

    joblib.dump(FlakyModel(joblib.load(model_path), above), out)
    with open(out, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()
