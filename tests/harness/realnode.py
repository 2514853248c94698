"""A real Kubernetes node beside the local control plane: containers run, Services route, a Gateway splits traffic.

What runs (all started by the harness, all stopped by PID, every file under the work directory):
- an interface `sluice-host0` (a bridge without ports) holding HOST_ADDRESS (10.246.0.1/32), created before the
  API server starts: the address the API server, the kubelet, CoreDNS, Traefik and the harness's file servers
  bind, reachable from this host and (through the pods' default route to the bridge) from every pod;
- the control plane (`ControlPlane`, no kwok nodes) serving on HOST_ADDRESS, so the `kubernetes` Service has an
  endpoint pods reach and `kubectl logs`/`exec` work;
- containerd (Debian's, with its own root, state and sockets; CRI with the bridge CNI, `restrict_oom_score_adj`
  because this VM withholds CAP_SYS_RESOURCE), the pause and busybox images built here (`harness.oci`);
- kubelet `sluice-node` with a node credential (user `system:node:sluice-node`, group `system:nodes`), webhook
  authentication and authorization, cgroupfs driver, cluster DNS on HOST_ADDRESS;
- kube-proxy in iptables mode (user `system:kube-proxy`);
- CoreDNS as a host process on HOST_ADDRESS:53 (the kubernetes plugin for `cluster.local`);
- Traefik v3 as a host process, the Kubernetes Gateway provider watching the cluster, its `web` entrypoint on
  HOST_ADDRESS:<free port>; GatewayClass `traefik` and Gateway `public` in `default` (routes from all namespaces).

Only one real node can run on a machine: kubelet has fixed paths (`/var/lib/kubelet/device-plugins`,
`/var/log/containers`) and the interface, bridge and cgroup names are fixed. A state file (STATE_FILE) names the
running node; a new start refuses while its processes live and otherwise first removes what a crashed run left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.certs import issue_client_certificate
from harness.control_plane import ControlPlane, node_schedulable, write_kubeconfig
from harness.kube import apply_manifests
from harness.oci import busybox_image, pause_image
from harness.processes import (
    LOOPBACK,
    ProcessExitedError,
    ProcessRecord,
    free_ports,
    http_ok,
    launch,
    stop_processes,
    tail,
    wait_until,
)
from harness.prometheus import PodMonitor
from harness.tools import find_tools

NODE_NAME = "sluice-node"
HOST_INTERFACE = "sluice-host0"
HOST_ADDRESS = "10.246.0.1"
POD_BRIDGE = "sluice-br0"
POD_SUBNET = "10.245.0.0/16"
CNI_NETWORK = "sluice-pods"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "sluice.local/pause:harness"
BUSYBOX_IMAGE = "sluice.local/busybox:harness"
GATEWAY_CLASS = "traefik"
GATEWAY_NAME = "public"
GATEWAY_NAMESPACE = "default"
CONTAINERD_NAMESPACE = "k8s.io"
STATE_FILE = Path("/run/sluice-realnode.json")
_KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
_SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")
EGRESS_TABLE = "sluice_real_node_egress"


def _run(*command: str | Path, check: bool = True, timeout: float = 60.0) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(str(part) for part in command)} failed: {result.stderr.strip()}")
    return result.stdout


def _write_yaml(path: Path, document: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))
    return path


@dataclass
class RealNode:
    """A running real node and its control plane. Start with `RealNode.start(workdir)`; stop with `.stop()`."""

    workdir: Path
    plane: ControlPlane
    ports: dict[str, int]
    processes: list[ProcessRecord] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    startup_seconds: float = 0.0

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    @property
    def gateway_url(self) -> str:
        """Gateway `public`'s listener, as seen from this host and from pods."""
        return f"http://{HOST_ADDRESS}:{self.ports['gateway']}"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @classmethod
    def start(
        cls, workdir: Path, *, detached: bool = False, timeout: float = 180.0, extra_manifests: Sequence[Path] = ()
    ) -> RealNode:
        """Start the host network, the control plane and every node component; return once a pod can run, DNS
        answers and Gateway `public` is Programmed. On failure everything started so far is stopped."""
        began = time.monotonic()
        tools = find_tools()
        for name in ("kubelet", "kube-proxy", "coredns", "traefik", "pause"):
            tools.binary(name)
        workdir.mkdir(parents=True, exist_ok=True)
        _clear_previous_run()
        sysctls = _prepare_host_network()
        STATE_FILE.write_text(json.dumps({"workdir": str(workdir), "processes": [], "sysctls": sysctls}))
        try:
            plane = ControlPlane.start(
                workdir / "control-plane",
                fake_node_count=0,
                detached=detached,
                timeout=timeout,
                extra_manifests=extra_manifests,
                address=HOST_ADDRESS,
            )
        except BaseException:
            _restore_host_network(sysctls)
            STATE_FILE.unlink(missing_ok=True)
            raise
        kube_proxy_health, kube_proxy_metrics, coredns_ready, gateway = free_ports(4)
        node = cls(
            workdir=workdir,
            plane=plane,
            sysctls=sysctls,
            ports={
                "kube-proxy-health": kube_proxy_health,
                "kube-proxy-metrics": kube_proxy_metrics,
                "coredns-ready": coredns_ready,
                "gateway": gateway,
            },
        )
        try:
            node._start_containerd(tools.binary("pause"), detached=detached, timeout=timeout)
            node._start_kubelet(tools.binary("kubelet"), detached=detached)
            node._start_kube_proxy(tools.binary("kube-proxy"), detached=detached)
            node._start_coredns(tools.binary("coredns"), detached=detached)
            node._start_traefik(tools.binary("traefik"), detached=detached)
            node._wait_until_ready(timeout=timeout)
        except Exception as error:
            tails = node.log_tails()
            node.stop()
            raise RuntimeError(f"real node failed to start: {error}\n{tails}") from error
        except BaseException:
            node.stop()
            raise
        node.startup_seconds = time.monotonic() - began
        return node

    # -- startup ------------------------------------------------------------------------------------------------

    def _launch(
        self, name: str, command: Sequence[str | Path], *, detached: bool, env: Mapping[str, str] | None = None
    ) -> ProcessRecord:
        prefix: list[str | Path] = ["env", *(f"{key}={value}" for key, value in (env or {}).items())] if env else []
        record = launch(name, [*prefix, *command], self.workdir / "logs" / f"{name}.log", die_with_parent=not detached)
        self.processes.append(record)
        self._save_state()
        return record

    def _save_state(self) -> None:
        state = {
            "workdir": str(self.workdir),
            "processes": [record.to_json() for record in self.processes],
            "sysctls": self.sysctls,
        }
        STATE_FILE.write_text(json.dumps(state))

    def _ctr(self, *args: str | Path, check: bool = True, timeout: float = 60.0) -> str:
        return _run(
            "ctr", "--address", self.containerd_socket, "-n", CONTAINERD_NAMESPACE, *args, check=check, timeout=timeout
        )

    def _start_containerd(self, pause_binary: Path, *, detached: bool, timeout: float) -> None:
        base = self.workdir / "containerd"
        cni_conf = self.workdir / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "0.4.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": POD_BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        (cni_conf / "10-sluice.conflist").write_text(json.dumps(conflist, indent=2))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{shutil.which("runc") or "/usr/sbin/runc"}"
        Root = "{base / "runc"}"
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"""
        base.mkdir(parents=True, exist_ok=True)
        (base / "config.toml").write_text(config)
        containerd = self._launch(
            "containerd", ["containerd", "--config", base / "config.toml", "--log-level", "warn"], detached=detached
        )
        wait_until(
            lambda: bool(self._ctr("version", timeout=5)),
            timeout=timeout,
            what="containerd answering",
            watched=[containerd],
            interval=0.2,
        )
        images = self.workdir / "images"
        busybox = shutil.which("busybox")
        if busybox is None:
            raise FileNotFoundError("busybox is not installed: run `make system-packages` (Debian's busybox-static)")
        self.load_image(pause_image(images / "pause.tar", pause_binary, PAUSE_IMAGE))
        self.load_image(busybox_image(images / "busybox.tar", Path(busybox), BUSYBOX_IMAGE))

    def load_image(self, archive: Path) -> None:
        """Import an OCI or Docker image archive into the node's containerd (unpacked for the CRI)."""
        self._ctr("images", "import", archive, timeout=600)

    def _start_kubelet(self, kubelet: Path, *, detached: bool) -> None:
        base = self.workdir / "kubelet"
        base.mkdir(parents=True, exist_ok=True)
        certificates = self.plane.certificates
        credential = issue_client_certificate(certificates, "kubelet", f"system:node:{NODE_NAME}", "system:nodes")
        kubeconfig = write_kubeconfig(base / "kubeconfig", self.plane.server_url, certificates, credential)
        resolv_conf = base / "resolv.conf"
        resolv_conf.write_text("")
        socket = f"unix://{self.containerd_socket}"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": socket,
            "imageServiceEndpoint": socket,
            "podLogsDir": str(base / "pod-logs"),
            "volumePluginDir": str(base / "volume-plugins"),
            "address": HOST_ADDRESS,
            "readOnlyPort": 0,
            "healthzBindAddress": LOOPBACK,
            "failSwapOn": False,
            "oomScoreAdj": 0,
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(certificates.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [HOST_ADDRESS],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(resolv_conf),
        }
        _write_yaml(base / "config.yaml", config)
        self._launch(
            "kubelet",
            [
                kubelet,
                f"--config={base / 'config.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={base / 'root'}",
                f"--cert-dir={base / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={HOST_ADDRESS}",
                "--v=1",
            ],
            detached=detached,
        )

    def _start_kube_proxy(self, kube_proxy: Path, *, detached: bool) -> None:
        base = self.workdir / "kube-proxy"
        base.mkdir(parents=True, exist_ok=True)
        credential = issue_client_certificate(self.plane.certificates, "kube-proxy", "system:kube-proxy")
        kubeconfig = write_kubeconfig(base / "kubeconfig", self.plane.server_url, self.plane.certificates, credential)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "hostnameOverride": NODE_NAME,
            "healthzBindAddress": f"{LOOPBACK}:{self.ports['kube-proxy-health']}",
            "metricsBindAddress": f"{LOOPBACK}:{self.ports['kube-proxy-metrics']}",
            "nodePortAddresses": [f"{HOST_ADDRESS}/32"],
            "iptables": {"localhostNodePorts": False},
            # Leave the host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }
        _write_yaml(base / "config.yaml", config)
        self._launch("kube-proxy", [kube_proxy, f"--config={base / 'config.yaml'}"], detached=detached)

    def _start_coredns(self, coredns: Path, *, detached: bool) -> None:
        base = self.workdir / "coredns"
        base.mkdir(parents=True, exist_ok=True)
        corefile = f""".:53 {{
    bind {HOST_ADDRESS}
    errors
    ready {LOOPBACK}:{self.ports["coredns-ready"]}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self.plane.kubeconfig} sluice-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""
        (base / "Corefile").write_text(corefile)
        self._launch("coredns", [coredns, "-conf", base / "Corefile"], detached=detached)

    def _start_traefik(self, traefik: Path, *, detached: bool) -> None:
        self._launch(
            "traefik",
            [
                traefik,
                f"--entrypoints.web.address={HOST_ADDRESS}:{self.ports['gateway']}",
                "--providers.kubernetesgateway=true",
                f"--providers.kubernetesgateway.statusaddress.ip={HOST_ADDRESS}",
                "--global.checknewversion=false",
                "--global.sendanonymoususage=false",
                "--log.level=INFO",
            ],
            detached=detached,
            env={"KUBECONFIG": str(self.plane.kubeconfig)},
        )
        gateway = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": "web",
                        "protocol": "HTTP",
                        "port": self.ports["gateway"],
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        }
        gateway_class = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": "traefik.io/gateway-controller"},
        }
        manifest = self.workdir / "gateway.yaml"
        manifest.write_text(yaml.safe_dump_all([gateway_class, gateway]))
        apply_manifests(find_tools().binary("kubectl"), self.kubeconfig, [manifest])

    def _wait_until_ready(self, *, timeout: float) -> None:
        from kubernetes import client

        watched = [*self.plane.processes, *self.processes]
        with self.plane.api_client() as api_client:
            core = client.CoreV1Api(api_client)
            custom = client.CustomObjectsApi(api_client)

            def node_ready() -> bool:
                return node_schedulable(core.read_node(NODE_NAME))

            def gateway_programmed() -> bool:
                gateway: dict[str, Any] = custom.get_namespaced_custom_object(  # type: ignore[assignment]
                    "gateway.networking.k8s.io", "v1", GATEWAY_NAMESPACE, "gateways", GATEWAY_NAME
                )
                conditions = gateway.get("status", {}).get("conditions", [])
                return any(c["type"] == "Programmed" and c["status"] == "True" for c in conditions)

            checks: list[tuple[Callable[[], bool], str]] = [
                (node_ready, f"node {NODE_NAME} Ready and untainted"),
                (lambda: http_ok(f"http://{LOOPBACK}:{self.ports['kube-proxy-health']}/healthz"), "kube-proxy"),
                (lambda: http_ok(f"http://{LOOPBACK}:{self.ports['coredns-ready']}/ready"), "CoreDNS ready"),
                (gateway_programmed, f"Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} Programmed"),
            ]
            for check, what in checks:
                wait_until(check, timeout=timeout, what=what, watched=watched, interval=0.3)

    # -- use ----------------------------------------------------------------------------------------------------

    def serve_files(self, directory: Path, *, detached: bool = False) -> str:
        """Serve `directory` over HTTP on the host address (where pods fetch models from, as they would from a
        bucket's HTTP endpoint); returns its URL. The server stops with the node."""
        (port,) = free_ports(1)
        server = self._launch(
            f"file-server-{port}",
            [sys.executable, "-m", "http.server", "--bind", HOST_ADDRESS, "--directory", directory, str(port)],
            detached=detached,
        )
        url = f"http://{HOST_ADDRESS}:{port}"
        wait_until(lambda: http_ok(f"{url}/"), timeout=30, what=f"file server for {directory}", watched=[server])
        return url

    def pod_monitor(self, namespace: str, name: str, selector: tuple[str, str], port: str) -> PodMonitor:
        """A PodMonitor-equivalent for Prometheus on this cluster (pods listed as the admin)."""
        return PodMonitor(
            namespace=namespace,
            name=name,
            selector_label=selector[0],
            selector_value=selector[1],
            port=port,
            kubeconfig=self.kubeconfig,
        )

    def log_tails(self, lines: int = 30) -> str:
        """The last lines of every node component's and control-plane component's log."""
        node = "\n".join(f"----- {r.name} ({r.log_path}) -----\n{tail(r.log_path, lines)}" for r in self.processes)
        return f"{self.plane.log_tails(lines)}\n{node}"

    def is_running(self) -> bool:
        return self.plane.is_running() and all(record.is_alive() for record in self.processes)

    # -- teardown -----------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Tear everything down in order: the controller manager (so nothing replaces pods), pods (so the CNI releases
        their network), Traefik, CoreDNS, kube-proxy and its rules, kubelet, leftover containers, containerd and its
        shims, the control plane, then mounts, cgroups, interfaces, iptables chains and sysctls. Each step runs even
        when an earlier one failed."""
        by_name = {record.name: record for record in self.processes}
        # Controllers would replace the pods deleted below: stop the controller manager first.
        stop_processes([record for record in self.plane.processes if record.name == "kube-controller-manager"])
        if "kubelet" in by_name and by_name["kubelet"].is_alive():
            with contextlib.suppress(Exception):
                self._delete_pods(timeout=60)
        host_processes = {"traefik", "coredns", "kube-proxy"}
        stop_processes([r for name, r in by_name.items() if name in host_processes or name.startswith("file-server")])
        with contextlib.suppress(Exception):
            _run(find_tools().binary("kube-proxy"), "--cleanup", check=False)
        stop_processes([record for name, record in by_name.items() if name == "kubelet"])
        if "containerd" in by_name and by_name["containerd"].is_alive():
            with contextlib.suppress(Exception):
                self._remove_containers()
        stop_processes(self.processes)
        _kill_shims(self.containerd_socket)
        self.plane.stop()
        _release_host(self.workdir, self.sysctls)
        STATE_FILE.unlink(missing_ok=True)

    def _delete_pods(self, *, timeout: float) -> None:
        from kubernetes import client

        with self.plane.api_client() as api_client:
            core = client.CoreV1Api(api_client)
            selector = f"spec.nodeName={NODE_NAME}"
            for pod in core.list_pod_for_all_namespaces(field_selector=selector).items:
                metadata = pod.metadata or client.V1ObjectMeta()
                core.delete_namespaced_pod(str(metadata.name), str(metadata.namespace), grace_period_seconds=1)
            wait_until(
                lambda: not core.list_pod_for_all_namespaces(field_selector=selector).items,
                timeout=timeout,
                what="pods on the real node deleted",
            )

    def _remove_containers(self) -> None:
        for task in self._ctr("tasks", "ls", "-q", check=False).split():
            self._ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            self._ctr("tasks", "delete", "-f", task, check=False)
        for container in self._ctr("containers", "ls", "-q", check=False).split():
            self._ctr("containers", "rm", container, check=False)

    # -- state for `python -m harness` ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "plane": self.plane.to_json(),
            "ports": self.ports,
            "processes": [record.to_json() for record in self.processes],
            "sysctls": self.sysctls,
            "startup_seconds": self.startup_seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RealNode:
        return cls(
            workdir=Path(data["workdir"]),
            plane=ControlPlane.from_json(data["plane"]),
            ports={str(name): int(port) for name, port in data["ports"].items()},
            processes=[ProcessRecord.from_json(record) for record in data["processes"]],
            sysctls={str(key): str(value) for key, value in data["sysctls"].items()},
            startup_seconds=float(data["startup_seconds"]),
        )


# -- host state -----------------------------------------------------------------------------------------------------


def _read_sysctl(name: str) -> str:
    return Path("/proc/sys", name).read_text().strip()


def _write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", name).write_text(value)


def _prepare_host_network() -> dict[str, str]:
    """Create the host address's interface and turn on forwarding and bridge netfilter; returns the old sysctls."""
    old = {name: _read_sysctl(name) for name in _SYSCTLS}
    _run("ip", "link", "add", HOST_INTERFACE, "type", "bridge")  # no dummy module on these VMs
    _run("ip", "addr", "add", f"{HOST_ADDRESS}/32", "dev", HOST_INTERFACE)
    _run("ip", "link", "set", HOST_INTERFACE, "up")
    for name in _SYSCTLS:
        _write_sysctl(name, "1")
    _confine_pod_traffic()
    return old


