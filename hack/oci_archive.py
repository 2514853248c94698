"""Packs an OCI image layout directory into the archive `ctr images import` reads, named for containerd.

`make images` (hack/images.sh) pushes each built image into an OCI layout directory; containerd names an imported
image after the `io.containerd.image.name` annotation of its index entry, which buildah does not write. This adds
it (the full reference a pod's `image:` resolves to, e.g. docker.io/sluice/operator:dev) and writes a tar whose
member order and metadata depend on the content only.

Usage: python3 hack/oci_archive.py LAYOUT_DIR IMAGE_NAME ARCHIVE
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

CONTAINERD_NAME = "io.containerd.image.name"


def named_index(index: dict[str, object], image_name: str) -> dict[str, object]:
    """The layout's index with every manifest entry annotated with the containerd image name."""
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise ValueError("the OCI layout's index.json lists no manifest")
    named = [{**m, "annotations": {**m.get("annotations", {}), CONTAINERD_NAME: image_name}} for m in manifests]
    return {**index, "manifests": named}


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _content_only(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o644
    return info


def write_archive(layout: Path, image_name: str, target: Path) -> None:
    """Writes LAYOUT as a tar at TARGET (atomically), its index naming the image IMAGE_NAME."""
    index = named_index(json.loads((layout / "index.json").read_text()), image_name)
    partial = target.with_name(target.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        _add(archive, "oci-layout", (layout / "oci-layout").read_bytes())
        _add(archive, "index.json", json.dumps(index, sort_keys=True).encode())
        for blob in sorted((layout / "blobs").rglob("*")):
            if blob.is_file():
                archive.add(blob, blob.relative_to(layout).as_posix(), filter=_content_only)
    partial.replace(target)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    write_archive(Path(argv[0]), argv[1], Path(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
