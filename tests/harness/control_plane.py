"""A real Kubernetes control plane on loopback, from upstream binaries, with kwok's fake nodes.

Processes: etcd, kube-apiserver (Node,RBAC authorization, default admission plugins incl. PodSecurity,
service-account token signing), kube-controller-manager (default controllers; HPAs synced every 2 s),
kube-scheduler, and kwok, which makes fake nodes Ready and takes scheduled pods to Running/Ready. Every port is
free-allocated on 127.0.0.1, every file (certificates, etcd data, logs) lives under the work directory, and the
Gateway API standard CRDs are installed. With kwok nodes, a Gateway stand-in (`harness.gateway_standin`) accepts
HTTPRoutes whose Gateway exists, and Gateway `default/public` exists.

    plane = ControlPlane.start(Path("/tmp/cp"))
    ...  # plane.kubeconfig (admin, system:masters), plane.api_client(), plane.log_tails()
    plane.stop()
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.certs import ControlPlaneCertificates, generate_certificates, issue_client_certificate
from harness.gateway_standin import create_gateway
from harness.kube import apply_manifests, kubectl, new_api_client
from harness.processes import (
    LOOPBACK,
    ProcessRecord,
    free_ports,
    http_ok,
    launch,
    stop_processes,
    tail,
    wait_until,
)
from harness.tools import Tools, find_tools

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, V1Node

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
POD_CIDR = "10.244.0.1/16"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
_BLOCKING_NODE_TAINTS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


def _first_service_ip() -> str:
    network, _ = SERVICE_CLUSTER_IP_RANGE.split("/")
    *prefix, last = network.split(".")
    return ".".join([*prefix, str(int(last) + 1)])


def write_kubeconfig(
    path: Path, server_url: str, certificates: ControlPlaneCertificates, client: tuple[Path, Path] | None = None
) -> Path:
    """A kubeconfig with the CA and a client certificate embedded (self-contained, copyable): the admin's, or the
    `client` (certificate, key) pair's."""
    client_cert, client_key = client or (certificates.admin_cert, certificates.admin_key)

    def encoded(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sluice-local",
                "cluster": {"server": server_url, "certificate-authority-data": encoded(certificates.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "sluice-admin",
                "user": {
                    "client-certificate-data": encoded(client_cert),
                    "client-key-data": encoded(client_key),
                },
            }
        ],
        "contexts": [{"name": "sluice-local", "context": {"cluster": "sluice-local", "user": "sluice-admin"}}],
        "current-context": "sluice-local",
    }
    path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    path.chmod(0o600)
    return path


