"""Runs an image that `make images` built as a real container: umoci unpacks its OCI archive, runc runs it.

The container shares the host's network namespace (so it reaches the loopback control plane and answers on
loopback ports), runs as the image's user with a read-only root filesystem and a tmpfs at /tmp, as the chart runs
it. Needs root, umoci and runc (`make system-packages`).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
IMAGE_CONFIG = "image-config.json"
"""The runtime config umoci derived from the image; each `run` writes config.json from it."""


def built_images() -> Path:
    """`make images` (a no-op when the images are up to date); the directory of the OCI archives."""
    subprocess.run(["bash", str(REPO / "hack" / "images.sh")], check=True, timeout=3600)
    out = subprocess.run(["bash", str(REPO / "hack" / "images.sh"), "--print-dir"], check=True, capture_output=True)
    return Path(out.stdout.decode().strip())


def unpack(archive: Path, reference: str, workdir: Path) -> Path:
    """The runtime bundle (config.json + rootfs) of image `reference` in the OCI archive."""
    layout, bundle = workdir / "layout", workdir / "bundle"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{reference}", str(bundle)], check=True, timeout=600)
    (bundle / "config.json").rename(bundle / IMAGE_CONFIG)
    return bundle


@dataclass
class Container:
    """One container started by `runc run` (foreground, output to `log`)."""

    name: str
    runc_root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        runc = ["runc", "--root", str(self.runc_root)]
        if self.process.poll() is None:
            subprocess.run([*runc, "kill", self.name, "KILL"], check=False, capture_output=True)
            self.process.wait(timeout=30)
        subprocess.run([*runc, "delete", "--force", self.name], check=False, capture_output=True)


def run(
    bundle: Path,
    name: str,
    *,
    env: Mapping[str, str] = {},
    read_only_files: Mapping[str, Path] = {},
    args: Sequence[str] | None = None,
) -> Container:
    """Starts the bundle's image with extra `env`, files bind-mounted read-only (container path → host path) and,
    given `args`, that command instead of the image's entrypoint."""
    config: dict[str, Any] = json.loads((bundle / IMAGE_CONFIG).read_text())
    linux = config["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    config["root"]["readonly"] = True
    config["process"]["terminal"] = False
    config["process"]["env"] += [f"{key}={value}" for key, value in env.items()]
    if args is not None:
        config["process"]["args"] = list(args)
    config["mounts"].append(
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
    )
    for target, source in read_only_files.items():
        config["mounts"].append(
            {"destination": target, "type": "bind", "source": str(source), "options": ["rbind", "ro"]}
        )
    (bundle / "config.json").write_text(json.dumps(config))
    runc_root = bundle.parent / "runc"
    log = bundle.parent / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), name],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Container(name, runc_root, process, log)
