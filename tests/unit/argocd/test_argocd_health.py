"""The Argo CD health check (deploy/argocd/sluice.dev/ModelDeployment/health.lua) in a real Lua 5.1 runtime (lupa),
sandboxed like Argo CD's gopher-lua VM: its Argo-format test cases, and every status the rollout core writes
through a ModelDeployment's life."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from sluice.api.v1alpha1 import Action, ModelDeploymentStatus, Phase
from sluice.core.plan import BlockedPods, WorkloadState
from unit.core.support import ERRORING, HEALTHY, Simulation, at_first_step, deployed, make_spec

CHECK_DIR = Path(__file__).resolve().parents[3] / "deploy" / "argocd" / "sluice.dev" / "ModelDeployment"
SCRIPT = (CHECK_DIR / "health.lua").read_text()
CASES = yaml.safe_load((CHECK_DIR / "health_test.yaml").read_text())["tests"]
ARGO_HEALTH = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})


def health(obj: dict[str, Any]) -> dict[str, str]:
    """Run the script as Argo CD does: `obj` global, no os/io/require, the returned table is the health."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua_globals = runtime.globals()
    for unsafe in ("os", "io", "require", "dofile", "loadfile", "load", "loadstring", "package", "debug"):
        lua_globals[unsafe] = None
    lua_globals.obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(SCRIPT)
    assert result is not None, "the script returned nothing"
    found = dict(result)
    assert found["status"] in ARGO_HEALTH
    return found


@pytest.mark.parametrize("case", CASES, ids=[case["inputPath"] for case in CASES])
def test_the_argo_cd_test_cases_pass(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK_DIR / case["inputPath"]).read_text())

    assert health(obj) == case["healthStatus"]


def test_the_test_cases_cover_every_health_the_script_reports() -> None:
    assert {case["healthStatus"]["status"] for case in CASES} == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_a_model_deployment_without_status_is_progressing() -> None:
    obj = {"apiVersion": "sluice.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "m", "generation": 1}}

    assert health(obj)["status"] == "Progressing"


def test_an_operator_without_kstatus_conditions_is_judged_by_the_phase() -> None:
    def phase(value: str) -> str:
        obj = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "phase": value}}
        return health(obj)["status"]

    assert [phase(value) for value in ("Stable", "RolledBack", "Progressing")] == [
        "Healthy",
        "Degraded",
        "Progressing",
    ]


def as_object(simulation: Simulation) -> dict[str, Any]:
    return {
        "metadata": {"name": "fraud", "namespace": "ml", "generation": simulation.generation},
        "status": simulation.status.to_wire(),
    }


def paused(simulation: Simulation, value: bool) -> None:
    simulation.paused = value
    simulation.reconcile()


def life() -> list[tuple[str, Callable[[Simulation], object], str]]:
    return [
        ("first reconcile", lambda s: s.reconcile(), "Progressing"),
        ("stable available", lambda s: s.reconcile(), "Healthy"),
        ("new version applied", lambda s: s.set_version("2.0.0"), "Progressing"),
        ("canary starting", lambda s: s.reconcile(), "Progressing"),
        ("first step", lambda s: s.reconcile(), "Progressing"),
        ("passed check", lambda s: s.check(HEALTHY), "Progressing"),
        ("paused", lambda s: paused(s, True), "Suspended"),
        ("resumed", lambda s: paused(s, False), "Progressing"),
        ("failed check", lambda s: s.check(ERRORING), "Degraded"),
        ("retried", lambda s: s.reconcile(action=Action.RETRY), "Progressing"),
    ]


def test_every_status_of_a_life_maps_to_the_expected_health() -> None:
    simulation = Simulation(make_spec("1.0.0"))
    seen = []
    for what, step, _ in life():
        step(simulation)
        seen.append((what, health(as_object(simulation))["status"]))

    assert seen == [(what, expected) for what, _, expected in life()]


def test_a_promoted_version_is_healthy_again() -> None:
    simulation = at_first_step(make_spec("1.0.0"))
    while simulation.status.phase is Phase.PROGRESSING:
        assert health(as_object(simulation))["status"] == "Progressing"
        simulation.check(HEALTHY)
    simulation.reconcile()

    assert simulation.status.phase is Phase.STABLE
    assert health(as_object(simulation))["status"] == "Healthy"


def test_an_empty_status_read_back_is_progressing() -> None:
    simulation = deployed(make_spec("1.0.0"))
    simulation.status = ModelDeploymentStatus()

    assert health(as_object(simulation))["status"] == "Progressing"


def test_a_first_deploy_whose_pods_never_start_is_degraded_once_past_its_deadline_with_the_pods_reason() -> None:
    simulation = Simulation(make_spec("1.0.0", replicas=4))
    simulation.blocked_pods = BlockedPods(reason="Unschedulable", count=4)
    simulation.reconcile()
    simulation.stable = WorkloadState(exists=True, version="1.0.0", replicas=4)
    simulation.reconcile()
    before = health(as_object(simulation))
    simulation.stable = WorkloadState(exists=True, version="1.0.0", replicas=4, progress_deadline_exceeded=True)
    simulation.reconcile()

    after = health(as_object(simulation))

    assert before["status"] == "Progressing"
    assert after["status"] == "Degraded"
    assert after["message"].startswith("ProgressDeadlineExceeded: stable 1.0.0 is not progressing")
    assert after["message"].endswith("4 pods cannot start (Unschedulable)")
