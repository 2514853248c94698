"""docs/api.md: its generated blocks are up to date and cover every field, annotation and example."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.api import v1alpha1 as api
from sluice.codegen import apidocs, crdgen

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCS = REPO_ROOT / apidocs.DOCS_PATH


def test_the_api_reference_is_what_the_models_generate() -> None:
    text = DOCS.read_text()
    assert text == apidocs.render(text, REPO_ROOT), f"{apidocs.DOCS_PATH} is stale: run `make crds`"


def test_every_spec_and_status_field_is_documented() -> None:
    text = DOCS.read_text()
    schema = crdgen.openapi_schema()
    for top in ("spec", "status"):
        for path, node in apidocs._objects(schema["properties"][top], top):
            assert f"### `{path}`" in text
            for name in node["properties"]:
                assert f"| `{name}` |" in text, f"{path}.{name}"


def test_the_manual_control_annotations_are_listed() -> None:
    text = DOCS.read_text()
    for annotation in (api.ACTION_ANNOTATION, api.ACTION_ID_ANNOTATION, api.PAUSED_ANNOTATION):
        assert f"| `{annotation}` |" in text
    for action in api.Action:
        assert f"`{action.value}`" in text


def test_every_example_is_shown() -> None:
    text = DOCS.read_text()
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        assert f"(../examples/{path.name})" in text


def test_rendering_fails_when_a_generated_block_is_missing() -> None:
    with pytest.raises(ValueError, match="lacks the generated blocks"):
        apidocs.render("# API\n", REPO_ROOT)


def test_rendering_replaces_only_what_is_between_the_markers() -> None:
    text = DOCS.read_text()
    edited = text.replace("<!-- BEGIN GENERATED: columns -->\n", "<!-- BEGIN GENERATED: columns -->\nSTALE ROW\n")
    edited = edited.replace("# ModelDeployment API reference", "# ModelDeployment API reference (edited)")
    rendered = apidocs.render(edited, REPO_ROOT)
    assert "STALE ROW" not in rendered
    assert rendered == text.replace("# ModelDeployment API reference", "# ModelDeployment API reference (edited)")
