"""Installing the committed ModelDeployment CRD on the test control plane, for the integration tests that need it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sluice import crdgen

REPO_ROOT = Path(__file__).resolve().parents[2]


def install_crd(control_plane: Any) -> None:
    """Server-side apply crds/ (idempotent, so any test may call it) and wait until the CRD is Established."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / crdgen.CRD_PATH))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crdgen.CRD_NAME}")
