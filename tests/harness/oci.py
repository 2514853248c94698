"""Single-layer OCI image archives written without a daemon or registry, for the real node's containerd.

No registry can be reached from the machines this runs on, so the images the harness itself needs are assembled
here: the pod sandbox ("pause", upstream's static program built by `tools/build.sh`) and a busybox test image
(Debian's busybox-static, whose `httpd` and `nc` the infrastructure tests use). An archive holds one gzip layer,
its config, a manifest and an `index.json` whose `io.containerd.image.name` annotation gives the image its name
on `ctr images import`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class ImageFile:
    """One regular file of the image: its content's source on this machine and its mode."""

    source: Path
    mode: int = 0o755


def _layer(files: Mapping[str, ImageFile], symlinks: Mapping[str, str], directories: Sequence[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as layer:
        parents = {str(Path(path).parent) for path in [*files, *symlinks]} | set(directories)
        for directory in sorted(parent.strip("/") for parent in parents if parent.strip("/")):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            layer.addfile(info)
        for path, file in sorted(files.items()):
            data = file.source.read_bytes()
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode = len(data), file.mode
            layer.addfile(info, io.BytesIO(data))
        for path, target in sorted(symlinks.items()):
            info = tarfile.TarInfo(path.strip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            layer.addfile(info)
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def write_image_archive(
    archive: Path,
    name: str,
    *,
    files: Mapping[str, ImageFile],
    entrypoint: Sequence[str],
    symlinks: Mapping[str, str] | None = None,
    directories: Sequence[str] = (),
) -> Path:
    """Write an OCI image archive named `name` (e.g. `sluice.local/pause:v1.34.4`) holding `files`."""
    layer_tar = _layer(files, symlinks or {}, directories)
    layer = gzip.compress(layer_tar, mtime=0)
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(entrypoint), "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
    }
    config_json = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST,
        "config": {"mediaType": _CONFIG, "digest": _digest(config_json), "size": len(config_json)},
        "layers": [{"mediaType": _LAYER, "digest": _digest(layer), "size": len(layer)}],
    }
    manifest_json = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": _MANIFEST,
                "digest": _digest(manifest_json),
                "size": len(manifest_json),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
            }
        ],
    }
    blobs = {_digest(data): data for data in (layer, config_json, manifest_json)}
    entries = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
        **{f"blobs/sha256/{digest.removeprefix('sha256:')}": data for digest, data in blobs.items()},
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="w") as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


BUSYBOX_APPLETS = ("sh", "httpd", "nc", "nslookup", "cat", "echo", "mkdir", "sleep", "printf", "ls", "hostname")


def pause_image(archive: Path, pause_binary: Path, name: str) -> Path:
    """The pod sandbox image: upstream's static pause program and nothing else."""
    return write_image_archive(archive, name, files={"/pause": ImageFile(pause_binary)}, entrypoint=["/pause"])


def busybox_image(archive: Path, busybox_binary: Path, name: str) -> Path:
    """A test image with Debian's static busybox and the applets the infrastructure tests run."""
    return write_image_archive(
        archive,
        name,
        files={"/bin/busybox": ImageFile(busybox_binary)},
        symlinks={f"/bin/{applet}": "busybox" for applet in BUSYBOX_APPLETS},
        directories=("tmp", "etc", "www"),
        entrypoint=["/bin/sh"],
    )
