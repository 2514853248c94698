"""The Gateway stand-in accepts a route for each parent whose Gateway exists, and says nothing for the others."""

from __future__ import annotations

from harness.gateway_standin import CONTROLLER_NAME, accepted_parents

ROUTE = {
    "metadata": {"name": "fraud", "namespace": "ml", "generation": 3},
    "spec": {"parentRefs": [{"name": "public"}, {"name": "edge", "namespace": "gateways"}, {"name": "missing"}]},
}


def test_only_parents_whose_gateway_exists_accept_the_route() -> None:
    gateways = {("ml", "public"), ("gateways", "edge")}

    parents = accepted_parents(ROUTE, lambda namespace, name: (namespace, name) in gateways, "2026-01-01T00:00:00Z")

    assert [parent["parentRef"]["name"] for parent in parents] == ["public", "edge"]
    assert {parent["controllerName"] for parent in parents} == {CONTROLLER_NAME}
    accepted = parents[0]["conditions"][0]
    assert (accepted["type"], accepted["status"], accepted["observedGeneration"]) == ("Accepted", "True", 3)


def test_a_route_whose_gateways_are_all_missing_gets_no_parent_status() -> None:
    assert accepted_parents(ROUTE, lambda namespace, name: False, "2026-01-01T00:00:00Z") == []
