"""The generated CRD on the real kube-apiserver: invalid ModelDeployments are rejected naming the field, and a
minimal one is admitted with the server's defaults equal to the pydantic models' defaults."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from harness import create_namespace, delete_namespace
from integration.sluice_crd import install_crd
from sluice.api.v1alpha1 import DURATION_MESSAGE, GROUP, PLURAL, VERSION, ModelDeployment

pytestmark = pytest.mark.integration

DELETE = object()
"""In a case's patch: remove this key from the base manifest."""

BASE: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ModelDeployment",
    "metadata": {"name": "fraud"},
    "spec": {
        "model": {
            "version": "1.4.0",
            "uri": "https://models.example.com/fraud/1.4.0/model.onnx",
            "format": "onnx",
        }
    },
}
DIGEST = "sha256:" + "ab" * 32
METRIC = {"name": "accuracy", "query": "avg(model_accuracy)", "min": 0.9}
GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}
CPU_METRIC = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
TESTER: dict[str, Any] = {"headers": [{"name": "x-tester", "value": "yes"}]}
EXPERIMENT: dict[str, Any] = {
    "duration": "1h",
    "stickyBy": {"header": "x-user-id"},
    "metrics": [{"name": "errors", "query": "sum(x)"}],
}
COOKIE = {"name": "tier", "value": "beta.1"}


@dataclass(frozen=True)
class Case:
    """An invalid manifest (BASE with `patch` merged in) and the field the server's rejection must name."""

    id: str
    patch: dict[str, Any]
    field: str
    says: str = ""
    """A further fragment the message must contain (such as a CEL rule's message)."""


def _spec(**patch: Any) -> dict[str, Any]:
    return {"spec": patch}


def _model(**patch: Any) -> dict[str, Any]:
    return _spec(model=patch)


def _rollout(**patch: Any) -> dict[str, Any]:
    return _spec(rollout=patch)


def _analysis(**patch: Any) -> dict[str, Any]:
    return _spec(analysis=patch)


