# sluice: developer entry points. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: help setup system-packages install mlflow-env mlflow-lock tools images locks protos lint test test-unit test-integration test-real stress crds cluster-up cluster-down run-local dataplane bench-serving bench-profile bench bench-real bench-judge chart-lint e2e-kind demo

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(PY):
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: system-packages install mlflow-env tools images  ## Everything a fresh machine needs: Debian packages, virtualenvs, upstream binaries, both images

# The images: buildah, debootstrap, umoci, runc. The real node (tests marked `real`): containerd, runc, CNI plugins,
# iptables/nftables/conntrack for kube-proxy, iproute2 for the harness's interfaces, gcc + libc6-dev for the static
# pause program, busybox-static for the harness's test image.
SYSTEM_PACKAGES := prometheus wrk buildah debootstrap umoci runc containerd containernetworking-plugins iptables \
	nftables conntrack iproute2 gcc libc6-dev busybox-static

system-packages:  ## Debian packages the tests use (prometheus, wrk; buildah, debootstrap, umoci for the images; containerd, runc, CNI plugins for the real node); needs root
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

install: $(PY)  ## Virtualenv with both projects editable and the test dependencies
	$(BIN)/pip install -q -e 'operator[bench]' -e serving-image -r requirements-dev.txt

# The MLflow tracking server and client of the registry tests (tests/harness/mlflow_server.py), in a virtualenv of
# their own outside the repository, named by the lock file's hash: never a dependency of the operator or the server.
MLFLOW_LOCK := tests/harness/mlflow-requirements.lock
MLFLOW_ENV = $(or $(SLUICE_MLFLOW_CACHE),$(HOME)/.cache/sluice-mlflow)/$(shell sha256sum $(MLFLOW_LOCK) | cut -c1-16)

mlflow-env:  ## Virtualenv with mlflow (from the hashed tests/harness/mlflow-requirements.lock) for the MLflow registry tests, cached in ~/.cache/sluice-mlflow/ (~1 min cold)
	@if [ ! -f $(MLFLOW_ENV)/.sluice-ok ]; then rm -rf $(MLFLOW_ENV) && python3 -m venv $(MLFLOW_ENV) && \
		$(MLFLOW_ENV)/bin/pip install -q --no-deps --require-hashes -r $(MLFLOW_LOCK) && touch $(MLFLOW_ENV)/.sluice-ok; fi

mlflow-lock: $(PY)  ## Regenerate tests/harness/mlflow-requirements.lock from tests/harness/mlflow-requirements.in
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux --custom-compile-command "make mlflow-lock" tests/harness/mlflow-requirements.in -o $(MLFLOW_LOCK)

tools:  ## Build the pinned upstream binaries (etcd, Kubernetes control plane + kubelet/kube-proxy, kwok, helm, kind, CoreDNS, Traefik, metrics-server, pause) into a cache outside the repo
	bash tools/build.sh

images:  ## Build both images without a container engine into OCI archives (~/.cache/sluice-images/{operator,serving}.oci.tar); needs root
	bash hack/images.sh

# Both images' Python dependencies, pinned with hashes for Linux/CPython 3.11 (the images' platform). The lock also
# pins the build backend (setuptools) that builds each package inside its image. Existing pins are kept unless
# LOCK_ARGS=--upgrade.
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux --custom-compile-command "make locks" $(LOCK_ARGS)

locks: $(PY)  ## Regenerate operator/requirements.lock and serving-image/requirements.lock (with the s3, gcs, skops, xgboost, lightgbm extras) from the pyproject files, and the bench's bare-ASGI floor (serving-image/bench/floor.lock, at the serving lock's versions)
	cd operator && printf 'setuptools>=69\n' | ../$(LOCK) pyproject.toml - -o requirements.lock
	cd serving-image && printf 'setuptools>=69\n' | ../$(LOCK) pyproject.toml - --extra s3 --extra gcs --extra skops --extra xgboost --extra lightgbm -o requirements.lock
	cd serving-image/bench && ../../$(LOCK) floor.in -c ../requirements.lock -o floor.lock

protos: $(PY)  ## Regenerate the gRPC API's messages (serving-image/src/sluice_serving/oip/grpc_predict_v2_pb2.py and .pyi) from its .proto, in a descriptor pool of their own (so that they load beside any client's copy of the same proto)
	cd serving-image/src && ../../$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. sluice_serving/oip/grpc_predict_v2.proto
	sed -i 's/_descriptor_pool.Default()/_descriptor_pool.DescriptorPool()/' serving-image/src/sluice_serving/oip/grpc_predict_v2_pb2.py

lint:  ## ruff, mypy strict, the import contracts (layers; a pure rollout core), modules <= 400 lines and functions <= 60
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --show-traceback operator/src serving-image/src tests hack bench
	cd operator/src && ../../$(BIN)/lint-imports ../../pyproject.toml
	$(PY) hack/code_limits.py

test:  ## All tests (unit, integration, e2e, real node)
	$(BIN)/pytest

