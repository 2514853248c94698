"""`python -m harness up|down|status`: a local control plane and Prometheus that outlive the command.

`up` starts both in the background under `.local/cluster/`, applies `crds/*.yaml`, and writes
`.local/kubeconfig` (admin), `.local/prometheus-url`, `.local/pids` and `.local/state.json`. `up --real` starts a
real node instead of kwok's (`harness.realnode`: containerd, kubelet, kube-proxy, CoreDNS, Traefik with Gateway
`public` in `default`), a file server for `.local/models/` on the node's host address and a Prometheus that
discovers serving pods as a PodMonitor would, and also writes `.local/gateway-url` and `.local/models-url`.
`down` stops exactly the processes recorded there, by PID (checking each one's start time, so a recycled PID is
never signalled); a real node is torn down in order (`RealNode.stop`).
Run from the repository root with `PYTHONPATH=tests` (`make cluster-up`, `make cluster-down`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from harness.control_plane import ControlPlane
from harness.processes import ProcessRecord, stop_processes
from harness.prometheus import Prometheus
from harness.realnode import HOST_ADDRESS, RealNode
from harness.tools import REPO_ROOT


class LocalCluster:
    """The files under the local directory that describe a running `up`."""

    def __init__(self, local_dir: Path) -> None:
        self.local_dir = local_dir
        self.workdir = local_dir / "cluster"
        self.state_file = local_dir / "state.json"
        self.kubeconfig = local_dir / "kubeconfig"
        self.prometheus_url = local_dir / "prometheus-url"
        self.pids = local_dir / "pids"
        self.gateway_url = local_dir / "gateway-url"
        self.models_url = local_dir / "models-url"
        self.models = local_dir / "models"

    def load_real(self) -> tuple[RealNode, Prometheus] | None:
        if not self.state_file.exists():
            return None
        state = json.loads(self.state_file.read_text())
        if "real_node" not in state:
            return None
        return RealNode.from_json(state["real_node"]), Prometheus.from_json(state["prometheus"])

    def load(self) -> tuple[ControlPlane, Prometheus] | None:
        if not self.state_file.exists():
            return None
        state = json.loads(self.state_file.read_text())
        if "real_node" in state:
            return RealNode.from_json(state["real_node"]).plane, Prometheus.from_json(state["prometheus"])
        return ControlPlane.from_json(state["control_plane"]), Prometheus.from_json(state["prometheus"])

    def save(self, plane: ControlPlane, prometheus: Prometheus) -> None:
        shutil.copyfile(plane.kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        self.prometheus_url.write_text(prometheus.url + "\n")
        records = [*plane.processes, prometheus.process]
        self.pids.write_text("".join(f"{record.pid} {record.name}\n" for record in records))
        state = {"control_plane": plane.to_json(), "prometheus": prometheus.to_json()}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def save_real(self, node: RealNode, prometheus: Prometheus, models_url: str) -> None:
        self.save(node.plane, prometheus)
        self.gateway_url.write_text(node.gateway_url + "\n")
        self.models_url.write_text(models_url + "\n")
        records = [*node.plane.processes, *node.processes, prometheus.process]
        self.pids.write_text("".join(f"{record.pid} {record.name}\n" for record in records))
        state = {"real_node": node.to_json(), "prometheus": prometheus.to_json()}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def forget(self) -> None:
        for path in (
            self.state_file,
            self.kubeconfig,
            self.prometheus_url,
            self.pids,
            self.gateway_url,
            self.models_url,
        ):
            path.unlink(missing_ok=True)


def _records(plane: ControlPlane, prometheus: Prometheus) -> list[ProcessRecord]:
    return [*plane.processes, prometheus.process]


def up_real(cluster: LocalCluster) -> int:
    """The real-node cluster (one node: only one can run on a machine)."""
    if cluster.state_file.exists():
        print(f"a cluster is already recorded in {cluster.state_file}; `make cluster-down` first")
        return 1
    shutil.rmtree(cluster.workdir, ignore_errors=True)
    cluster.models.mkdir(parents=True, exist_ok=True)
    crds = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    node = RealNode.start(cluster.workdir / "real-node", detached=True, extra_manifests=crds)
    try:
        models_url = node.serve_files(cluster.models, detached=True)
        monitor = node.pod_monitor("default", "sluice-serving", ("app.kubernetes.io/name", "sluice-serving"), "http")
        prometheus = Prometheus.start(
            cluster.workdir / "prometheus", detached=True, pod_monitor=monitor, address=HOST_ADDRESS
        )
    except BaseException:
        node.stop()
        raise
    cluster.save_real(node, prometheus, models_url)
    print(f"real node ready in {node.startup_seconds:.1f} s; API server {node.plane.server_url}")
    print(f"gateway {node.gateway_url}, models {models_url} (serving {cluster.models}), prometheus {prometheus.url}")
    print(f"logs: {cluster.workdir}/*/logs/ and {cluster.workdir}/real-node/control-plane/logs/")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def up(cluster: LocalCluster, fake_node_count: int) -> int:
    loaded = cluster.load()
    if loaded and all(record.is_alive() for record in _records(*loaded)):
        print(f"already running (state in {cluster.state_file}); `make cluster-down` stops it")
        return 0
    if loaded:
        print("stopping the remains of an earlier cluster")
        stop_processes(reversed(_records(*loaded)))
        cluster.forget()
    shutil.rmtree(cluster.workdir, ignore_errors=True)
    cluster.local_dir.mkdir(parents=True, exist_ok=True)

    crds = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    plane = ControlPlane.start(
        cluster.workdir / "control-plane", fake_node_count=fake_node_count, detached=True, extra_manifests=crds
    )
    try:
        prometheus = Prometheus.start(cluster.workdir / "prometheus", detached=True)
    except BaseException:
        plane.stop()
        raise
    cluster.save(plane, prometheus)
    nodes = len(plane.fake_nodes)
    print(f"control plane ready in {plane.startup_seconds:.1f} s at {plane.server_url} ({nodes} kwok nodes)")
    for milestone, seconds in plane.startup_milestones.items():
        print(f"  {seconds:5.1f} s  {milestone}")
    print(f"prometheus ready in {prometheus.startup_seconds:.1f} s at {prometheus.url}")
    if crds:
        print(f"applied {', '.join(path.name for path in crds)}")
    print(f"logs: {cluster.workdir}/*/logs/")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def down(cluster: LocalCluster) -> int:
    real = cluster.load_real()
    if real is not None:
        node, prometheus = real
        prometheus.stop()
        node.stop()
        cluster.forget()
        print("stopped the real node, its control plane and Prometheus")
        return 0
    loaded = cluster.load()
    if loaded is None:
        print("nothing to stop (no state file)")
        return 0
    records = _records(*loaded)
    alive = [record for record in records if record.is_alive()]
    stop_processes(reversed(records))
    cluster.forget()
    print(f"stopped {len(alive)} processes: {', '.join(f'{r.name} ({r.pid})' for r in alive) or 'none were running'}")
    return 0


def status(cluster: LocalCluster) -> int:
    loaded = cluster.load()
    if loaded is None:
        print("not running")
        return 1
    plane, prometheus = loaded
    for record in _records(plane, prometheus):
        print(
            f"{record.name:<24} pid {record.pid:<8} {'running' if record.is_alive() else 'STOPPED'}  {record.log_path}"
        )
    print(f"kube-apiserver {plane.server_url}, prometheus {prometheus.url}, KUBECONFIG={cluster.kubeconfig}")
    return 0 if all(record.is_alive() for record in _records(plane, prometheus)) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--local-dir", type=Path, default=REPO_ROOT / ".local", help="where state and kubeconfig go")
    parser.add_argument("--nodes", type=int, default=2, help="number of kwok fake nodes (up)")
    parser.add_argument("--real", action="store_true", help="one real node instead of kwok's (up)")
    arguments = parser.parse_args(argv)
    cluster = LocalCluster(arguments.local_dir.resolve())
    if arguments.command == "up":
        return up_real(cluster) if arguments.real else up(cluster, arguments.nodes)
    if arguments.command == "down":
        return down(cluster)
    return status(cluster)


if __name__ == "__main__":
    sys.exit(main())