CASES = [
    Case("missing version", _model(version=DELETE), "spec.model.version", "Required value"),
    Case("missing uri", _model(uri=DELETE), "spec.model.uri", "Required value"),
    Case("missing model", _spec(model=DELETE), "spec.model", "Required value"),
    Case("too-long version", _model(version="v" * 64), "spec.model.version", "63"),
    Case("version with a slash", _model(version="1.4/0"), "spec.model.version", "should match"),
    Case("unknown format", _model(format="pytorch"), "spec.model.format", "supported values"),
    Case("sklearn without digest", _model(format="sklearn"), "spec.model.digest", "digest is required"),
    Case("custom python model without digest", _model(format="python"), "spec.model.digest", "digest is required"),
    Case(
        "plain http uri without digest",
        _model(uri="http://models.example.com/m.onnx"),
        "spec.model.digest",
        "digest is required for an http:// uri",
    ),
    Case("malformed digest", _model(digest="sha256:XYZ"), "spec.model.digest", "should match"),
    Case("bad URI scheme", _model(uri="ftp://models.example.com/m.onnx"), "spec.model.uri", "should match"),
    Case("registry uri with a stage", _model(uri="models:/fraud/Production"), "spec.model.uri", "should match"),
    Case("registry uri with a path", _model(uri="models:/../fraud/1"), "spec.model.uri", "should match"),
    Case(
        "no format outside the registry",
        _model(format=DELETE),
        "spec.model.format",
        "format is required unless the uri is an MLflow registry URI",
    ),
    Case("negative replicas", _spec(replicas=-1), "spec.replicas", "greater than or equal to 0"),
    Case("too many replicas", _spec(replicas=1001), "spec.replicas", "less than or equal to 1000"),
    Case("replicas not a number", _spec(replicas="two"), "spec.replicas", "integer"),
    Case("non-increasing steps", _rollout(steps=[50, 25]), "spec.rollout.steps", "strictly increasing"),
    Case("duplicate steps", _rollout(steps=[10, 10, 50]), "spec.rollout.steps", "Duplicate value"),
    Case("step 0 without a match", _rollout(steps=[0, 50]), "spec.rollout.steps", "needs rollout.match"),
    Case("negative step", _rollout(steps=[-1, 50]), "spec.rollout.steps[0]", "greater than or equal to 0"),
    Case("match without a gateway", _rollout(match=[TESTER]), "spec.rollout", "rollout.match needs traffic.gateway"),
    Case("an empty match", _spec(traffic=GATEWAY, rollout={"match": [{}]}), "spec.rollout.match[0]", "at least one"),
    Case(
        "a cookie beside a Cookie header",
        _spec(traffic=GATEWAY, rollout={"match": [{"cookie": COOKIE, "headers": [{"name": "cookie", "value": "a"}]}]}),
        "spec.rollout.match[0].cookie",
        "may not also match the Cookie header",
    ),
    Case(
        "a header name with a space",
        _spec(traffic=GATEWAY, rollout={"match": [{"headers": [{"name": "x tester", "value": "yes"}]}]}),
        "spec.rollout.match[0].headers[0].name",
        "should match",
    ),
    Case(
        "a header named twice in one match",
        _spec(traffic=GATEWAY, rollout={"match": [{"headers": [TESTER["headers"][0], TESTER["headers"][0]]}]}),
        "spec.rollout.match[0].headers[1]",
        "Duplicate value",
    ),
    Case(
        "a cookie value with regular-expression characters",
        _spec(traffic=GATEWAY, rollout={"match": [{"cookie": {"name": "tier", "value": "beta|ga"}}]}),
        "spec.rollout.match[0].cookie.value",
        "should match",
    ),
    Case(
        "too many matches", _spec(traffic=GATEWAY, rollout={"match": [TESTER] * 9}), "spec.rollout.match", "at most 8"
    ),
    Case("experiment without a gateway", _spec(experiment=EXPERIMENT), "spec.experiment", "needs traffic.gateway"),
    Case(
        "experiment beside a match",
        _spec(traffic=GATEWAY, experiment=EXPERIMENT, rollout={"match": [TESTER]}),
        "spec.experiment",
        "cannot be combined with rollout.match",
    ),
    Case(
        "experiment without an end",
        _spec(traffic=GATEWAY, experiment={k: v for k, v in EXPERIMENT.items() if k != "duration"}),
        "spec.experiment",
        "needs duration, minSamples or both",
    ),
    Case(
        "experiment of 31 days",
        _spec(traffic=GATEWAY, experiment={**EXPERIMENT, "duration": "744h"}),
        "spec.experiment.duration",
        "between 1s and 720h",
    ),
    Case(
        "experiment split 100",
        _spec(traffic=GATEWAY, experiment={**EXPERIMENT, "split": 100}),
        "spec.experiment.split",
        "less than or equal to 99",
    ),
    Case(
        "experiment key header with a space",
        _spec(traffic=GATEWAY, experiment={**EXPERIMENT, "stickyBy": {"header": "x user"}}),
        "spec.experiment.stickyBy.header",
        "should match",
    ),
    Case("step 101", _rollout(steps=[50, 101]), "spec.rollout.steps[1]", "less than or equal to 100"),
    Case("empty steps", _rollout(steps=[]), "spec.rollout.steps", "at least 1 items"),
    Case("too many steps", _rollout(steps=list(range(1, 22))), "spec.rollout.steps", "at most 20 items"),
    Case("interval below 1s", _rollout(interval="500ms"), "spec.rollout.interval", "between 1s and 24h"),
    Case("interval above 24h", _rollout(interval="25h"), "spec.rollout.interval", "between 1s and 24h"),
    Case("bad duration string", _rollout(interval="1 minute"), "spec.rollout.interval", DURATION_MESSAGE),
    Case("duration in days", _rollout(progressDeadline="1d"), "spec.rollout.progressDeadline", DURATION_MESSAGE),
    Case(
        "progressDeadline below interval",
        _rollout(interval="5m", progressDeadline="1m"),
        "spec.rollout.progressDeadline",
        "at least as long as interval",
    ),
    Case("maxErrorRate above 1", _analysis(maxErrorRate=1.5), "spec.analysis.maxErrorRate", "less than or equal"),
    Case("negative maxErrorRate", _analysis(maxErrorRate=-0.1), "spec.analysis.maxErrorRate", "greater than"),
    Case("minRequests 0", _analysis(minRequests=0), "spec.analysis.minRequests", "greater than or equal to 1"),
    Case("zero latency bound", _analysis(maxLatencyP99="0s"), "spec.analysis.maxLatencyP99", "greater than 0s"),
    Case("unknown inconclusive policy", _analysis(onInconclusive="Ignore"), "spec.analysis.onInconclusive"),
    Case(
        "compareToStable without a bound",
        _analysis(compareToStable={}),
        "spec.analysis.compareToStable",
        "needs maxErrorRateIncrease, maxSlowRequestsIncrease or both",
    ),
    Case(
        "slowerThan without its bound",
        _analysis(compareToStable={"maxErrorRateIncrease": 0.01, "slowerThan": "250ms"}),
        "spec.analysis.compareToStable",
        "go together",
    ),
    Case(
        "zero slowerThan",
        _analysis(compareToStable={"slowerThan": "0s", "maxSlowRequestsIncrease": 0.01}),
        "spec.analysis.compareToStable.slowerThan",
        "greater than 0s",
    ),
    Case(
        "zero maxErrorRateIncrease",
        _analysis(compareToStable={"maxErrorRateIncrease": 0}),
        "spec.analysis.compareToStable.maxErrorRateIncrease",
        "greater than",
    ),
    Case("confidence above 0.9999", _analysis(confidence=1), "spec.analysis.confidence", "less than or equal"),
    Case(
        "Prometheus URL not http",
        _analysis(prometheus={"url": "prometheus:9090"}),
        "spec.analysis.prometheus.url",
        "should match",
    ),
    Case(
        "custom metric without bounds",
        _analysis(metrics=[{"name": "accuracy", "query": "avg(model_accuracy)"}]),
        "spec.analysis.metrics[0]",
        "needs min, max or both",
    ),
    Case(
        "custom metric min above max",
        _analysis(metrics=[{**METRIC, "min": 0.9, "max": 0.5}]),
        "spec.analysis.metrics[0]",
        "min must not exceed max",
    ),
    Case(
        "bad custom metric name",
        _analysis(metrics=[{**METRIC, "name": "Accuracy!"}]),
        "spec.analysis.metrics[0].name",
        "should match",
    ),
    Case(
        "custom metric without query",
        _analysis(metrics=[{"name": "accuracy", "min": 0.9}]),
        "spec.analysis.metrics[0].query",
        "Required value",
    ),
    Case(
        "duplicate custom metric names",
        _analysis(metrics=[METRIC, METRIC]),
        "spec.analysis.metrics[1]",
        "Duplicate value",
    ),
    Case(
        "gateway with empty parentRefs",
        _spec(traffic={"gateway": {"parentRefs": []}}),
        "spec.traffic.gateway.parentRefs",
        "at least 1 items",
    ),
    Case(
        "gateway parentRef without name",
        _spec(traffic={"gateway": {"parentRefs": [{"namespace": "gateways"}]}}),
        "spec.traffic.gateway.parentRefs[0].name",
        "Required value",
    ),
    Case(
        "bad env var name",
        _spec(serving={"env": [{"name": "1-BAD NAME", "value": "x"}]}),
        "spec.serving.env[0].name",
        "should match",
    ),
    Case(
        "duplicate env var names",
        _spec(serving={"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
        "spec.serving.env[1]",
        "Duplicate value",
    ),
    Case(
        "bad resource quantity",
        _spec(serving={"resources": {"requests": {"cpu": "lots"}}}),
        "spec.serving.resources.requests.cpu",
        "should match",
    ),
    Case("unknown field under strict validation", _model(checksum=DIGEST), "spec.model.checksum", "unknown field"),
    Case("unknown spec field under strict validation", _spec(replica=2), "spec.replica", "unknown field"),
    Case(
        "validation without a gateway",
        _spec(validation={"uri": "https://data.example.com/holdout.csv", "min": 0.85}),
        "spec.validation",
        "validation needs traffic.gateway",
    ),
    Case(
        "validation with both dataset sources",
        _spec(
            traffic=GATEWAY,
            validation={"uri": "file:///d.csv", "configMapRef": {"name": "d", "key": "d.csv"}, "min": 0.85},
        ),
        "spec.validation",
        "exactly one of configMapRef and uri",
    ),
    Case(
        "validation without a bound",
        _spec(traffic=GATEWAY, validation={"uri": "file:///d.csv"}),
        "spec.validation",
        "validation needs min, max or both",
    ),
    Case(
        "shadow without a gateway",
        _rollout(shadow={"minAgreement": 0.9}),
        "spec.rollout",
        "rollout.shadow needs traffic.gateway",
    ),
    Case(
        "shadow without a bound",
        _spec(traffic=GATEWAY, rollout={"shadow": {"percent": 50}}),
        "spec.rollout.shadow",
        "minAgreement",
    ),
    Case(
        "shadow percent above 100",
        _spec(traffic=GATEWAY, rollout={"shadow": {"percent": 101, "minAgreement": 0.9}}),
        "spec.rollout.shadow.percent",
        "less than or equal to 100",
    ),
    Case(
        "keepPrevious without a gateway",
        _rollout(keepPrevious="10m"),
        "spec.rollout",
        "rollout.keepPrevious needs traffic.gateway",
    ),
    Case(
        "keepPrevious with autoscaling",
        _spec(traffic=GATEWAY, rollout={"keepPrevious": "10m"}, autoscaling={"minReplicas": 2, "maxReplicas": 10}),
        "spec.rollout",
        "rollout.keepPrevious cannot be combined with autoscaling yet",
    ),
    Case(
        "keepPrevious beyond a day",
        _spec(traffic=GATEWAY, rollout={"keepPrevious": "25h"}),
        "spec.rollout.keepPrevious",
        "keepPrevious must be between 1s and 24h",
    ),
    Case(
        "postPromotionAnalysis without keepPrevious",
        _spec(traffic=GATEWAY, rollout={"postPromotionAnalysis": True}),
        "spec.rollout.postPromotionAnalysis",
        "postPromotionAnalysis needs keepPrevious",
    ),
    Case(
        "a Service as the route's parent (a GAMMA route taking over its mesh traffic)",
        _spec(traffic={"gateway": {"parentRefs": [{"group": "", "kind": "Service", "name": "payments"}]}}),
        "spec.traffic.gateway.parentRefs[0].group",
        "parentRefs may only name Gateways",
    ),
    Case(
        "another kind of the Gateway API group as the route's parent",
        _spec(traffic={"gateway": {"parentRefs": [{"kind": "ListenerSet", "name": "public"}]}}),
        "spec.traffic.gateway.parentRefs[0].kind",
        "kind must be Gateway",
    ),
    Case(
        "a hostname that is not a DNS name",
        _spec(traffic={"gateway": {"parentRefs": [{"name": "public"}], "hostnames": ["10.0.0.1:80"]}}),
        "spec.traffic.gateway.hostnames[0]",
        "should match",
    ),
    Case(
        "a notification receiver that is a URL, not a name",
        _spec(notifications={"receivers": ["https://hooks.example.com/T0/token"]}),
        "spec.notifications.receivers[0]",
        "should match",
    ),
    Case(
        "a notification event that does not exist",
        _spec(notifications={"receivers": ["team"], "events": ["Exploded"]}),
        "spec.notifications.events[0]",
        "supported values",
    ),
    Case(
        "autoscaling min above max",
        _spec(autoscaling={"minReplicas": 5, "maxReplicas": 2}),
        "spec.autoscaling.minReplicas",
        "minReplicas must not exceed maxReplicas",
    ),
    Case("autoscaling min 0", _spec(autoscaling={"minReplicas": 0, "maxReplicas": 2}), "spec.autoscaling.minReplicas"),
    Case(
        "autoscaling metric without its member",
        _spec(autoscaling={"maxReplicas": 2, "metrics": [{"type": "Pods", "resource": CPU_METRIC}]}),
        "spec.autoscaling.metrics[0]",
        "the member named by type must be set",
    ),
    Case(
        "autoscaling utilization without a percentage",
        _spec(
            autoscaling={
                "maxReplicas": 2,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}],
            }
        ),
        "spec.autoscaling.metrics[0].resource.target",
        "type Utilization needs averageUtilization",
    ),
    Case(
        "a pods metric held at a utilization",
        _spec(
            autoscaling={
                "maxReplicas": 2,
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "rps"},
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
            }
        ),
        "spec.autoscaling.metrics[0].pods.target",
        "a Pods metric's target is an AverageValue",
    ),
    Case(
        "too many autoscaling metrics",
        _spec(autoscaling={"maxReplicas": 2, "metrics": [{"type": "Resource", "resource": CPU_METRIC}] * 9}),
        "spec.autoscaling.metrics",
        "8",
    ),
]