test-unit:  ## Fast tests, no processes
	$(BIN)/pytest -m "not integration and not e2e and not real"

test-integration:  ## Tests against the real local control plane, Prometheus and model servers
	$(BIN)/pytest -m "integration or e2e"

test-real:  ## Scenarios on a real node: containers, kube-proxy, CoreDNS, a Traefik Gateway (root; see docs/local-control-plane.md)
	$(BIN)/pytest -m real

FUZZ_SECONDS ?= 300

stress:  ## Reliability tests at full size (SLUICE_STRESS=1: 50 rollouts under SIGKILLs, 1,000 generated manifests, longer API-fault runs), then FUZZ_SECONDS of atheris on the model server; see docs/reliability.md
	SLUICE_STRESS=1 $(BIN)/pytest -p no:cacheprovider tests/reliability -s $(STRESS_ARGS)
	$(PY) tests/fuzz/run_atheris.py -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1

cluster-up: $(PY)  ## Start a local control plane (kwok nodes, Gateway API CRDs, crds/) and Prometheus in the background; writes .local/kubeconfig and links the pinned kubectl into .local/bin. NODES=real: one real node, Traefik Gateway `public`, model file server
	PYTHONPATH=tests $(PY) -m harness up $(if $(filter real,$(NODES)),--real)
	mkdir -p .local/bin && ln -sf "$$(bash tools/build.sh --bin-dir | tail -n 1)/kubectl" .local/bin/kubectl

cluster-down:  ## Stop, by PID, what cluster-up started
	PYTHONPATH=tests $(PY) -m harness down

demo: $(PY)  ## Local canary demo (control plane, Prometheus, model servers, operator): a good version promoted, a bad one rolled back; DEMO_ARGS=--short for CI; KEEP=1 leaves it running; NODES=real runs it on the real node (the chart's operator pod, serving containers, Traefik's Gateway; root, `make images` first)
	$(PY) hack/demo.py $(DEMO_ARGS) $(if $(KEEP),--keep) $(if $(filter real,$(NODES)),--real)

run-local:  ## Run the operator against the cluster-up cluster and its Prometheus (.local/prometheus-url)
	@test -f .local/prometheus-url || { echo "no local cluster: run \`make cluster-up\` first" >&2; exit 2; }
	KUBECONFIG=.local/kubeconfig SLUICE_PROMETHEUS_URL="$${SLUICE_PROMETHEUS_URL:-$$(cat .local/prometheus-url)}" $(BIN)/sluice-operator

dataplane: $(PY)  ## Model servers for the cluster-up cluster's pods (namespace ml) and traffic to iris, so a local rollout has metrics; DATAPLANE_ARGS="--namespace N --name M"
	$(PY) hack/dataplane.py $(DATAPLANE_ARGS)

crds: $(PY)  ## Regenerate the generated files: crds/ and docs/api.md from the pydantic API models, the model server's copy of sluice/contract.py
	$(PY) -m sluice.codegen

bench-serving: $(PY)  ## Model-server benchmark: sluice_serving vs MLServer vs KServe vs bare ASGI (wrk; gRPC with ghz; loopback), ONNX, scikit-learn, XGBoost, LightGBM, batching on and off; updates docs/benchmarks.md
	$(PY) serving-image/bench/run.py

bench-profile: $(PY)  ## Where a batch-1 request's time goes in sluice_serving: callgrind instructions per stage, GC counts, syscalls and threads per request vs the bare-ASGI floor (installs valgrind, strace, wrk from Debian if missing; ~6 min); prints Markdown for docs/benchmarks.md
	@missing=$$(for p in valgrind strace wrk; do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	$(PY) serving-image/bench/profile.py $(PROFILE_ARGS)

bench-real: $(PY)  ## On the real node, one run: serving pod create->Ready, Gateway vs direct (wrk), served share per step, breach->canary weight 0; updates docs/benchmarks.md (root, `make images` first; ~4 min)
	$(PY) bench/real_node.py $(BENCH_ARGS)

bench: $(PY)  ## Operator benchmarks on the local control plane (scale 1/100/1000, 200 concurrent rollouts, breach to rollback, undo within keepPrevious, 10-min serving soak; ~30 min); updates docs/benchmarks.md. BENCH_ARGS="--quick" or "--only scale"
	$(PY) bench/run.py $(BENCH_ARGS)

bench-judge: $(PY)  ## The judge's decisions on a seeded corpus of labelled rollouts, beside Flagger's and Argo Rollouts' rules: recall, false rollbacks, time to decision per cell; updates docs/benchmarks.md (~4 min; docs/judge.md)
	$(PY) -m sluice.judge.bench --docs docs/benchmarks.md $(BENCH_ARGS)

chart-lint:  ## helm lint and template the chart (defaults and every charts/sluice/ci/*-values.yaml) and its schema tests
	$(BIN)/pytest tests/unit/chart

e2e-kind:  ## Build both images, create a kind cluster, install Prometheus, Gateway API CRDs and the chart, run the e2e scenarios (needs Docker)
	bash hack/e2e-kind.sh