def _confine_pod_traffic() -> None:
    """Drop every packet a pod sends past the node: pods reach the pod subnet (Services, once kube-proxy has DNATed
    them to a pod) and HOST_ADDRESS (local delivery, not forwarded), nothing else. Without it the pods' default route
    and the CNI's masquerade carry a packet to a ClusterIP kube-proxy has not programmed yet out of the machine, to
    whatever answers there (this VM's egress proxy answered a test's HTTP/1.0 request with its own 426)."""
    rules = f"""table inet {EGRESS_TABLE} {{
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
        ip saddr {POD_SUBNET} ip daddr != {POD_SUBNET} drop
    }}
}}
"""
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, capture_output=True, timeout=60, check=True)


def _restore_host_network(sysctls: Mapping[str, str]) -> None:
    _run("nft", "delete", "table", "inet", EGRESS_TABLE, check=False)
    for interface in (POD_BRIDGE, HOST_INTERFACE):
        _run("ip", "link", "delete", interface, check=False)
    for name, value in sysctls.items():
        with contextlib.suppress(OSError):
            _write_sysctl(name, value)


def _clear_previous_run() -> None:
    """Refuse while another real node runs; otherwise remove what an earlier, crashed run left behind."""
    if not STATE_FILE.exists():
        _restore_host_network({})
        return
    state = json.loads(STATE_FILE.read_text())
    records = [ProcessRecord.from_json(record) for record in state.get("processes", [])]
    alive = [record for record in records if record.is_alive()]
    if alive:
        names = ", ".join(f"{record.name} ({record.pid})" for record in alive)
        raise ProcessExitedError(f"another real node is running ({STATE_FILE}: {names}); stop it first")
    workdir = Path(state["workdir"])
    _kill_shims(workdir / "containerd" / "containerd.sock")
    _release_host(workdir, state.get("sysctls", {}))
    STATE_FILE.unlink(missing_ok=True)