def _merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if value is DELETE:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@pytest.fixture(scope="module")
def api_client(control_plane: Any, kube_api_client: Any) -> Any:
    """An admin API client for a control plane where the committed CRD is installed and Established."""
    install_crd(control_plane)
    return kube_api_client


@pytest.fixture(scope="module")
def validation_namespace(api_client: Any) -> Iterator[str]:
    name = create_namespace(api_client, prefix="crd-validation")
    yield name
    delete_namespace(api_client, name)


def _create(api_client: Any, namespace: str, manifest: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    from kubernetes import client

    created = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest, field_validation="Strict", dry_run="All" if dry_run else None
    )
    return cast(dict[str, Any], created)


def test_there_are_at_least_25_invalid_cases_with_distinct_names() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_server_rejects_an_invalid_manifest_naming_the_field(
    api_client: Any, validation_namespace: str, case: Case
) -> None:
    from kubernetes.client.exceptions import ApiException

    manifest = _merged(BASE, case.patch)
    with pytest.raises(ApiException) as raised:
        _create(api_client, validation_namespace, manifest, dry_run=True)
    status, body = raised.value.status, raised.value.body or ""
    assert status in {400, 422}, body
    assert case.field in body, f"{case.field!r} not named in the rejection: {body}"
    assert case.says in body, f"{case.says!r} not in the rejection: {body}"