@dataclass
class ControlPlane:
    """A running control plane. Build one with `ControlPlane.start(workdir)`; stop it with `.stop()`."""

    workdir: Path
    kubeconfig: Path
    server_url: str
    certificates: ControlPlaneCertificates
    ports: dict[str, int]
    processes: list[ProcessRecord] = field(default_factory=list)
    fake_nodes: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0
    startup_milestones: dict[str, float] = field(default_factory=dict)
    _began: float = field(default_factory=time.monotonic, repr=False)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        fake_node_count: int = 2,
        detached: bool = False,
        timeout: float = 90.0,
        extra_manifests: Sequence[Path] = (),
        address: str = LOOPBACK,
    ) -> ControlPlane:
        """Start every component under `workdir` and return once the cluster can run pods.

        Ready means: /readyz answers, the fake nodes are Ready without blocking taints, the `default`
        ServiceAccount exists, the scheduler is ready, and the Gateway API CRDs (plus `extra_manifests`) are applied
        and Established. With `detached` the processes outlive the caller (for `python -m harness up`); otherwise
        the kernel stops them if the caller dies. On failure everything started so far is stopped.

        The API server binds and advertises `address`: loopback for kwok-only clusters; an address pods can reach
        (on an interface of the harness, see `harness.realnode`) when a real kubelet joins, so that the `kubernetes`
        Service gets an endpoint and the API server can reach the kubelet for logs and exec.
        """
        began = time.monotonic()
        tools = find_tools()
        workdir.mkdir(parents=True, exist_ok=True)
        extra_addresses = () if address == LOOPBACK else (address,)
        certificates = generate_certificates(
            workdir / "pki", service_ip=_first_service_ip(), extra_addresses=extra_addresses
        )
        etcd_port, apiserver_port, controller_manager_port, scheduler_port = free_ports(4)
        server_url = f"https://{address}:{apiserver_port}"
        plane = cls(
            workdir=workdir,
            kubeconfig=write_kubeconfig(workdir / "admin.kubeconfig", server_url, certificates),
            server_url=server_url,
            certificates=certificates,
            _began=began,
            ports={
                "etcd": etcd_port,
                "kube-apiserver": apiserver_port,
                "kube-controller-manager": controller_manager_port,
                "kube-scheduler": scheduler_port,
            },
        )
        plane._mark("certificates written")
        try:
            plane._start_etcd_and_api_server(tools, address, detached=detached, timeout=timeout)
            # CRDs install while the other components start: both mostly wait on the API server.
            with ThreadPoolExecutor(max_workers=1) as background:
                manifests = background.submit(plane._install_manifests, tools, extra_manifests, timeout=timeout)
                plane._start_components(tools, detached=detached)
                plane._create_fake_nodes(fake_node_count)
                plane._mark("components launched, fake nodes created")
                manifests.result()
            plane._wait_until_schedulable(timeout=timeout)
            if fake_node_count > 0:
                plane._start_gateway_standin(detached=detached)
        except Exception as error:
            plane.stop()
            raise RuntimeError(f"control plane failed to start: {error}\n{plane.log_tails()}") from error
        except BaseException:
            plane.stop()
            raise
        plane.startup_seconds = time.monotonic() - began
        return plane

    # -- startup ------------------------------------------------------------------------------------------------

    def _mark(self, milestone: str) -> None:
        self.startup_milestones[milestone] = round(time.monotonic() - self._began, 2)

    def _launch(self, name: str, command: list[str | Path], *, detached: bool) -> ProcessRecord:
        record = launch(name, command, self.workdir / "logs" / f"{name}.log", die_with_parent=not detached)
        self.processes.append(record)
        return record

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certificates.ca_cert))
        context.load_cert_chain(str(self.certificates.admin_cert), str(self.certificates.admin_key))
        return context

    def _start_etcd_and_api_server(self, tools: Tools, address: str, *, detached: bool, timeout: float) -> None:
        certs = self.certificates
        etcd_url = f"http://{LOOPBACK}:{self.ports['etcd']}"
        etcd = self._launch(
            "etcd",
            [
                tools.binary("etcd"),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                "--listen-peer-urls=http://localhost:0",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            detached=detached,
        )
        wait_until(lambda: http_ok(f"{etcd_url}/health"), timeout=timeout, what="etcd /health", watched=[etcd])
        self._mark("etcd /health")

        # The aggregator's client certificate, which extension API servers (metrics-server) trust for the caller's
        # identity in the X-Remote-* headers (`harness.aggregation`).
        proxy_cert, proxy_key = issue_client_certificate(certs, "front-proxy-client", "front-proxy-client")
        apiserver = self._launch(
            "kube-apiserver",
            [
                tools.binary("kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={address}",
                f"--advertise-address={address}",
                f"--secure-port={self.ports['kube-apiserver']}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={certs.serving_cert}",
                f"--tls-private-key-file={certs.serving_key}",
                f"--client-ca-file={certs.ca_cert}",
                f"--requestheader-client-ca-file={certs.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={proxy_cert}",
                f"--proxy-client-key-file={proxy_key}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={certs.service_account_public_key}",
                f"--service-account-signing-key-file={certs.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                # The `kubernetes` Service cannot have a loopback endpoint (validation rejects it): keep it without.
                f"--endpoint-reconciler-type={'none' if address == LOOPBACK else 'lease'}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={certs.admin_cert}",
                f"--kubelet-client-key={certs.admin_key}",
                "--profiling=false",
            ],
            detached=detached,
        )
        tls = self._tls_context()
        wait_until(
            lambda: http_ok(f"{self.server_url}/readyz", tls),
            timeout=timeout,
            what="kube-apiserver /readyz",
            watched=[etcd, apiserver],
            interval=0.2,
        )
        self._mark("kube-apiserver /readyz")

    def _start_components(self, tools: Tools, *, detached: bool) -> None:
        certs = self.certificates
        component_flags = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            "--leader-elect=false",
        ]
        self._launch(
            "kube-controller-manager",
            [
                tools.binary("kube-controller-manager"),
                *component_flags,
                f"--secure-port={self.ports['kube-controller-manager']}",
                f"--root-ca-file={certs.ca_cert}",
                f"--service-account-private-key-file={certs.service_account_key}",
                f"--cluster-signing-cert-file={certs.ca_cert}",
                f"--cluster-signing-key-file={certs.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # HPAs act within seconds, not the default 15 s (tests/integration/test_autoscaling.py)
                "--horizontal-pod-autoscaler-sync-period=2s",
            ],
            detached=detached,
        )
        self._launch(
            "kube-scheduler",
            [tools.binary("kube-scheduler"), *component_flags, f"--secure-port={self.ports['kube-scheduler']}"],
            detached=detached,
        )
        kwok_config = self.workdir / "kwok.yaml"
        kwok_config.write_text("apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n")
        self._launch(
            "kwok",
            [
                tools.binary("kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={kwok_config}",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                f"--node-ip={LOOPBACK}",
            ],
            detached=detached,
        )

    def _start_gateway_standin(self, *, detached: bool) -> None:
        """kwok clusters have no Gateway controller: the stand-in accepts routes whose Gateway exists
        (`harness.gateway_standin`), and Gateway `default/public` exists, as on the real node."""
        standin = Path(__file__).with_name("gateway_standin.py")
        self._launch("gateway-standin", [sys.executable, standin, f"--kubeconfig={self.kubeconfig}"], detached=detached)
        with self.api_client() as api_client:
            create_gateway(api_client, "default")
        self._mark("Gateway stand-in started, Gateway default/public created")

    def _create_fake_nodes(self, count: int) -> None:
        from kubernetes import client

        with self.api_client() as api_client:
            core = client.CoreV1Api(api_client)
            for index in range(count):
                name = f"kwok-node-{index}"
                metadata = client.V1ObjectMeta(
                    name=name,
                    annotations={FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    labels={
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                )
                # kwok keeps a node's own capacity; its default has no ephemeral-storage, which serving pods request.
                resources = {"cpu": "1k", "memory": "1Ti", "pods": "1M", "ephemeral-storage": "1Ti"}
                status = client.V1NodeStatus(capacity=resources, allocatable=resources)
                core.create_node(client.V1Node(metadata=metadata, status=status))
                self.fake_nodes.append(name)

    def _install_manifests(self, tools: Tools, extra_manifests: Sequence[Path], *, timeout: float) -> None:
        gateway_crds = sorted(tools.gateway_api_crds.glob("*.yaml"))
        if not gateway_crds:
            raise FileNotFoundError(f"no Gateway API CRDs in {tools.gateway_api_crds}: run `make tools`")
        apply_manifests(tools.binary("kubectl"), self.kubeconfig, [*gateway_crds, *extra_manifests], timeout=timeout)
        self._mark("CRDs Established")

    def _wait_until_schedulable(self, *, timeout: float) -> None:
        from kubernetes import client

        with self.api_client() as api_client:
            core = client.CoreV1Api(api_client)

            def nodes_ready() -> bool:
                nodes = core.list_node(label_selector="type=kwok").items
                return len(nodes) == len(self.fake_nodes) and all(node_schedulable(node) for node in nodes)

            def default_service_account_exists() -> bool:
                core.read_namespaced_service_account("default", "default")
                return True

            tls = self._tls_context()
            scheduler_url = f"https://{LOOPBACK}:{self.ports['kube-scheduler']}/readyz"
            controller_manager_url = f"https://{LOOPBACK}:{self.ports['kube-controller-manager']}/healthz"
            checks = [
                (lambda: http_ok(controller_manager_url, tls), "kube-controller-manager /healthz"),
                (lambda: http_ok(scheduler_url, tls), "kube-scheduler /readyz"),
                (default_service_account_exists, "ServiceAccount default/default"),
                (nodes_ready, "fake nodes Ready and untainted"),
            ]
            for check, what in checks:
                wait_until(check, timeout=timeout, what=what, watched=self.processes, interval=0.2)
                self._mark(what)

    # -- use ----------------------------------------------------------------------------------------------------

    def api_client(self) -> ApiClient:
        """A new `kubernetes.client.ApiClient` with admin credentials (a context manager; close it when done)."""
        return new_api_client(self.kubeconfig)

    def kubectl(self, *args: str) -> str:
        """Run the pinned kubectl against this cluster; returns stdout."""
        return kubectl(find_tools().binary("kubectl"), self.kubeconfig, *args)

    def logs(self) -> dict[str, Path]:
        """Log file of each component, by component name."""
        return {record.name: record.log_path for record in self.processes}

    def log_tails(self, lines: int = 30) -> str:
        """The last lines of every component's log, for failure reports."""
        return "\n".join(f"----- {name} ({path}) -----\n{tail(path, lines)}" for name, path in self.logs().items())

    def is_running(self) -> bool:
        return bool(self.processes) and all(record.is_alive() for record in self.processes)

    def stop(self) -> None:
        """Stop every component by PID (SIGTERM, then SIGKILL), newest first."""
        stop_processes(reversed(self.processes))

    # -- state for `python -m harness` ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "server_url": self.server_url,
            "ports": self.ports,
            "processes": [record.to_json() for record in self.processes],
            "fake_nodes": self.fake_nodes,
            "startup_seconds": self.startup_seconds,
            "startup_milestones": self.startup_milestones,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ControlPlane:
        workdir = Path(data["workdir"])
        return cls(
            workdir=workdir,
            kubeconfig=Path(data["kubeconfig"]),
            server_url=str(data["server_url"]),
            certificates=ControlPlaneCertificates.in_directory(workdir / "pki"),
            ports={str(name): int(port) for name, port in data["ports"].items()},
            processes=[ProcessRecord.from_json(record) for record in data["processes"]],
            fake_nodes=[str(name) for name in data["fake_nodes"]],
            startup_seconds=float(data["startup_seconds"]),
            startup_milestones={
                str(name): float(seconds) for name, seconds in data.get("startup_milestones", {}).items()
            },
        )

    def __str__(self) -> str:
        return json.dumps(self.to_json(), indent=2)


def node_schedulable(node: V1Node) -> bool:
    status_conditions = node.status.conditions if node.status else None
    conditions = {condition.type: condition.status for condition in status_conditions or []}
    taints = {taint.key for taint in (node.spec.taints if node.spec else None) or []}
    return conditions.get("Ready") == "True" and not taints & _BLOCKING_NODE_TAINTS
