"""The validation gate's runner against real sluice-serving processes: the dataset from a file:// URI or a
ConfigMap key, sent in batches to the V2 infer endpoint, scored; failures become the reading's error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from integration.serving.conftest import Start
from sluice.adapters.validation import OTHER_VERSION, ValidationRunner
from sluice.api.v1alpha1 import ValidationSpec
from sluice.core.plan import ValidationReading
from sluice.core.validation import Allowlists
from unit.serving.support import ModelFiles, classification_dataset_csv, make_flipped_classifier

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dataset") / "holdout.csv"
    path.write_text(classification_dataset_csv())
    return path


def run(runner: ValidationRunner, spec: dict[str, object], version: str = "1") -> ValidationReading:
    return asyncio.run(runner.run(ValidationSpec.model_validate(spec | {"min": 0.85}), "ml", "iris", version))


def runner(canary_url_template: str, dataset: Path) -> ValidationRunner:
    """A runner allowed to read file:// datasets in `dataset`'s directory."""
    return ValidationRunner(no_config_maps, canary_url_template, Allowlists(dataset_dir=str(dataset.parent)))


async def no_config_maps(namespace: str, name: str, key: str) -> str | None:
    return None


def test_a_model_is_scored_on_every_row_in_batches(classifier: ModelFiles, dataset: Path, start: Start) -> None:
    server = start({"MODEL_URI": str(classifier.onnx), "MODEL_NAME": "iris"})
    server.wait_ready()
    reading = run(runner(server.base, dataset), {"uri": dataset.as_uri(), "batchSize": 64})
    assert reading.error is None, reading
    assert reading.samples == 300
    assert reading.score is not None
    assert reading.score >= 0.85


def test_a_model_trained_on_flipped_labels_scores_low_from_a_config_map(
    dataset: Path, start: Start, tmp_path: Path
) -> None:
    flipped = make_flipped_classifier(tmp_path)
    server = start({"MODEL_URI": str(flipped.onnx), "MODEL_NAME": "iris"})
    server.wait_ready()
    asked: list[tuple[str, str, str]] = []

    async def config_map(namespace: str, name: str, key: str) -> str | None:
        asked.append((namespace, name, key))
        return dataset.read_text()

    reading = run(ValidationRunner(config_map, server.base), {"configMapRef": {"name": "holdout", "key": "d.csv"}})
    assert asked == [("ml", "holdout", "d.csv")]
    assert reading.score is not None
    assert reading.score < 0.15, reading


def test_failures_are_the_readings_error(classifier: ModelFiles, dataset: Path, start: Start) -> None:
    missing = run(ValidationRunner(no_config_maps, "http://127.0.0.1:9"), {"configMapRef": {"name": "x", "key": "k"}})
    assert missing.error == "ConfigMap ml/x or its key 'k' does not exist"
    unreachable = run(runner("http://127.0.0.1:9", dataset), {"uri": dataset.as_uri()})
    assert unreachable.error == "ConnectError while validating (details withheld)", unreachable
    server = start({"MODEL_URI": str(classifier.onnx), "MODEL_NAME": "other"})
    server.wait_ready()
    wrong_model = run(runner(server.base, dataset), {"uri": dataset.as_uri()})
    assert wrong_model.error == "the canary answered model metadata with HTTP 404", wrong_model


def test_a_replaced_pod_still_answering_for_the_canary_service_is_never_scored(
    dataset: Path, start: Start, tmp_path: Path
) -> None:
    # 2.0.0 was rolled back and its pod drains behind the canary Service while 3.0.0 starts: not 3.0.0's score.
    draining = start(
        {"MODEL_URI": str(make_flipped_classifier(tmp_path).onnx), "MODEL_NAME": "iris", "MODEL_VERSION": "2.0.0"}
    )
    draining.wait_ready()
    reading = run(runner(draining.base, dataset), {"uri": dataset.as_uri()}, version="3.0.0")
    assert (reading.score, reading.error) == (None, OTHER_VERSION), reading
