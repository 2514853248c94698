#!/usr/bin/env bash
# `make e2e-kind`: the canary scenarios on a real kind cluster with real images.
#   1. builds the operator and model-server images with Docker,
#   2. creates a kind cluster (kind's default node image: Kubernetes v1.34 for kind v0.30.0) and loads both images,
#   3. installs the Gateway API CRDs (the pinned ones `make tools` cached), Prometheus (hack/e2e-kind/prometheus.yaml)
#      and the chart, into namespaces that enforce Pod Security `restricted`,
#   4. runs the e2e scenarios (pytest -m e2e tests/e2e) against that cluster.
# Needs: a running Docker engine, network access to pull python:3.11-slim-bookworm, PyPI and the Prometheus image,
# `make install tools` done. The cluster is deleted at the end unless KEEP_CLUSTER=1.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash tools/build.sh --bin-dir)
export PATH="$bin:$PATH"
cluster=${SLUICE_KIND_CLUSTER:-sluice-e2e}
tag=${SLUICE_IMAGE_TAG:-e2e}
operator_image=ghcr.io/sluice-dev/sluice-operator:$tag
serving_image=ghcr.io/sluice-dev/sluice-serving:$tag
restricted=(pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest)

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
kubectl apply --server-side -f hack/e2e-kind/prometheus.yaml
kubectl -n monitoring rollout status deployment/prometheus --timeout=300s

kubectl create namespace sluice-system
kubectl label namespace sluice-system "${restricted[@]}"
helm install sluice charts/sluice --namespace sluice-system --wait --timeout 5m \
  --set image.tag="$tag" --set image.pullPolicy=Never \
  --set operator.servingImage="$serving_image" \
  --set operator.prometheusUrl=http://prometheus.monitoring.svc:9090

kubectl -n monitoring port-forward service/prometheus 19090:9090 >/dev/null 2>&1 &
forward=$!
trap 'kill "$forward" 2>/dev/null || true; cleanup' EXIT
SLUICE_E2E_KUBECONFIG=$KUBECONFIG \
SLUICE_E2E_PROMETHEUS_URL=http://127.0.0.1:19090 \
SLUICE_E2E_SERVING_IMAGE=$serving_image \
SLUICE_E2E_NAMESPACE_LABELS=$(IFS=,; echo "${restricted[*]}") \
  .venv/bin/pytest -m e2e tests/e2e "$@"
