#!/usr/bin/env bash
# `make e2e-kind`: the `real` scenarios (tests/real, marker `real`) against a kind cluster instead of the harness's
# own real node, so that the user-facing path and ours are one suite.
#   1. builds both images from the project's Dockerfiles with Docker, named as `make images` names them
#      (docker.io/sluice/operator:dev, docker.io/sluice/serving:dev),
#   2. creates a kind cluster (kind's default node image: Kubernetes v1.34 for kind v0.30.0) and loads both images,
#   3. installs the Gateway API CRDs (the pinned ones `make tools` cached) and Prometheus
#      (hack/e2e-kind/prometheus.yaml: the serving pods scraped with a PodMonitor's labels),
#   4. runs `pytest -m real tests/real` with KUBECONFIG set to the kind cluster and SLUICE_REAL_CLUSTER=kubeconfig
#      (tests/harness/external.py): the fixtures install the chart with helm and run the scenarios there.
# The Gateway is the user's: no Gateway API implementation is installed here. Run the script with a hook that
# installs one and its Gateway (SLUICE_KIND_GATEWAY_SETUP, a command run once the cluster and the CRDs exist, with
# KUBECONFIG set) and say where its listener answers from this host (SLUICE_REAL_GATEWAY_URL, e.g. a port-forward
# the hook starts) and which Gateway it is (SLUICE_REAL_GATEWAY=namespace/name, default default/public).
# Needs: a running Docker engine, network access to pull python:3.11-slim-bookworm, PyPI and the Prometheus image,
# `make install tools` done. The cluster is deleted at the end unless KEEP_CLUSTER=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash tools/build.sh --bin-dir)
export PATH="$bin:$PATH"
cluster=${SLUICE_KIND_CLUSTER:-sluice-e2e}
operator_image=docker.io/sluice/operator:dev
serving_image=docker.io/sluice/serving:dev

for tool in docker kind helm kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool not found (run make tools; install Docker)" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "e2e-kind: needs a running Docker engine" >&2; exit 2; }

docker build -t "$operator_image" -f operator/Dockerfile operator
docker build -t "$serving_image" -f serving-image/Dockerfile serving-image

mkdir -p .local
export KUBECONFIG=$PWD/.local/kind-$cluster.kubeconfig
cleanup() { if [[ ${KEEP_CLUSTER:-0} != 1 ]]; then kind delete cluster --name "$cluster"; fi; }
trap cleanup EXIT
kind create cluster --name "$cluster" --wait 180s
kind load docker-image --name "$cluster" "$operator_image" "$serving_image"

kubectl apply --server-side -f "$bin/../gateway-api-crds/"
: "${SLUICE_REAL_GATEWAY_URL:?set it to the listener of your Gateway as seen from this host (see the header)}"
if [[ -n ${SLUICE_KIND_GATEWAY_SETUP:-} ]]; then bash -c "$SLUICE_KIND_GATEWAY_SETUP"; fi
kubectl apply --server-side -f hack/e2e-kind/prometheus.yaml
kubectl -n monitoring rollout status deployment/prometheus --timeout=300s

kubectl -n monitoring port-forward service/prometheus 19090:9090 >/dev/null 2>&1 &
forward=$!
trap 'kill "$forward" 2>/dev/null || true; cleanup' EXIT
# Pods in kind reach this host through the gateway of kind's Docker network (the model file server binds it).
host_address=$(docker network inspect kind --format '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | awk '{print $1}')
SLUICE_REAL_CLUSTER=kubeconfig \
SLUICE_REAL_PROMETHEUS_URL=http://127.0.0.1:19090 \
SLUICE_REAL_HOST_ADDRESS=$host_address \
SLUICE_REAL_GATEWAY_URL=$SLUICE_REAL_GATEWAY_URL \
SLUICE_REAL_GATEWAY=${SLUICE_REAL_GATEWAY:-default/public} \
  .venv/bin/pytest -m real tests/real "$@"
