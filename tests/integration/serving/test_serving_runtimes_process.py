"""XGBoost, LightGBM and custom Python models served by a real sluice-serving process: its answers are the
library's own predictions, its metrics count them, and a custom model (code) starts only with its digest pinned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from integration.serving.conftest import Serving, Start
from sluice_serving.custom import pack_directory
from sluice_serving.fetch import sha256_digest
from unit.serving.support import (
    classification_data,
    make_boosted_classifier,
    make_custom_model,
    rows_body,
)

pytestmark = pytest.mark.integration

ROWS = classification_data()[0][:16]


def _infer(server: Serving, outputs: list[str]) -> dict[str, Any]:
    server.wait_ready()
    reply = server.client.post(
        "/v2/models/model/infer", content=rows_body(ROWS, outputs=[{"name": n} for n in outputs])
    )
    assert reply.status_code == 200, reply.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in reply.json()["outputs"]}


def _assert_metrics_count(server: Serving, label: str) -> None:
    """The class counter and the feature histograms of the generic metrics saw the 16 rows."""
    text = server.client.get("/metrics").text

    def values(family: str) -> list[float]:
        return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(family + "{")]

    assert sum(values("sluice_serving_predicted_class_total")) == len(ROWS), text
    assert f'class="{label}"' in text
    assert values("sluice_serving_input_feature_count") == [len(ROWS)] * ROWS.shape[1], text


@pytest.mark.parametrize("file_name", ["model.json", "model.txt"], ids=["xgboost", "lightgbm"])
def test_a_gradient_boosted_model_answers_what_its_library_predicts(
    file_name: str, tmp_path: Path, start: Start
) -> None:
    path, estimator = make_boosted_classifier(tmp_path, file_name)
    fmt = "lightgbm" if file_name.endswith(".txt") else "xgboost"
    server = start({"MODEL_URI": str(path), "MODEL_FORMAT": fmt})

    outputs = _infer(server, ["predict", "predict_proba"])

    assert outputs["predict"].tolist() == estimator.predict(ROWS).tolist()
    np.testing.assert_allclose(outputs["predict_proba"], estimator.predict_proba(ROWS), rtol=1e-6)
    assert server.client.get("/v2/models/model").json()["platform"] == fmt
    _assert_metrics_count(server, "1")


def test_a_custom_python_model_directory_serves_with_its_digest_pinned(tmp_path: Path, start: Start) -> None:
    directory, estimator = make_custom_model(tmp_path)
    digest = sha256_digest(pack_directory(directory, 1 << 20))
    server = start({"MODEL_URI": str(directory), "MODEL_FORMAT": "python", "MODEL_DIGEST": digest})

    outputs = _infer(server, ["label", "probability"])

    assert outputs["label"].tolist() == estimator.predict(ROWS).tolist()
    np.testing.assert_allclose(outputs["probability"], estimator.predict_proba(ROWS)[:, 1], rtol=1e-9)
    _assert_metrics_count(server, "1")


@pytest.mark.parametrize(
    ("digest", "refusal"),
    [("", "refusing to load custom-model"), ("sha256:" + "0" * 64, "digest mismatch")],
    ids=["missing digest", "wrong digest"],
)
def test_a_custom_python_model_is_refused_without_its_exact_digest(
    digest: str, refusal: str, tmp_path: Path, start: Start
) -> None:
    directory, _ = make_custom_model(tmp_path)
    ran = tmp_path / "ran"
    (directory / "model.py").write_text((directory / "model.py").read_text() + f"\nPath({str(ran)!r}).touch()\n")
    server = start({"MODEL_URI": str(directory), "MODEL_FORMAT": "python", "MODEL_DIGEST": digest})

    code, log = server.wait_exit()

    assert code == 1
    assert refusal in log
    assert not ran.exists()
