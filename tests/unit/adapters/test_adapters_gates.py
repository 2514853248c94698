"""The ML gates' adapter side: the HTTPRoute's RequestMirror filter, the canary's reference-model env, the
validation dataset parser, the canary URL template and the shadow PromQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sluice.adapters.shadow import ShadowQuery, shadow_queries
from sluice.adapters.validation import DEFAULT_CANARY_URL_TEMPLATE, DatasetError, canary_base_url, parse_dataset
from sluice.api.v1alpha1 import (
    DatasetFormat,
    GatewayTraffic,
    ModelDeploymentSpec,
    ModelFormat,
    ModelStatus,
    ValidationMetric,
)
from sluice.core.children import Owner, ServingDefaults, Track, http_route
from sluice.core.gates import ScoreError, score
from sluice.core.plan import WorkloadPlan
from sluice.core.workloads import RESERVED_ENV, deployment

OWNER = Owner(name="fraud", namespace="ml", uid="0000-1111")
DEFAULTS = ServingDefaults(image="serving:1", requests={}, limits={})
CANARY = ModelStatus(version="2.0.0", uri="https://models.example.com/2.onnx", format=ModelFormat.ONNX)
STABLE = ModelStatus(
    version="1.0.0",
    uri="pvc://models/fraud/1.0.0/model.joblib",
    format=ModelFormat.SKLEARN,
    digest="sha256:" + "a" * 64,
)
GATEWAY = GatewayTraffic.model_validate({"parentRefs": [{"name": "public"}]})


def test_the_route_mirrors_a_percentage_to_the_canary_service_only_when_asked() -> None:
    assert "filters" not in http_route(OWNER, GATEWAY, 0)["spec"]["rules"][0]
    rule = http_route(OWNER, GATEWAY, 0, mirror_percent=40)["spec"]["rules"][0]
    assert rule["filters"] == [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "fraud-canary", "port": 80}, "percent": 40}}
    ]
    assert [ref["weight"] for ref in rule["backendRefs"]] == [100, 0]


def test_the_canary_gets_the_stable_model_as_its_reference_mounted_when_on_a_claim() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": CANARY.to_wire()})
    manifest = deployment(OWNER, spec, Track.CANARY, WorkloadPlan(CANARY, 2, reference=STABLE), DEFAULTS)
    pod = manifest["spec"]["template"]["spec"]
    env = {item["name"]: item["value"] for item in pod["containers"][0]["env"]}
    assert env["MODEL_URI"] == CANARY.uri
    assert env["SLUICE_REFERENCE_MODEL_URI"] == "file:///mnt/reference-model/fraud/1.0.0/model.joblib"
    assert env["SLUICE_REFERENCE_MODEL_FORMAT"] == "sklearn"
    assert env["SLUICE_REFERENCE_MODEL_DIGEST"] == STABLE.digest
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["reference-model"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    mount = {"name": "reference-model", "mountPath": "/mnt/reference-model", "readOnly": True}
    assert mount in pod["containers"][0]["volumeMounts"]
    assert {"SLUICE_REFERENCE_MODEL_URI", "SLUICE_REFERENCE_MODEL_FORMAT"} <= RESERVED_ENV
    plain = deployment(OWNER, spec, Track.CANARY, WorkloadPlan(CANARY, 2), DEFAULTS)
    assert not [e for e in plain["spec"]["template"]["spec"]["containers"][0]["env"] if "REFERENCE" in e["name"]]


def test_a_csv_dataset_takes_every_other_column_as_a_feature_in_order() -> None:
    dataset = parse_dataset("a,label,b\n1,cat,2.5\n\n3,1,-4\n", DatasetFormat.CSV, "label")
    assert dataset.rows == [[1.0, 2.5], [3.0, -4.0]]
    assert dataset.labels == ["cat", 1]


def test_a_jsonl_dataset_has_features_and_a_label_per_line() -> None:
    text = '{"features": [1, 2], "label": 0}\n\n{"features": [3, 4.5], "label": "b"}\n'
    dataset = parse_dataset(text, DatasetFormat.JSONL, "ignored")
    assert (dataset.rows, dataset.labels) == ([[1.0, 2.0], [3.0, 4.5]], [0, "b"])


@pytest.mark.parametrize(
    ("text", "fmt", "why"),
    [
        ("", DatasetFormat.CSV, "empty"),
        ("a,b\n1,2\n", DatasetFormat.CSV, "none of the CSV header's 2 columns is the label column 'label'"),
        ("a,label\n1\n", DatasetFormat.CSV, "line 2 has 1 columns, the header 2"),
        ("a,label\nx,1\n", DatasetFormat.CSV, "line 2: a feature is not a number"),
        ("a,label\n", DatasetFormat.CSV, "no rows"),
        ('{"features": [1]}\n', DatasetFormat.JSONL, "line 1 is not an object with features and label"),
        ('{"features": [1], "label": 0}\n{"features": [1, 2], "label": 1}', DatasetFormat.JSONL, "different"),
    ],
)
def test_malformed_datasets_are_refused_saying_where(text: str, fmt: DatasetFormat, why: str) -> None:
    with pytest.raises(DatasetError, match=why):
        parse_dataset(text, fmt, "label")


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("db_password=hunter2,api_key=AKIAXXXX\n", DatasetFormat.CSV),
        ("hunter2,label\n1,2,3\n", DatasetFormat.CSV),
        ("hunter2,label\nAKIAXXXX,1\n", DatasetFormat.CSV),
        ('{"features": ["hunter2"], "label": 1}\n', DatasetFormat.JSONL),
        ("hunter2\n", DatasetFormat.JSONL),
    ],
)
def test_a_dataset_error_never_quotes_the_dataset(text: str, fmt: DatasetFormat) -> None:
    """A secret read as a dataset (a token file, a ConfigMap of credentials) is not echoed into status."""
    with pytest.raises(DatasetError) as refused:
        parse_dataset(text, fmt, "label")
    assert "hunter2" not in str(refused.value)
    assert "AKIA" not in str(refused.value)


def test_a_score_error_never_quotes_a_label_or_a_prediction() -> None:
    with pytest.raises(ScoreError) as refused:
        score(ValidationMetric.RMSE, [1.0, 2.0], [1.0, "hunter2"])
    assert str(refused.value) == "row 2: the prediction or the label is not a number"


def test_the_canary_url_comes_from_the_template() -> None:
    assert canary_base_url(DEFAULT_CANARY_URL_TEMPLATE, "ml", "fraud") == "http://fraud-canary.ml.svc:80"
    assert (
        canary_base_url("http://127.0.0.1:9/{namespace}/{service}", "ml", "fraud")
        == "http://127.0.0.1:9/ml/fraud-canary"
    )


def test_the_shadow_queries_select_the_canary_series_over_the_window() -> None:
    queries: dict[str, Any] = shadow_queries(ShadowQuery("ml", 'fr"aud', "2.0.0", timedelta(seconds=30)))
    selector = 'namespace="ml",model="fr\\"aud",version="2.0.0",track="canary"'
    assert queries["comparisons"] == f"sum(increase(sluice_serving_shadow_comparisons_total{{{selector}}}[30s]))"
    assert f'{{{selector},result="agree"}}[30s]' in queries["agreement"]
    assert queries["mean_abs_difference"].startswith(
        f"sum(increase(sluice_serving_shadow_abs_difference_sum{{{selector}}}[30s])) / "
    )
