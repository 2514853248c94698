"""What the real-node scenarios share: the images `make images` builds, the release the chart is installed as, the
model file server, and the PodMonitor Prometheus applies."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness import Prometheus

OPERATOR_IMAGE = "docker.io/sluice/operator:dev"
SERVING_IMAGE = "docker.io/sluice/serving:dev"
RELEASE = "sluice"
RELEASE_NAMESPACE = "sluice-system"
SERVING_SELECTOR = ("app.kubernetes.io/name", "sluice-serving")
SERVING_PORT_NAME = "http"
POD_MONITOR = ("monitoring", "sluice-serving")


def images_dir() -> Path:
    return Path(os.environ.get("SLUICE_IMAGES_DIR", Path.home() / ".cache" / "sluice-images"))


@dataclass(frozen=True)
class Release:
    """The chart as `helm install` left it on the real node."""

    namespace: str
    name: str
    prometheus: Prometheus

    @property
    def lease(self) -> str:
        return f"{self.name}-leader"


@dataclass(frozen=True)
class ModelServer:
    """A directory served over HTTP on the node's host address: where serving pods fetch models from."""

    directory: Path
    url: str
