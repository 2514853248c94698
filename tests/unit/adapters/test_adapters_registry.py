"""The operator's models:/ resolver (adapters/registry.py) against a stand-in tracking server: the version an alias
names, the flavor, the artifact's digest computed as it streams in within its byte bound, and hostile answers
refused in fixed words that repeat nothing the server said, by this resolver and by the model server's alike."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable

import pytest

import sluice_serving.registry
from sluice.adapters.registry import MlflowRegistry, RegistryError
from sluice.api.v1alpha1 import ModelFormat
from sluice.core.registry import Resolution, parse_registry_uri
from unit.registry_stub import HOSTILE, MODEL_BYTES, SECRET, stub_registry


def resolve(url: str, uri: str = "models:/m@champion", max_bytes: int = 1 << 20, timeout: float = 5) -> Resolution:
    ref = parse_registry_uri(uri)
    assert ref is not None
    return asyncio.run(MlflowRegistry(url, max_bytes, timeout).resolve(ref, None))


def test_an_alias_resolves_to_its_version_its_flavors_format_and_the_artifacts_digest() -> None:
    with stub_registry() as stub:
        resolution = resolve(stub.url)

    digest = "sha256:" + hashlib.sha256(MODEL_BYTES).hexdigest()
    assert resolution == Resolution(version="3", format=ModelFormat.LIGHTGBM, digest=digest)


def test_an_artifact_larger_than_the_operators_bound_is_refused() -> None:
    with stub_registry() as stub, pytest.raises(RegistryError, match=r"^the registered model.s artifact is larger"):
        resolve(stub.url, "models:/m/3", max_bytes=4)


def test_an_unreachable_tracking_server_is_refused_in_fixed_words() -> None:
    with pytest.raises(RegistryError, match=r"^the MLflow tracking server could not be reached$"):
        resolve("http://127.0.0.1:9")


def serving_resolve(url: str, timeout: float = 5) -> object:
    return sluice_serving.registry.resolve("models:/m@champion", url, "", timeout)


@pytest.mark.parametrize("resolver", [resolve, serving_resolve], ids=["operator", "server"])
def test_a_tracking_server_slower_than_the_timeout_is_refused_by_both_resolvers(
    resolver: Callable[..., object],
) -> None:
    with stub_registry() as stub:
        stub.delay = 1.5
        with pytest.raises((RegistryError, sluice_serving.registry.RegistryError), match=r"did not answer in time$"):
            resolver(stub.url, timeout=0.5)


@pytest.mark.parametrize("resolver", [resolve, serving_resolve], ids=["operator", "server"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_tracking_server_is_refused_by_both_resolvers_in_fixed_words(
    case: str, resolver: Callable[[str], object]
) -> None:
    path, answer, text = HOSTILE[case]
    with stub_registry() as stub:
        stub.answers[path] = answer
        with pytest.raises((RegistryError, sluice_serving.registry.RegistryError)) as refused:
            resolver(stub.url)

    assert re.search(text, str(refused.value)), str(refused.value)
    assert SECRET.decode() not in str(refused.value)
