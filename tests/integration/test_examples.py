"""Every manifest in examples/ is admitted by the real kube-apiserver with the generated CRD installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from harness import create_namespace, delete_namespace
from integration.sluice_crd import REPO_ROOT, install_crd
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION, ModelDeployment

pytestmark = pytest.mark.integration

EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def examples_namespace(control_plane: Any, kube_api_client: Any) -> Iterator[str]:
    install_crd(control_plane)
    name = create_namespace(kube_api_client, prefix="examples")
    yield name
    delete_namespace(kube_api_client, name)


def test_the_required_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"minimal.yaml", "sklearn-with-digest.yaml", "gateway-canary.yaml", "replica-ratio.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_the_example_is_admitted_by_the_api_server(kube_api_client: Any, examples_namespace: str, path: Path) -> None:
    from kubernetes import client

    for manifest in yaml.safe_load_all(path.read_text()):
        created = cast(
            dict[str, Any],
            client.CustomObjectsApi(kube_api_client).create_namespaced_custom_object(
                GROUP, VERSION, examples_namespace, PLURAL, manifest, field_validation="Strict"
            ),
        )
        assert created["metadata"]["uid"]
        assert ModelDeployment.model_validate(created).spec.model.version == manifest["spec"]["model"]["version"]
