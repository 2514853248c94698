"""Reading pods and HTTPRoute status: only known reasons, counts and CamelCase words come out."""

from __future__ import annotations

from typing import Any

from sluice.adapters.world import pod_reason, route_reading
from sluice.core.plan import RouteReading


def waiting(reason: str) -> dict[str, Any]:
    return {"state": {"waiting": {"reason": reason, "message": "long free text " * 100}}}


def test_a_pod_blocked_by_the_scheduler_or_its_image_or_its_config_is_named_by_the_kubernetes_reason() -> None:
    unschedulable = {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
    assert pod_reason({"status": unschedulable}) == "Unschedulable"
    assert pod_reason({"status": {"containerStatuses": [waiting("ImagePullBackOff")]}}) == "ImagePullBackOff"
    assert pod_reason({"status": {"initContainerStatuses": [waiting("CreateContainerConfigError")]}}) == (
        "CreateContainerConfigError"
    )
    assert pod_reason({"status": {"containerStatuses": [waiting("CrashLoopBackOff")]}}) == "CrashLoopBackOff"


def test_a_pod_that_is_only_starting_is_not_blocked() -> None:
    assert pod_reason({"status": {"containerStatuses": [waiting("ContainerCreating")]}}) is None
    assert pod_reason({"status": {"containerStatuses": [waiting("Something<script>")]}}) is None
    assert pod_reason({}) is None


def route(parent_refs: list[dict[str, Any]], parents: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "fraud", "namespace": "ml"},
        "spec": {"parentRefs": parent_refs},
        "status": {"parents": parents},
    }


def accepted(name: str, status: str, reason: str, namespace: str | None = None) -> dict[str, Any]:
    ref = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"parentRef": ref, "conditions": [{"type": "Accepted", "status": status, "reason": reason}]}


def test_each_parent_in_the_spec_counts_once_as_accepted_refused_or_silent() -> None:
    refs = [{"name": "public"}, {"name": "internal", "namespace": "gateways"}, {"name": "edge"}]
    parents = [
        accepted("public", "True", "Accepted", namespace="ml"),
        accepted("internal", "False", "NotAllowedByListeners", namespace="gateways"),
        accepted("elsewhere", "True", "Accepted"),
    ]
    assert route_reading(route(refs, parents)) == RouteReading(
        parents=3, accepted=1, refused=1, reason="NotAllowedByListeners"
    )


def test_a_refusal_reason_that_is_not_a_camel_case_word_is_not_copied() -> None:
    reading = route_reading(route([{"name": "public"}], [accepted("public", "False", "no such gateway " * 50)]))
    assert reading == RouteReading(parents=1, accepted=0, refused=1, reason=None)


def test_a_route_without_status_has_no_parent_accepting_it() -> None:
    assert route_reading({"metadata": {"namespace": "ml"}, "spec": {"parentRefs": [{"name": "public"}]}}) == (
        RouteReading(parents=1, accepted=0, refused=0)
    )
