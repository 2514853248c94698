"""Fixtures of the integration tests (the control plane and namespaces come from tests/conftest.py).

Add fixtures here; keep each block's section comment so several engineers can extend this file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import mlflow_server

# --- The Helm chart and its ServiceAccount: `chart_install` and `operator_kubeconfig` live in tests/conftest.py ---
# (shared with tests/e2e).

# --- A real MLflow tracking server with registered models (tests/harness/mlflow_server.py), one per session -------


@pytest.fixture(scope="session")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mlflow_server.MlflowServer]:
    """iris versions 1 and 2 (scikit-learn), trees version 1 (LightGBM); iris@champion and iris@production name 1."""
    if not mlflow_server.available():
        pytest.fail("no MLflow virtualenv: run `make mlflow-env` (part of `make setup`)")
    server = mlflow_server.start(tmp_path_factory.mktemp("mlflow"))
    try:
        server.run(mlflow_server.REGISTER)
        yield server
    finally:
        server.stop()