def test_a_minimal_manifest_is_admitted_with_the_server_applying_the_models_defaults(
    api_client: Any, validation_namespace: str
) -> None:
    created = _create(api_client, validation_namespace, copy.deepcopy(BASE), dry_run=False)

    spec = created["spec"]
    assert spec["replicas"] == 1
    assert spec["paused"] is False
    assert spec["rollout"] == {
        "steps": [10, 25, 50],
        "interval": "1m",
        "progressDeadline": "10m",
        "postPromotionAnalysis": False,
    }
    assert spec["analysis"]["maxErrorRate"] == 0.01
    assert spec["analysis"]["minRequests"] == 20
    assert "onInconclusive" not in spec["analysis"]  # Rollback, or Hold with compareToStable
    assert spec["analysis"]["confidence"] == 0.95
    assert spec == ModelDeployment.model_validate(BASE).to_wire()["spec"]
    assert ModelDeployment.model_validate(created).spec == ModelDeployment.model_validate(BASE).spec


@pytest.mark.parametrize("uri", ["models:/fraud/3", "models:/fraud.v2@champion"])
def test_an_mlflow_registry_uri_is_admitted_without_a_format_or_a_digest(
    api_client: Any, validation_namespace: str, uri: str
) -> None:
    # Its own name: the defaults test leaves BASE's `fraud` created in this namespace.
    manifest = _merged(_merged(BASE, {"metadata": {"name": "fraud-registry"}}), _model(uri=uri, format=DELETE))

    created = _create(api_client, validation_namespace, manifest, dry_run=True)

    assert created["spec"]["model"] == {"version": "1.4.0", "uri": uri}


