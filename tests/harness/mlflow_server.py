"""A real MLflow tracking server for the registry tests, on loopback: sqlite backend, local artifact store served
through its artifact proxy, started from the virtualenv `make mlflow-env` builds outside the repository from
tests/harness/mlflow-requirements.lock (mlflow is never a dependency of the operator or the model server), and
stopped by PID. `register` runs MLflow's own client in that virtualenv."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.processes import LOOPBACK, ProcessRecord, free_port, http_ok, launch, stop_processes, wait_until

LOCK = Path(__file__).with_name("mlflow-requirements.lock")


def env_dir() -> Path:
    """The virtualenv of the lock file's hash (the Makefile's mlflow-env computes the same path)."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    return Path(os.environ.get("SLUICE_MLFLOW_CACHE", Path.home() / ".cache" / "sluice-mlflow")) / digest


def available() -> bool:
    """Whether `make mlflow-env` has built the virtualenv."""
    return (env_dir() / ".sluice-ok").is_file()


@dataclass(frozen=True)
class MlflowServer:
    """A running tracking server: its URL, its artifact directory, the process."""

    url: str
    artifacts: Path
    record: ProcessRecord

    def run(self, script: str, timeout: float = 300) -> str:
        """Run `script` with the virtualenv's Python, MLFLOW_TRACKING_URI set to this server; its stdout."""
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.url, "PYTHONWARNINGS": "ignore"}
        done = subprocess.run(
            [str(env_dir() / "bin/python"), "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the MLflow client script failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def artifact_digest(self, file_name: str, version: int = 1) -> str:
        """The sha256 of artifact `file_name` of the `version`-th model logged with that file (in logging order)."""
        found = sorted(self.artifacts.rglob(file_name), key=lambda path: path.stat().st_mtime)
        return "sha256:" + hashlib.sha256(found[version - 1].read_bytes()).hexdigest()

    def stop(self) -> None:
        stop_processes([self.record])


def start(workdir: Path) -> MlflowServer:
    """Start a tracking server in `workdir` and wait until it answers (about 10 s)."""
    port = free_port()
    artifacts = workdir / "artifacts"
    command: list[str | Path] = [
        env_dir() / "bin/python", "-m", "mlflow", "server", "--host", LOOPBACK, "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination", artifacts, "--serve-artifacts",
    ]  # fmt: skip
    record = launch("mlflow", command, workdir / "mlflow.log", die_with_parent=True, cwd=workdir)
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/health"), timeout=180, what="the MLflow tracking server", watched=[record])
    except BaseException:
        stop_processes([record])
        raise
    return MlflowServer(url, artifacts, record)


REGISTER = """
import mlflow, numpy as np, lightgbm as lgb
from sklearn.linear_model import LogisticRegression
X = np.random.default_rng(0).normal(size=(80, 4)).astype("float32")
y = (X[:, 0] > 0).astype(int)
FAST = {"pip_requirements": [], "await_registration_for": 0}  # no requirements inference (a subprocess), no polling
with mlflow.start_run():
    mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model", registered_model_name="iris", **FAST)
with mlflow.start_run():
    mlflow.sklearn.log_model(LogisticRegression().fit(X, 1 - y), name="model", registered_model_name="iris", **FAST)
with mlflow.start_run():
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), num_boost_round=3)
    mlflow.lightgbm.log_model(booster, name="model", registered_model_name="trees", **FAST)
mlflow.MlflowClient().set_registered_model_alias("iris", "champion", "1")
mlflow.MlflowClient().set_registered_model_alias("iris", "production", "1")
"""
"""Registers iris versions 1 and 2 (scikit-learn; 2 answers the opposite class), trees version 1 (a LightGBM
Booster), and points iris@champion and iris@production at version 1."""


def move_alias(server: MlflowServer, name: str, alias: str, version: int) -> None:
    server.run(f"import mlflow; mlflow.MlflowClient().set_registered_model_alias({name!r}, {alias!r}, '{version}')")