def _kill_shims(containerd_socket: Path) -> None:
    """Stop the containerd shims (and so their containers) that served `containerd_socket`, by PID."""
    shims = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(containerd_socket).encode() in argv:
                start_time = (proc / "stat").read_text().rsplit(")", 1)[1].split()[19]
                shims.append(ProcessRecord("containerd-shim", int(proc.name), int(start_time), Path(os.devnull)))
    stop_processes(shims, grace_seconds=5)


def _release_host(workdir: Path, sysctls: Mapping[str, str]) -> None:
    """Unmount what the node mounted under `workdir`, remove its cgroups, interfaces, iptables chains and CNI
    cache entries, and restore the sysctls it changed."""
    mount_points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount_point in reversed(mount_points):
        if mount_point == str(workdir) or mount_point.startswith(f"{workdir}/"):
            _run("umount", "--lazy", mount_point, check=False)
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for root in sorted(hierarchy.glob("kubepods*")):
            for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()
    _restore_host_network(sysctls)
    for iptables in ("iptables", "ip6tables"):
        _delete_iptables_chains(iptables, _KUBELET_CHAINS, comment=f'name: \\"{CNI_NETWORK}\\"')
    for result in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):
        result.unlink(missing_ok=True)


def _delete_iptables_chains(iptables: str, chains: Sequence[str], *, comment: str) -> None:
    """Delete the rules that jump to `chains` or carry `comment` (the CNI's masquerade rules), then those chains
    and the ones the CNI rules jump to."""
    if shutil.which(iptables) is None:
        return
    for table in ("filter", "nat", "mangle"):
        rules = _run(iptables, "-t", table, "-S", check=False).splitlines()
        targets = set(chains)
        for rule in rules:
            if not rule.startswith("-A "):
                continue
            jump = re.search(r" -j (\S+)", rule)
            if comment in rule and jump and jump.group(1).startswith("CNI-"):
                targets.add(jump.group(1))
            if (jump and jump.group(1) in targets) or comment in rule:
                _run(iptables, "-t", table, "-D", *shlex.split(rule[3:]), check=False)
        for chain in targets:
            _run(iptables, "-t", table, "-F", chain, check=False)
            _run(iptables, "-t", table, "-X", chain, check=False)