def test_a_sklearn_model_with_a_digest_and_every_optional_section_is_admitted(
    api_client: Any, validation_namespace: str
) -> None:
    manifest = _merged(
        BASE,
        {
            "metadata": {"name": "fraud-full"},
            "spec": {
                "model": {"format": "sklearn", "uri": "s3://models/fraud/model.joblib", "digest": DIGEST},
                "replicas": 0,
                "serving": {
                    "image": "ghcr.io/sluice-dev/serving:0.1.0",
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2}},
                    "env": [{"name": "OMP_NUM_THREADS", "value": "2"}],
                },
                "rollout": {
                    "steps": [1, 100],
                    "interval": "1s",
                    "progressDeadline": "24h",
                },
                "analysis": {
                    "prometheus": {"url": "http://prometheus.monitoring:9090"},
                    "maxErrorRate": 0,
                    "onInconclusive": "Hold",
                    "compareToStable": {"maxErrorRateIncrease": 0.01},
                    "confidence": 0.99,
                    "maxStepDuration": "2h",
                    "metrics": [METRIC, {"name": "drift", "query": "max(drift)", "max": 0.2}],
                },
                "traffic": {
                    "gateway": {
                        "parentRefs": [
                            {"name": "public"},
                            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "in", "namespace": "gw"},
                        ],
                        "hostnames": ["fraud.example.com", "*.ml.example.com"],
                    }
                },
                "autoscaling": {"minReplicas": 2, "maxReplicas": 10, "metrics": [
                    {"type": "Resource", "resource": CPU_METRIC},
                    {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
                                              "target": {"type": "AverageValue", "averageValue": "20"}}},
                    {"type": "External", "external": {
                        "metric": {"name": "queue_length", "selector": {"matchLabels": {"queue": "fraud"}}},
                        "target": {"type": "Value", "value": 100}}},
                ]},
                "paused": True,
            },
        },
    )  # fmt: skip
    created = _create(api_client, validation_namespace, manifest, dry_run=False)
    assert created["spec"]["serving"]["env"] == [{"name": "OMP_NUM_THREADS", "value": "2"}]
    assert ModelDeployment.model_validate(created).spec.analysis.metrics is not None


