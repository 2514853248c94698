"""The children builders: names, labels, owner references, the serving pod, Services and the HTTPRoute."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.api.v1alpha1 import GatewayTraffic, ModelDeploymentSpec, ModelDeploymentStatus, ModelFormat, ModelStatus
from sluice.core.children import (
    SPEC_HASH_ANNOTATION,
    ChildNames,
    Owner,
    ServingDefaults,
    Track,
    canary_service,
    entry_service,
    http_route,
    parse_pvc_uri,
    spec_hash,
    with_spec_hash,
)
from sluice.core.plan import Plan, WorkloadPlan
from sluice.core.workloads import deployment, parse_quantity, resources, workloads

OWNER = Owner(name="fraud", namespace="ml", uid="0000-1111")
DEFAULTS = ServingDefaults(
    image="ghcr.io/sluice-dev/sluice-serving:0.1.0",
    requests={"cpu": "100m", "memory": "256Mi"},
    limits={"cpu": "1", "memory": "1Gi"},
)
MODEL = ModelStatus(version="1.4.0", uri="https://models.example.com/fraud.onnx", format=ModelFormat.ONNX)


def spec(**overrides: Any) -> ModelDeploymentSpec:
    wire: dict[str, Any] = {"model": {"version": "1.4.0", "uri": MODEL.uri, "format": "onnx"}, **overrides}
    return ModelDeploymentSpec.model_validate(wire)


def stable_deployment(model_spec: ModelDeploymentSpec | None = None, model: ModelStatus = MODEL) -> dict[str, Any]:
    model_spec = model_spec or spec()
    workload = WorkloadPlan(model=model, replicas=2, serving=model_spec.serving)
    return deployment(OWNER, model_spec, Track.STABLE, workload, DEFAULTS)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env(manifest: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(manifest)["env"]}


def test_names_follow_the_documented_scheme() -> None:
    names = ChildNames.of("fraud")
    assert (names.stable_deployment, names.canary_deployment) == ("fraud-stable", "fraud-canary")
    assert (names.service, names.canary_service, names.route) == ("fraud", "fraud-canary", "fraud")


def test_a_deployment_is_controlled_by_its_modeldeployment_and_labelled() -> None:
    manifest = deployment(OWNER, spec(), Track.CANARY, WorkloadPlan(model=MODEL, replicas=1), DEFAULTS)
    assert manifest["metadata"]["name"] == "fraud-canary"
    assert manifest["metadata"]["namespace"] == "ml"
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "ModelDeployment",
            "name": "fraud",
            "uid": "0000-1111",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    expected_labels = {
        "app.kubernetes.io/name": "sluice-serving",
        "app.kubernetes.io/instance": "fraud",
        "app.kubernetes.io/managed-by": "sluice",
        "app.kubernetes.io/version": "1.4.0",
        "sluice.dev/modeldeployment": "fraud",
        "sluice.dev/track": "canary",
        "sluice.dev/version": "1.4.0",
    }
    assert manifest["metadata"]["labels"] == expected_labels
    assert manifest["spec"]["template"]["metadata"]["labels"] == expected_labels
    assert manifest["spec"]["selector"] == {
        "matchLabels": {"sluice.dev/modeldeployment": "fraud", "sluice.dev/track": "canary"}
    }
    assert manifest["spec"]["replicas"] == 1


def test_the_serving_container_gets_the_model_and_its_settings() -> None:
    manifest = stable_deployment(spec(serving={"env": [{"name": "SLUICE_NUM_THREADS", "value": "2"}]}))
    assert env(manifest) == {
        "MODEL_NAME": "fraud",
        "MODEL_VERSION": "1.4.0",
        "MODEL_URI": MODEL.uri,
        "MODEL_FORMAT": "onnx",
        "MODEL_DIGEST": "",
        "SLUICE_TRACK": "stable",
        "PORT": "8080",
        "MODEL_CACHE_DIR": "/var/cache/sluice",
        "SLUICE_NUM_THREADS": "2",
    }
    serving = container(manifest)
    assert serving["image"] == DEFAULTS.image
    assert serving["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert serving["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert serving["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    annotations = manifest["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert manifest["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_spec_image_wins_over_the_default() -> None:
    assert (
        container(stable_deployment(spec(serving={"image": "example.com/server:2"})))["image"] == "example.com/server:2"
    )


def test_the_pod_satisfies_the_restricted_pod_security_standard() -> None:
    manifest = stable_deployment()
    pod = manifest["spec"]["template"]["spec"]
    security = container(manifest)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (65532, 65532)
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {mount["mountPath"]: mount["name"] for mount in container(manifest)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert set(volumes[mounts["/var/cache/sluice"]]) == {"name", "emptyDir"}
    assert set(volumes[mounts["/tmp"]]) == {"name", "emptyDir"}
    assert pod["automountServiceAccountToken"] is False


def test_a_pvc_model_is_mounted_read_only_and_served_from_the_mount() -> None:
    model = MODEL.model_copy(update={"uri": "pvc://models/fraud/1.4.0/model.onnx"})
    manifest = stable_deployment(model=model)
    assert env(manifest)["MODEL_URI"] == "file:///mnt/models/fraud/1.4.0/model.onnx"
    volumes = {volume["name"]: volume for volume in manifest["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert {"name": "model", "mountPath": "/mnt/models", "readOnly": True} in container(manifest)["volumeMounts"]


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("pvc://models/a/b.onnx", ("models", "a/b.onnx")),
        ("pvc://models", None),
        ("pvc://models/", None),
        ("https://x/y", None),
    ],
)
def test_pvc_uris(uri: str, parsed: tuple[str, str] | None) -> None:
    assert parse_pvc_uri(uri) == parsed


def test_resources_default_and_every_resource_gets_request_and_limit() -> None:
    assert resources(spec().serving, DEFAULTS) == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    gpu = resources(spec(serving={"resources": {"requests": {"nvidia.com/gpu": 1, "cpu": "500m"}}}).serving, DEFAULTS)
    assert gpu["requests"] == {"cpu": "500m", "memory": "256Mi", "nvidia.com/gpu": "1"}
    assert gpu["limits"] == {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}


def test_resources_stay_consistent_with_the_defaults() -> None:
    big_request = resources(spec(serving={"resources": {"requests": {"memory": "4Gi"}}}).serving, DEFAULTS)
    assert (big_request["requests"]["memory"], big_request["limits"]["memory"]) == ("4Gi", "4Gi")
    small_limit = resources(spec(serving={"resources": {"limits": {"cpu": "50m"}}}).serving, DEFAULTS)
    assert (small_limit["requests"]["cpu"], small_limit["limits"]["cpu"]) == ("50m", "50m")


@pytest.mark.parametrize(
    ("text", "value"), [("500m", "0.5"), ("2", "2"), ("1Gi", str(2**30)), ("1e3", "1000"), ("1.5k", "1500")]
)
def test_quantities(text: str, value: str) -> None:
    assert parse_quantity(text) == parse_quantity(value)


def test_a_malformed_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity("lots")


def test_the_entry_service_selects_both_tracks_without_a_gateway_and_stable_behind_one() -> None:
    assert entry_service(OWNER, spec())["spec"]["selector"] == {"sluice.dev/modeldeployment": "fraud"}
    gateway = {"gateway": {"parentRefs": [{"name": "public"}]}}
    assert entry_service(OWNER, spec(traffic=gateway))["spec"]["selector"] == {
        "sluice.dev/modeldeployment": "fraud",
        "sluice.dev/track": "stable",
    }
    canary = canary_service(OWNER)
    assert canary["metadata"]["name"] == "fraud-canary"
    assert canary["spec"]["selector"] == {"sluice.dev/modeldeployment": "fraud", "sluice.dev/track": "canary"}
    assert canary["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_the_http_route_splits_by_weight_to_the_gateways_parents() -> None:
    traffic = spec(
        traffic={"gateway": {"parentRefs": [{"name": "public", "sectionName": "https"}], "hostnames": ["a.example"]}}
    )
    assert traffic.traffic is not None
    assert traffic.traffic.gateway is not None
    route = http_route(OWNER, traffic.traffic.gateway, 25)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "sectionName": "https"}]
    assert route["spec"]["hostnames"] == ["a.example"]
    assert [rule["backendRefs"] for rule in route["spec"]["rules"]] == [
        [
            {"name": "fraud", "port": 80, "weight": 75},
            {"name": "fraud-canary", "port": 80, "weight": 25},
        ]
    ]


def test_the_http_route_matches_only_its_own_models_paths_so_models_can_share_a_hostname() -> None:
    gateway = GatewayTraffic.model_validate({"parentRefs": [{"name": "public"}], "hostnames": ["ml.example"]})
    fraud, churn = http_route(OWNER, gateway, 10), http_route(Owner("churn", "ml", "u2"), gateway, 0)

    def routed(route: dict[str, Any], path: str) -> bool:
        """Gateway API path matching: Exact is the whole path, PathPrefix whole segments of it."""
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                kind, value = match["path"]["type"], match["path"]["value"]
                if path == value or (kind == "PathPrefix" and path.startswith(value.rstrip("/") + "/")):
                    return True
        return False

    for path in ("/v2/models/fraud", "/v2/models/fraud/infer", "/v2/models/fraud/ready",
                 "/v2/models/fraud/versions/1/infer", "/v1/models/fraud", "/v1/models/fraud:predict"):  # fmt: skip
        assert routed(fraud, path), path
        assert not routed(churn, path), path
    assert routed(churn, "/v2/models/churn/infer")
    assert routed(churn, "/v1/models/churn:predict")
    for path in ("/", "/metrics", "/v2/health/ready", "/v2/models/fraudster/infer", "/v1/models/fraudster:predict"):
        assert not routed(fraud, path), path


def test_workloads_leave_out_the_canary_until_a_rollout_started() -> None:
    plan = Plan(
        status=ModelDeploymentStatus(),
        stable=WorkloadPlan(model=MODEL, replicas=1),
        canary=None,
        canary_weight=0,
    )
    kinds = [(child["kind"], child["metadata"]["name"]) for child in workloads(OWNER, spec(), plan, DEFAULTS)]
    assert kinds == [("Deployment", "fraud-stable"), ("Service", "fraud"), ("Service", "fraud-canary")]
    with_canary = Plan(
        status=ModelDeploymentStatus(),
        stable=WorkloadPlan(model=MODEL, replicas=1),
        canary=WorkloadPlan(model=MODEL, replicas=0),
        canary_weight=0,
    )
    assert "fraud-canary" in [child["metadata"]["name"] for child in workloads(OWNER, spec(), with_canary, DEFAULTS)]


def test_the_spec_hash_changes_with_the_manifest_and_ignores_itself() -> None:
    manifest = stable_deployment()
    annotated = with_spec_hash(manifest)
    assert annotated["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == spec_hash(manifest)
    assert spec_hash(annotated) == spec_hash(manifest)
    assert spec_hash(stable_deployment(spec(replicas=3), model=MODEL.model_copy(update={"version": "2"}))) != spec_hash(
        manifest
    )
