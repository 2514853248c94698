"""models:/ uris in the pure core: the reference parsed, the flavor chosen from an MLmodel, when a resolution is due,
and the spec.model it pins."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelFormat, ModelSpec
from sluice.core.registry import (
    DIGEST_MISMATCH,
    Flavor,
    FlavorError,
    RegistryRef,
    Resolution,
    choose_flavor,
    parse_registry_uri,
    pinned,
    resolution_due,
    resolved_model,
)

DIGEST = "sha256:" + "cd" * 32
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("models:/fraud/12", RegistryRef("fraud", "12", None)),
        ("models:/fraud.v2@champion", RegistryRef("fraud.v2", None, "champion")),
        ("models:/fraud/0", None),
        ("models:/fraud", None),
        ("models:/fraud/1/2", None),
        ("models:/../x/1", None),
        ("models:/fraud@", None),
        ("s3://models/fraud/1", None),
    ],
)
def test_a_registry_uri_names_a_model_and_a_version_or_an_alias(uri: str, ref: RegistryRef | None) -> None:
    assert parse_registry_uri(uri) == ref


def test_the_flavor_served_is_the_first_native_one_and_its_file() -> None:
    mlmodel = {
        "flavors": {"python_function": {}, "sklearn": {"pickled_model": "model.pkl"}, "onnx": {"data": "m.onnx"}}
    }

    assert choose_flavor(mlmodel, None) == Flavor(ModelFormat.ONNX, "m.onnx")
    assert choose_flavor(mlmodel, ModelFormat.SKLEARN) == Flavor(ModelFormat.SKLEARN, "model.pkl")


@pytest.mark.parametrize(
    ("mlmodel", "text"),
    [
        ("not a mapping", "has no flavors mapping"),
        ({"flavors": {"python_function": {"loader_module": "custom"}}}, "has no flavor sluice serves"),
        ({"flavors": {"xgboost": {"data": "../../etc/passwd"}}}, "names no artifact file"),
        ({"flavors": {"sklearn": {"pickled_model": "m", "serialization_format": "dill"}}}, "serialization"),
        ({"flavors": {"lightgbm": {"data": "m.pkl", "model_class": "lightgbm.sklearn.LGBMClassifier"}}}, "Booster"),
    ],
)
def test_an_mlmodel_without_a_flavor_sluice_can_serve_is_refused_in_fixed_words(mlmodel: object, text: str) -> None:
    with pytest.raises(FlavorError, match=text):
        choose_flavor(mlmodel, None)


def spec(uri: str = "models:/fraud@champion", digest: str | None = None) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": {"version": "1.0.0", "uri": uri, "digest": digest}})


def test_a_resolution_pins_the_version_format_and_digest_until_spec_model_changes() -> None:
    resolved = resolved_model(spec().model, Resolution("4", ModelFormat.SKLEARN, DIGEST), NOW)

    model = pinned(spec(), resolved).model

    assert (model.uri, model.format, model.digest) == ("models:/fraud/4", ModelFormat.SKLEARN, DIGEST)
    assert not resolution_due(spec().model, resolved)
    assert resolution_due(ModelSpec(version="2.0.0", uri="models:/fraud@champion"), resolved)
    assert pinned(spec("models:/fraud@canary"), resolved) == spec("models:/fraud@canary")


def test_a_spec_model_digest_other_than_the_artifacts_is_refused() -> None:
    with pytest.raises(ValueError, match=DIGEST_MISMATCH):
        resolved_model(spec(digest="sha256:" + "0" * 64).model, Resolution("4", ModelFormat.SKLEARN, DIGEST), NOW)


def test_a_uri_outside_the_registry_needs_no_resolution() -> None:
    assert not resolution_due(ModelSpec(version="1", uri="s3://m/1.onnx", format=ModelFormat.ONNX), None)
