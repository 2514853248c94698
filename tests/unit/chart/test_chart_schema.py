"""values.schema.json (and the chart's cross-field checks) reject bad values with messages that name the problem."""

from __future__ import annotations

import pytest

from unit.chart.chart_support import helm, template_args

REJECTIONS = {
    "an unknown top-level key": (["replicas=2"], "additional properties 'replicas' not allowed"),
    "a misspelt nested key": (["watch.clusterwide=false"], "additional properties 'clusterwide' not allowed"),
    "root as the operator's user": (["securityContext.runAsUser=0"], "/securityContext/runAsUser"),
    "a non-numeric user": (["securityContext.runAsUser=nobody"], "/securityContext/runAsUser"),
    "an unknown pull policy": (["image.pullPolicy=Sometimes"], "'Always', 'IfNotPresent', 'Never'"),
    "a malformed digest": (["image.digest=sha256:abc"], "/image/digest"),
    "no resource limits": (["resources.limits=null"], "missing property 'limits'"),
    "a memory request that is no quantity": (["resources.requests.memory=lots"], "/resources/requests/memory"),
    "an unknown log level": (["operator.logLevel=TRACE"], "/operator/logLevel"),
    "a Prometheus URL without a scheme": (["operator.prometheusUrl=prometheus:9090"], "/operator/prometheusUrl"),
    "a privileged metrics port": (["metrics.port=80"], "/metrics/port"),
    "an invalid namespace name": (
        ["watch.clusterWide=false", "watch.namespaces[0]=Team_A"],
        "/watch/namespaces/0",
    ),
    "a string replica count": (["replicaCount=two"], "/replicaCount"),
    "a second active operator": (["replicaCount=2"], "replicaCount > 1 needs standby.enabled=true"),
    "namespaced mode without namespaces": (
        ["watch.clusterWide=false"],
        "watch.clusterWide=false needs at least one namespace in watch.namespaces",
    ),
    "namespaces given in cluster-wide mode": (
        ["watch.namespaces[0]=team-a"],
        "watch.namespaces is only used with watch.clusterWide=false",
    ),
    "an extra variable without a value": (["operator.extraEnv[0].name=FOO"], "missing property 'value'"),
    "an allowed Gateway without its namespace": (["gateway.allowed[0]=public"], "/gateway/allowed/0"),
    "a dataset host with a path": (["validation.datasetHosts[0]=data.example.com/x"], "/validation/datasetHosts/0"),
    "a Prometheus URL list entry without a scheme": (
        ["operator.prometheusUrls[0]=thanos:9090"],
        "/operator/prometheusUrls/0",
    ),
    "a promote-full policy naming no group": (["admissionPolicies.promoteFull.enabled=true"], "minItems"),
    "a group that would break out of the policy's CEL": (
        ["admissionPolicies.promoteFull.enabled=true", "admissionPolicies.promoteFull.groups[0]=a'b"],
        "/admissionPolicies/promoteFull/groups/0",
    ),
}


@pytest.mark.parametrize(("assignments", "message"), REJECTIONS.values(), ids=REJECTIONS.keys())
def test_bad_values_are_rejected_with_a_clear_message(assignments: list[str], message: str) -> None:
    result = helm(*template_args(set_values=assignments))
    assert result.returncode != 0, f"helm accepted {assignments}"
    assert message in result.stderr


def test_the_default_values_are_accepted() -> None:
    result = helm(*template_args())
    assert result.returncode == 0, result.stderr
