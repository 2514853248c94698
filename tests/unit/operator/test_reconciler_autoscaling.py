"""The reconciler with spec.autoscaling: it applies one HPA per track, leaves the replicas an HPA set alone, and
deletes the canary's HPA when the rollout ends (before setting the canary's replicas again)."""

from __future__ import annotations

from typing import Any

from unit.operator.test_reconciler import GATEWAY, NAMES, NAMESPACE, Harness, spec, stable

AUTOSCALING = {"minReplicas": 2, "maxReplicas": 10, "metrics": [
    {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
                              "target": {"type": "AverageValue", "averageValue": "20"}}}
]}  # fmt: skip
ROLLOUT = {"steps": [50], "interval": "1m", "progressDeadline": "10m"}


def autoscaled(version: str = "1.0.0") -> dict[str, Any]:
    return spec(version, replicas=3, traffic=GATEWAY, rollout=ROLLOUT, autoscaling=AUTOSCALING)


def hpa(harness: Harness, name: str) -> dict[str, Any] | None:
    return harness.cluster.get("HorizontalPodAutoscaler", NAMESPACE, name)


def scale(harness: Harness, name: str, replicas: int) -> None:
    """Someone else (the HPA controller) writes a Deployment's replicas."""
    harness.cluster.objects[("Deployment", NAMESPACE, name)]["spec"]["replicas"] = replicas


def test_the_stable_hpa_scales_the_stable_deployment_on_the_specs_metrics_between_its_bounds() -> None:
    harness = stable(Harness(), autoscaled())

    found = hpa(harness, NAMES.stable_deployment)
    assert found is not None
    assert found["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud-stable"}
    assert (found["spec"]["minReplicas"], found["spec"]["maxReplicas"]) == (2, 10)
    assert found["spec"]["metrics"] == AUTOSCALING["metrics"]
    assert hpa(harness, NAMES.canary_deployment) is None
    deployment = harness.cluster.get("Deployment", NAMESPACE, NAMES.stable_deployment)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 3


def test_replicas_the_hpa_set_are_not_reverted() -> None:
    harness = stable(Harness(), autoscaled())
    scale(harness, NAMES.stable_deployment, 7)

    harness.reconcile()

    deployment = harness.cluster.get("Deployment", NAMESPACE, NAMES.stable_deployment)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 7
    assert [write for write in harness.cluster.writes if "Deployment/" in write] == []


def test_the_canary_hpa_lives_as_long_as_the_rollout_and_is_deleted_before_the_canary_scales_to_zero() -> None:
    harness = stable(Harness(), autoscaled())
    scale(harness, NAMES.stable_deployment, 8)
    harness.set_spec(autoscaled("2.0.0"))
    harness.reconcile()

    canary_hpa = hpa(harness, NAMES.canary_deployment)
    assert canary_hpa is not None
    assert (canary_hpa["spec"]["minReplicas"], canary_hpa["spec"]["maxReplicas"]) == (1, 5)
    canary = harness.cluster.get("Deployment", NAMESPACE, NAMES.canary_deployment)
    assert canary is not None
    assert canary["spec"]["replicas"] == 4  # half of stable's 8

    harness.set_spec(autoscaled("1.0.0"))  # back to the stable version: the rollout ends
    harness.cluster.writes.clear()
    harness.reconcile()

    assert hpa(harness, NAMES.canary_deployment) is None
    canary = harness.cluster.get("Deployment", NAMESPACE, NAMES.canary_deployment)
    assert canary is not None
    assert canary["spec"]["replicas"] == 0
    writes = harness.cluster.writes
    deleted = writes.index(f"delete HorizontalPodAutoscaler/{NAMES.canary_deployment}")
    assert deleted < writes.index(f"apply Deployment/{NAMES.canary_deployment}")


def test_removing_spec_autoscaling_deletes_the_hpa_and_gives_the_replicas_back_to_spec_replicas() -> None:
    harness = stable(Harness(), autoscaled())
    scale(harness, NAMES.stable_deployment, 7)
    harness.set_spec(spec(replicas=3, traffic=GATEWAY, rollout=ROLLOUT))

    harness.reconcile()

    assert hpa(harness, NAMES.stable_deployment) is None
    deployment = harness.cluster.get("Deployment", NAMESPACE, NAMES.stable_deployment)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 3
