"""The generated CRD: committed file up to date, structural, and consistent with its own columns and subresources."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sluice.api import v1alpha1 as api
from sluice.codegen import crdgen, generate

REPO_ROOT = Path(__file__).resolve().parents[3]


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}[*]")


def _field(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    node = schema
    for name in json_path.strip(".").split("."):
        node = node["properties"][name.split("[", 1)[0]]
        if "[" in name:
            node = node["items"]
    return node


def test_the_committed_crd_is_what_the_models_generate() -> None:
    committed = (REPO_ROOT / crdgen.CRD_PATH).read_text()
    assert committed == crdgen.render_crd(), f"{crdgen.CRD_PATH} is stale: run `make crds` and commit the result"


def test_the_committed_crd_parses_to_the_generated_object() -> None:
    assert yaml.safe_load((REPO_ROOT / crdgen.CRD_PATH).read_text()) == crdgen.crd()


def test_every_schema_node_is_structural() -> None:
    for path, node in _nodes(crdgen.openapi_schema()):
        assert not {"$ref", "$defs", "title", "allOf", "oneOf", "nullable", "examples"} & set(node), path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node, path
            assert node["type"] in {"object", "array", "string", "integer", "number", "boolean"}, path
        if node.get("type") == "object" and path != ".metadata":
            assert ("properties" in node) != ("additionalProperties" in node), path


def test_spec_strings_lists_and_maps_are_bounded_so_cel_costs_stay_within_budget() -> None:
    for path, node in _nodes(crdgen.openapi_schema()["properties"]["spec"], ".spec"):
        kind = node.get("type")
        if kind == "string" and "enum" not in node:
            assert "maxLength" in node or node.get("pattern", "").endswith("{64}$"), path
        if kind == "array":
            assert "maxItems" in node, path
        if kind == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path


def test_optional_fields_are_not_required_and_required_ones_are() -> None:
    spec = crdgen.openapi_schema()["properties"]["spec"]
    assert spec["required"] == ["model"]
    assert spec["properties"]["model"]["required"] == ["version", "uri"]  # format: not for a models:/ uri
    assert "required" not in spec["properties"]["rollout"]


def test_enums_come_from_the_python_enums() -> None:
    schema = crdgen.openapi_schema()
    assert _field(schema, ".spec.model.format")["enum"] == [member.value for member in api.ModelFormat]
    assert _field(schema, ".spec.analysis.onInconclusive")["enum"] == [m.value for m in api.InconclusivePolicy]
    assert _field(schema, ".status.phase")["enum"] == [member.value for member in api.Phase]


def test_resource_quantities_are_int_or_string() -> None:
    requests = _field(crdgen.openapi_schema(), ".spec.serving.resources.requests")
    assert requests["additionalProperties"]["x-kubernetes-int-or-string"] is True
    assert requests["additionalProperties"]["pattern"] == api.QUANTITY_PATTERN


def test_lists_declare_their_kubernetes_list_types() -> None:
    schema = crdgen.openapi_schema()
    assert _field(schema, ".spec.rollout.steps")["x-kubernetes-list-type"] == "set"
    assert _field(schema, ".spec.analysis.metrics")["x-kubernetes-list-map-keys"] == ["name"]
    assert _field(schema, ".spec.serving.env")["x-kubernetes-list-map-keys"] == ["name"]
    assert _field(schema, ".status.conditions")["x-kubernetes-list-map-keys"] == ["type"]


def test_every_cel_rule_has_a_message_and_field_paths_name_existing_fields() -> None:
    for path, node in _nodes(crdgen.openapi_schema()):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"], (path, rule)
            if "fieldPath" in rule:
                assert rule["fieldPath"].lstrip(".") in node["properties"], (path, rule)


def test_the_status_has_no_defaults() -> None:
    status = crdgen.openapi_schema()["properties"]["status"]
    assert [path for path, node in _nodes(status, ".status") if "default" in node] == []


def test_names_short_name_and_category() -> None:
    names = crdgen.crd()["spec"]["names"]
    assert names["kind"] == "ModelDeployment"
    assert names["shortNames"] == ["mdep"]
    assert names["categories"] == ["sluice"]
    assert crdgen.crd()["metadata"]["name"] == "modeldeployments.sluice.dev"


def test_scale_subresource_paths_point_at_the_replica_fields() -> None:
    version = crdgen.crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    scale = version["subresources"]["scale"]
    assert version["subresources"]["status"] == {}
    assert scale["specReplicasPath"] == ".spec.replicas"
    assert _field(schema, scale["specReplicasPath"])["type"] == "integer"
    assert _field(schema, scale["statusReplicasPath"])["type"] == "integer"
    assert _field(schema, scale["labelSelectorPath"])["type"] == "string"


@pytest.mark.parametrize("column", crdgen.printer_columns(), ids=lambda column: column["name"])
def test_printer_columns_point_at_fields_of_the_schema(column: dict[str, Any]) -> None:
    json_path = column["jsonPath"]
    if json_path.startswith(".metadata."):
        return
    field = _field(crdgen.openapi_schema(), json_path.split("[?", 1)[0])
    if "[?" in json_path:  # a filter over a list: `.status.conditions[?(@.type=="Ready")].status`
        field = field["items"]["properties"][json_path.rsplit(".", 1)[-1]]
    assert field["type"] == column["type"]


def test_printer_columns_show_version_stable_weight_actual_share_phase_ready_and_age() -> None:
    names = [column["name"] for column in crdgen.printer_columns() if not column.get("priority")]
    assert names == ["Version", "Stable", "Weight", "Actual", "Phase", "Ready", "Age"]


def test_only_int_or_string_unions_are_accepted() -> None:
    converter = crdgen._Converter({}, keep_examples=False)
    with pytest.raises(ValueError, match="int-or-string"):
        converter.convert({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, ".spec.odd", in_status=False)


def test_check_mode_reports_nothing_stale_in_the_repository() -> None:
    assert generate.main(["--root", str(REPO_ROOT), "--check"]) == 0


def test_every_duration_field_rejects_with_a_sentence_not_a_regex() -> None:
    durations = [
        (path, node)
        for path, node in _nodes(crdgen.openapi_schema()["properties"]["spec"], ".spec")
        if node.get("description", "").startswith("A duration") or path.endswith(("interval", "Deadline", "timeout"))
    ]

    assert {path for path, _ in durations} >= {".spec.rollout.interval", ".spec.rollout.progressDeadline"}
    for path, node in durations:
        assert "pattern" not in node, path
        [rule] = node["x-kubernetes-validations"]
        assert rule["message"] == api.DURATION_MESSAGE, path
        assert rule["rule"].startswith("self.matches("), path
    with pytest.raises(ValidationError, match="must be a duration such as 500ms, 30s, 1m or 1h30m"):
        api.RolloutSpec.model_validate({"interval": "1 minute"})
