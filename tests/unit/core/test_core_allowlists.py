"""The operator's allowlists (issue #14): a ModelDeployment may point the operator only at the Prometheus URLs,
dataset hosts, dataset directory and Gateways (with hostname domains) its administrator configured; anything else
is an InvalidSpec, checked before the operator reads or calls anything."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.api.v1alpha1 import ModelDeploymentSpec
from sluice.core.validation import Allowlists, allowlist_problems, dataset_uri_problem, in_domain
from sluice.settings import Settings

DEFAULT_PROMETHEUS = "http://prometheus.monitoring.svc:9090"
ALLOW = Allowlists(
    prometheus_urls=frozenset({DEFAULT_PROMETHEUS, "https://thanos.example.com"}),
    dataset_hosts=frozenset({"data.example.com", "10.0.0.7:8080"}),
    dataset_dir="/datasets",
    gateways=frozenset({"gateways/public", "ml/internal"}),
    hostname_suffixes=("ml.example.com",),
)
GATEWAY = {"parentRefs": [{"name": "public", "namespace": "gateways"}], "hostnames": ["fraud.ml.example.com"]}


def spec(**overrides: Any) -> ModelDeploymentSpec:
    model = {"version": "1", "uri": "https://models.example.com/m.onnx", "format": "onnx"}
    return ModelDeploymentSpec.model_validate({"model": model, "traffic": {"gateway": GATEWAY}, **overrides})


def test_a_spec_inside_every_allowlist_has_no_problems() -> None:
    inside = spec(
        analysis={"prometheus": {"url": "https://thanos.example.com/"}},
        validation={"uri": "https://data.example.com/holdout.csv", "min": 0.8},
    )
    assert allowlist_problems("ml", inside, ALLOW) == []
    assert allowlist_problems("ml", spec(analysis={"prometheus": {"url": DEFAULT_PROMETHEUS}}), ALLOW) == []


def dataset(uri: str) -> dict[str, Any]:
    return {"validation": {"uri": uri, "min": 1}}


def gateway(**changes: Any) -> dict[str, Any]:
    return {"traffic": {"gateway": {**GATEWAY, **changes}}}


NOT_A_HOST = "not one of the operator's dataset hosts"
NOT_UNDER = "under the operator's dataset directory"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"analysis": {"prometheus": {"url": "http://169.254.169.254/latest"}}},
            "not one of the operator's Prometheus",
        ),
        (dataset("http://169.254.169.254/latest/meta-data"), NOT_A_HOST),
        (dataset("http://data.example.com@evil.example/x.csv"), "credentials"),
        (dataset("http://10.0.0.7:8081/x.csv"), NOT_A_HOST),
        (dataset("file:///var/run/secrets/kubernetes.io/serviceaccount/token"), NOT_UNDER),
        (dataset("file:///datasets/../etc/passwd"), NOT_UNDER),
        (dataset("file:///datasets-evil/x.csv"), NOT_UNDER),
        (gateway(parentRefs=[{"name": "public"}]), "Gateway ml/public is not one of"),
        (gateway(hostnames=["pay.example.com"]), "'pay.example.com' does not lie in"),
        (gateway(hostnames=["*.example.com"]), "'*.example.com' does not lie in"),
        (gateway(hostnames=None), "hostnames is required"),
    ],
)
def test_a_spec_pointing_the_operator_outside_its_allowlists_is_refused(
    overrides: dict[str, Any], expected: str
) -> None:
    found = allowlist_problems("ml", spec(**overrides), ALLOW)
    assert len(found) == 1, found
    assert expected in found[0]


def test_by_default_no_dataset_uri_is_read_only_configmaps() -> None:
    closed = Allowlists()
    assert "reads no file:// datasets" in (dataset_uri_problem("file:///datasets/x.csv", closed) or "")
    assert "none: use configMapRef" in (dataset_uri_problem("https://data.example.com/x.csv", closed) or "")
    assert dataset_uri_problem("https://DATA.example.com:443/x.csv", ALLOW) is None
    assert dataset_uri_problem("file:///datasets/team/x.csv", ALLOW) is None


def test_without_gateway_and_hostname_allowlists_any_gateway_and_hostname_is_allowed() -> None:
    anywhere = spec(traffic={"gateway": {"parentRefs": [{"name": "any", "namespace": "other"}]}})
    assert allowlist_problems("ml", anywhere, Allowlists()) == []


def test_a_wildcard_hostname_lies_in_a_domain_only_when_all_it_names_does() -> None:
    assert in_domain("*.fraud.ml.example.com", "ml.example.com")
    assert in_domain("ml.example.com", "ml.example.com.")
    assert not in_domain("*.example.com", "ml.example.com")
    assert not in_domain("evilml.example.com", "ml.example.com")


def test_the_settings_build_the_allowlists_with_the_default_prometheus_always_in() -> None:
    settings = Settings.from_command_line(
        [
            "--prometheus-url=http://p:9090",
            "--prometheus-urls=https://a, https://b",
            "--dataset-hosts=Data.Example.com",
            "--gateways=gw/public",
            "--hostname-suffixes=ml.example.com",
            "--dataset-dir=/datasets",
        ]
    )
    allow = settings.allowlists()
    assert allow.prometheus_urls == {"http://p:9090", "https://a", "https://b"}
    assert allow.dataset_hosts == {"data.example.com"}
    assert allow.gateways == {"gw/public"}
    assert allow.hostname_suffixes == ("ml.example.com",)
    assert allow.dataset_dir == "/datasets"
    with pytest.raises(ValueError, match="namespace/name"):
        Settings.from_command_line(["--gateways=public"])
