"""The chart's hardening options (issue #14): the operator's allowlists reach it as settings, file:// datasets
come only from a read-only volume, and the ValidatingAdmissionPolicies render only when asked. Their effect on a
real API server: tests/integration/test_admission_policies.py."""

from __future__ import annotations

from unit.chart.chart_support import CHART_DIR, container_env, of_kind, render, the_one

HARDENED = CHART_DIR / "ci" / "hardened-values.yaml"


def test_by_default_specs_may_name_no_dataset_host_no_file_and_no_other_prometheus() -> None:
    manifests = render()
    env = container_env(the_one(manifests, "Deployment"))
    assert {key: env[key] for key in ("SLUICE_PROMETHEUS_URLS", "SLUICE_DATASET_HOSTS", "SLUICE_DATASET_DIR")} == {
        "SLUICE_PROMETHEUS_URLS": "",
        "SLUICE_DATASET_HOSTS": "",
        "SLUICE_DATASET_DIR": "",
    }
    assert (env["SLUICE_GATEWAYS"], env["SLUICE_HOSTNAME_SUFFIXES"]) == ("", "")
    assert env["SLUICE_MIRROR_GATEWAY_CLASSES"] == ""
    pod = the_one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert [volume["name"] for volume in pod["volumes"]] == ["tmp"]
    assert of_kind(manifests, "ValidatingAdmissionPolicy") == []
    assert of_kind(manifests, "ValidatingAdmissionPolicyBinding") == []


def test_the_allowlists_reach_the_operator_and_the_dataset_volume_is_mounted_read_only() -> None:
    deployment = the_one(render(values_files=[HARDENED]), "Deployment")
    env = container_env(deployment)
    assert env["SLUICE_PROMETHEUS_URLS"] == "https://thanos.monitoring.svc:10902"
    assert env["SLUICE_DATASET_HOSTS"] == "datasets.ml.svc:8080"
    assert env["SLUICE_DATASET_DIR"] == "/datasets"
    assert (env["SLUICE_GATEWAYS"], env["SLUICE_HOSTNAME_SUFFIXES"]) == ("gateways/public", "ml.example.com")
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "datasets", "persistentVolumeClaim": {"claimName": "validation-datasets", "readOnly": True}} in pod[
        "volumes"
    ]
    assert {"name": "datasets", "mountPath": "/datasets", "readOnly": True} in pod["containers"][0]["volumeMounts"]


def test_the_admission_policies_name_the_groups_and_the_operators_service_account() -> None:
    manifests = render(values_files=[HARDENED], namespace="sluice-system")
    policies = {policy["metadata"]["name"]: policy for policy in of_kind(manifests, "ValidatingAdmissionPolicy")}
    bindings = of_kind(manifests, "ValidatingAdmissionPolicyBinding")
    assert sorted(policies) == ["sluice-operator-scope", "sluice-promote-full"]
    assert sorted((b["spec"]["policyName"], tuple(b["spec"]["validationActions"])) for b in bindings) == [
        ("sluice-operator-scope", ("Deny",)),
        ("sluice-promote-full", ("Deny",)),
    ]
    promote = policies["sluice-promote-full"]["spec"]["validations"][0]
    assert "['ml-leads']" in promote["expression"]
    scope = policies["sluice-operator-scope"]["spec"]
    assert "'system:serviceaccount:sluice-system:sluice'" in scope["matchConditions"][0]["expression"]
    assert "namespaceObject.metadata.labels['sluice.dev/models'] == 'true'" in scope["validations"][-1]["expression"]


def test_gateway_classes_whose_request_mirror_support_the_admin_asserts_reach_the_operator() -> None:
    manifests = render(set_values=("gateway.mirrorClasses[0]=istio", "gateway.mirrorClasses[1]=kong"))
    assert container_env(the_one(manifests, "Deployment"))["SLUICE_MIRROR_GATEWAY_CLASSES"] == "istio,kong"
