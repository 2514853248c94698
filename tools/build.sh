#!/usr/bin/env bash
# Builds the pinned upstream binaries that sluice's tests run (etcd, the Kubernetes control plane and node, kwok,
# helm, kind, fake-gcs-server, CoreDNS, Traefik, metrics-server; the pause program of pods) from their published modules into a cache
# outside the repository, keyed by the pins.
# Already-built binaries are skipped. Prints the cache's bin directory on the last line of stdout; `--bin-dir` only
# prints it, building nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here"/*/go.mod "$here"/*/go.sum | sha256sum | cut -c1-16)
cache=${SLUICE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-tools}/$key
bin=$cache/bin
if [[ ${1:-} == --bin-dir ]]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"

modversion() { (cd "$here/$1" && go list -m -f '{{.Version}}' "$2"); }

build() {  # build DIR OUTPUT PACKAGE [LDFLAGS]
  local dir=$1 out=$2 pkg=$3 ldflags=${4:-}
  if [[ -x $bin/$out ]]; then return; fi
  echo ">> building $out ($pkg)" >&2
  local start=$SECONDS
  (cd "$here/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
  echo ">> built $out in $((SECONDS - start)) s" >&2
}

k8s=$(modversion kubernetes k8s.io/kubernetes)
minor=$(echo "$k8s" | cut -d. -f2)
kver="-X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
kver="$kver -X k8s.io/client-go/pkg/version.gitVersion=$k8s -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
etcd=$(modversion etcd go.etcd.io/etcd/server/v3)
kwok=$(modversion kwok sigs.k8s.io/kwok)
helm=$(modversion helm helm.sh/helm/v3)
kind=$(modversion kind sigs.k8s.io/kind)
gwapi=$(modversion gateway-api sigs.k8s.io/gateway-api)
fakegcs=$(modversion fake-gcs-server github.com/fsouza/fake-gcs-server)
coredns=$(modversion coredns github.com/coredns/coredns)
traefik=$(modversion traefik github.com/traefik/traefik/v3)
metricsserver=$(modversion metrics-server sigs.k8s.io/metrics-server)

build etcd etcd go.etcd.io/etcd/server/v3
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
  build kubernetes "$c" "k8s.io/kubernetes/cmd/$c" "$kver"
done
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$kwok"
build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$helm -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
build kind kind sigs.k8s.io/kind
build fake-gcs-server fake-gcs-server github.com/fsouza/fake-gcs-server
build coredns coredns github.com/coredns/coredns "-X github.com/coredns/coredns/coremain.GitCommit=$coredns"
build traefik traefik github.com/traefik/traefik/v3/cmd/traefik "-X github.com/traefik/traefik/v3/pkg/version.Version=$traefik"
build metrics-server metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "-X k8s.io/client-go/pkg/version.gitVersion=$metricsserver"

# The pods' sandbox ("pause") program: upstream's one C file from the pinned Kubernetes module, linked statically so
# that the image the harness wraps around it needs nothing else (no registry is reachable to pull upstream's).
if [[ ! -x $bin/pause ]]; then
  ksrc=$(cd "$here/kubernetes" && go mod download -json k8s.io/kubernetes | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  gcc -static -O2 -DVERSION="$k8s" -o "$bin/pause.tmp" "$ksrc/build/pause/linux/pause.c"
  strip "$bin/pause.tmp" && mv "$bin/pause.tmp" "$bin/pause"
fi

crds=$cache/gateway-api-crds
if [[ ! -d $crds ]]; then
  src=$(cd "$here/gateway-api" && go mod download -json sigs.k8s.io/gateway-api | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$crds.tmp" && cp "$src"/config/crd/standard/*.yaml "$crds.tmp/" && chmod -R u+w "$crds.tmp" && mv "$crds.tmp" "$crds"
fi

cat >&2 <<VERSIONS
pinned versions (cache $cache, $(du -sh "$cache" | cut -f1)):
  kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy) $k8s
  etcd $etcd
  kwok $kwok
  helm $helm
  kind $kind
  gateway-api CRDs (standard channel) $gwapi
  fake-gcs-server (GCS emulator for the gs:// tests) $fakegcs
  coredns (cluster DNS of the real node) $coredns
  traefik (Gateway API implementation of the real node) $traefik
  metrics-server (resource metrics API of the real node, read by the HPA controller) $metricsserver
  pause (pod sandbox program, from kubernetes $k8s)
VERSIONS
echo "$bin"
