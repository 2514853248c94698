"""sluice_serving's models:/ resolver (registry.py) against a stand-in tracking server: the version an alias
names, the flavor's file and format, the MLmodel reader, a redirect refused (the hostile answers both resolvers
refuse alike: tests/unit/adapters/test_adapters_registry.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice_serving.fetch import FetchError, fetch
from sluice_serving.registry import RegistryError, flavors, resolve
from unit.registry_stub import ARTIFACTS, HOSTILE, MLMODEL, MODEL_BYTES, stub_registry


def test_an_alias_resolves_to_its_version_and_the_flavors_file_on_the_artifact_proxy() -> None:
    with stub_registry() as stub:
        artifact = resolve("models:/m@champion", stub.url, "", 5)

    assert (artifact.version, artifact.format) == ("3", "lightgbm")
    assert artifact.url == f"{stub.url}{ARTIFACTS}/model.lgb"


def test_a_pinned_version_is_fetched_with_its_digest_checked_and_carries_its_flavors_format(tmp_path: Path) -> None:
    with stub_registry() as stub:
        file = fetch("models:/m/3", str(tmp_path), "", 5, 1 << 20, stub.url, "lightgbm")
        with pytest.raises(FetchError, match="digest mismatch"):
            fetch("models:/m/3", str(tmp_path / "2"), "sha256:" + "0" * 64, 5, 1 << 20, stub.url, "")

    assert (file.data, file.format) == (MODEL_BYTES, "lightgbm")


def test_the_mlmodel_reader_keeps_each_flavors_scalar_keys_and_a_nested_block_as_empty() -> None:
    found = flavors(MLMODEL)

    assert found["lightgbm"] == {
        "code": "null",
        "data": "model.lgb",
        "model_class": "lightgbm.basic.Booster",
        "skops_trusted_types": "",
    }
    assert found["python_function"]["loader_module"] == "mlflow.lightgbm"


def test_a_model_without_the_format_asked_for_is_refused() -> None:
    with stub_registry() as stub, pytest.raises(RegistryError, match=r"^the registered model has no flavor of MODEL"):
        resolve("models:/m/3", stub.url, "onnx", 5)


def test_a_registry_uri_without_a_tracking_server_is_refused() -> None:
    with pytest.raises(RegistryError, match="needs MLFLOW_TRACKING_URI"):
        resolve("models:/m/3", "", "", 5)


def test_a_redirect_is_not_followed() -> None:
    with stub_registry() as stub:
        stub.answers[HOSTILE["server error"][0]] = (302, b"")
        stub.headers["Location"] = "http://192.0.2.1/"
        with pytest.raises(RegistryError, match="redirect"):
            resolve("models:/m@champion", stub.url, "", 5)
