"""Where the upstream binaries are: the cache that `tools/build.sh` fills (`make tools`).

`SLUICE_TOOLS_BIN` overrides the location; otherwise `tools/build.sh --bin-dir` names it (it builds nothing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROL_PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")


class MissingToolError(RuntimeError):
    """A binary the harness needs has not been built or installed."""


@dataclass(frozen=True)
class Tools:
    """Absolute paths of the binaries the harness runs."""

    bin_dir: Path
    gateway_api_crds: Path

    def binary(self, name: str) -> Path:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise MissingToolError(f"{path} is missing: run `make tools` (tools/build.sh) first")
        return path


@cache
def find_tools() -> Tools:
    """Locate the built binaries and check that the control plane's are all there."""
    override = os.environ.get("SLUICE_TOOLS_BIN")
    if override:
        bin_dir = Path(override)
    else:
        result = subprocess.run(
            ["bash", str(REPO_ROOT / "tools" / "build.sh"), "--bin-dir"], capture_output=True, text=True, check=True
        )
        bin_dir = Path(result.stdout.strip().splitlines()[-1])
    tools = Tools(bin_dir=bin_dir, gateway_api_crds=bin_dir.parent / "gateway-api-crds")
    for name in CONTROL_PLANE_BINARIES:
        tools.binary(name)
    return tools


def prometheus_binary() -> Path:
    """Debian's Prometheus (`make system-packages`), or `SLUICE_PROMETHEUS` when set."""
    found = os.environ.get("SLUICE_PROMETHEUS") or shutil.which("prometheus")
    if not found:
        raise MissingToolError("prometheus is not installed: run `make system-packages` (Debian's prometheus)")
    return Path(found)
