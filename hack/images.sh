#!/usr/bin/env bash
# `make images`: builds operator/Dockerfile and serving-image/Dockerfile without a container engine and writes each
# as an OCI archive that containerd imports (`ctr -n k8s.io images import FILE`):
#   $SLUICE_IMAGES_DIR/operator.oci.tar  tagged sluice/operator:dev  (docker.io/sluice/operator:dev in containerd)
#   $SLUICE_IMAGES_DIR/serving.oci.tar   tagged sluice/serving:dev   (docker.io/sluice/serving:dev in containerd)
# The base image is assembled here from Debian packages (debootstrap --variant=minbase bookworm + python3,
# python3-venv, python-is-python3, ca-certificates) and given to both Dockerfiles through PYTHON_IMAGE; the
# Dockerfiles' own default (the official python slim image) is what users build on. Everything lives outside the
# repository, in $SLUICE_IMAGES_DIR (default ~/.cache/sluice-images): the Debian root filesystem, buildah's storage,
# the archives. An image whose inputs (base, Dockerfile, build context) are unchanged is not rebuilt.
# Needs root, buildah and debootstrap (`make system-packages`), and PyPI (the Dockerfiles install their locks).
# `hack/images.sh --print-dir` prints the archive directory and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${SLUICE_IMAGES_DIR:-$HOME/.cache/sluice-images}
if [[ ${1:-} == --print-dir ]]; then echo "$dir"; exit 0; fi
mirror=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base_packages=python3,python3-venv,python-is-python3,ca-certificates
base_tag=localhost/sluice/python-base:bookworm
# buildah keeps its own store here, apart from any system-wide containers storage.
buildah=(buildah --root "$dir/storage" --runroot "$dir/run" --storage-driver overlay)
mkdir -p "$dir"

for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "images: $tool not found (run make system-packages)" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "images: needs root (debootstrap, buildah's chroot isolation)" >&2; exit 2; }

# One line per input of a step; the step is skipped when its key file holds the same digest.
digest() { sha256sum | cut -d' ' -f1; }
context_digest() {  # the files of a build context that git tracks or would track (sources, not caches)
  (cd "$1" && git ls-files -z --cached --others --exclude-standard . | LC_ALL=C sort -z \
    | while IFS= read -r -d '' file; do if [[ -f $file ]]; then sha256sum "$file"; fi; done) | digest
}

build_base() {
  local key; key=$(printf 'debootstrap minbase bookworm %s %s\n' "$base_packages" "$mirror" | digest)
  if [[ ! -f $dir/rootfs.tar || ! -f $dir/rootfs.key || $(cat "$dir/rootfs.key") != "$key" ]]; then
    echo ">> debootstrap bookworm with $base_packages (log: $dir/debootstrap.log)"
    rm -rf "$dir/rootfs" "$dir/rootfs.key"
    debootstrap --variant=minbase --include="$base_packages" bookworm "$dir/rootfs" "$mirror" >"$dir/debootstrap.log"
    rm -rf "$dir/rootfs/var/cache/apt/archives/"*.deb "$dir/rootfs/var/lib/apt/lists/"*
    tar -C "$dir/rootfs" --numeric-owner -cf "$dir/rootfs.tar.partial" . && mv "$dir/rootfs.tar.partial" "$dir/rootfs.tar"
    rm -rf "$dir/rootfs"
    echo "$key" >"$dir/rootfs.key"
  fi
  if [[ -f $dir/base.key && $(cat "$dir/base.key") == "$key" ]] && "${buildah[@]}" inspect --type image "$base_tag" >/dev/null 2>&1; then
    echo ">> base image $base_tag up to date"; return
  fi
  echo ">> importing the root filesystem as $base_tag"
  local ctr; ctr=$("${buildah[@]}" from scratch)
  "${buildah[@]}" add "$ctr" "$dir/rootfs.tar" / >/dev/null
  "${buildah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd python3 "$ctr"
  "${buildah[@]}" commit --rm -q "$ctr" "$base_tag" >/dev/null
  echo "$key" >"$dir/base.key"
}

# Machines behind a TLS-intercepting proxy (like this project's CI) trust extra CAs that pip's own bundle lacks:
# RUN steps see the host's CA bundle and a pip.conf naming it, as build-time mounts that no layer keeps.
pip_mounts=()
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  printf '[global]\ncert = /run/sluice-build/ca-certificates.crt\n' >"$dir/pip.conf"
  pip_mounts=(-v /etc/ssl/certs/ca-certificates.crt:/run/sluice-build/ca-certificates.crt:ro
              -v "$dir/pip.conf:/etc/pip.conf:ro")
fi

build_image() {  # name, tag, build context
  local name=$1 tag=$2 context=$3 archive=$dir/$1.oci.tar key base_id
  base_id=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$base_tag")
  key=$(printf '%s\n' "$base_id" "$tag" "$(context_digest "$context")" | digest)
  if [[ -f $archive && -f $dir/$name.key && $(cat "$dir/$name.key") == "$key" ]]; then
    echo ">> $tag up to date: $archive"; return
  fi
  echo ">> building $tag from $context/Dockerfile"
  local start=$SECONDS
  "${buildah[@]}" bud --isolation chroot --pull=never --layers -q "${pip_mounts[@]}" \
    --build-arg PYTHON_IMAGE="$base_tag" -t "$tag" -f "$context/Dockerfile" "$context" >/dev/null
  rm -rf "$dir/$name.key" "$dir/$name.oci"
  "${buildah[@]}" push -q "$tag" "oci:$dir/$name.oci:$tag" >/dev/null
  python3 hack/oci_archive.py "$dir/$name.oci" "docker.io/$tag" "$archive"
  rm -rf "$dir/$name.oci"
  echo "$key" >"$dir/$name.key"
  echo ">> $tag built in $((SECONDS - start)) s: $archive ($(du -h "$archive" | cut -f1))"
}

build_base
build_image operator sluice/operator:dev operator
build_image serving sluice/serving:dev serving-image
