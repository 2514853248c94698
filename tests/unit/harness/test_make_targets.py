"""The make targets a person runs by hand pass on what they promise (the runs themselves: the README's first
rollout in tests/integration/test_first_rollout.py, the demo in CI)."""

from __future__ import annotations

import subprocess

from harness.tools import REPO_ROOT


def recipe(*args: str) -> str:
    """What `make` would run, without running it."""
    return subprocess.run(["make", "-n", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


def test_run_local_points_the_operator_at_the_prometheus_cluster_up_started() -> None:
    assert 'SLUICE_PROMETHEUS_URL="${SLUICE_PROMETHEUS_URL:-$(cat .local/prometheus-url)}"' in recipe("run-local")


def test_demo_keep_leaves_it_running() -> None:
    assert "hack/demo.py  --keep" in recipe("demo", "KEEP=1")
    assert "--keep" not in recipe("demo")


def test_demo_nodes_real_runs_it_on_the_real_node() -> None:
    assert "--real" in recipe("demo", "NODES=real")
    assert "--real" not in recipe("demo")