def test_a_kept_previous_revision_with_post_promotion_analysis_is_admitted_without_autoscaling(
    api_client: Any, validation_namespace: str
) -> None:
    rollout = {"keepPrevious": "24h", "postPromotionAnalysis": True}
    manifest = _merged(BASE, {"metadata": {"name": "fraud-kept"}, "spec": {"rollout": rollout, "traffic": GATEWAY}})
    created = _create(api_client, validation_namespace, manifest, dry_run=True)
    assert (created["spec"]["rollout"]["keepPrevious"], created["spec"]["rollout"]["postPromotionAnalysis"]) == (
        "24h",
        True,
    )


def test_a_rollout_match_is_admitted_and_its_rendered_route_accepted_and_read_back_unchanged(
    api_client: Any, validation_namespace: str
) -> None:
    """The HTTPRoute the operator writes for spec.rollout.match passes the Gateway API CRD's validation, and what
    the server stores (its defaults filled in) steers alike, so the operator does not apply it again."""
    import asyncio

    from sluice.adapters.kube import KubeApi, KubeCluster
    from sluice.core.children import Owner, http_route, steering_values

    matches = [
        TESTER,
        {"cookie": COOKIE, "queryParams": [{"name": "canary", "value": "^(1|yes)$", "type": "RegularExpression"}]},
    ]
    manifest = _merged(
        BASE,
        {
            "metadata": {"name": "fraud-matched"},
            "spec": {"traffic": GATEWAY, "rollout": {"steps": [0, 50], "match": matches}},
        },
    )
    created = ModelDeployment.model_validate(_create(api_client, validation_namespace, manifest, dry_run=False))
    assert created.spec.traffic is not None
    assert created.spec.traffic.gateway is not None
    owner = Owner(name="fraud-matched", namespace=validation_namespace, uid=str(created.metadata["uid"]))
    route = http_route(owner, created.spec.traffic.gateway, 0, matches=created.spec.rollout.match or [])
    cluster = KubeCluster(KubeApi(api_client, 30.0), "sluice-tests")

    assert asyncio.run(cluster.apply_child(route, owner)), "the route is written"
    stored = asyncio.run(cluster.read_child(route["apiVersion"], "HTTPRoute", owner, "fraud-matched"))
    assert stored is not None
    assert [len(rule["matches"]) for rule in stored["spec"]["rules"]] == [3, 3, 3]
    assert steering_values(stored) == steering_values(route)
    assert not asyncio.run(cluster.apply_child(route, owner)), "an untouched route is not applied again"
