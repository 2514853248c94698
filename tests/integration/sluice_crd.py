"""Installing the committed ModelDeployment CRD on the test control plane, for the integration tests that need it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.kube import apply_manifests
from harness.tools import find_tools
from sluice.codegen import crdgen

REPO_ROOT = Path(__file__).resolve().parents[2]


def install_crd(control_plane: Any) -> None:
    """Server-side apply crds/ (idempotent, so any test may call it) and wait until the CRD is Established."""
    apply_manifests(find_tools().binary("kubectl"), control_plane.kubeconfig, [REPO_ROOT / crdgen.CRD_PATH])
