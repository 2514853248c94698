"""`python -m harness up|down|status`: a local control plane and Prometheus that outlive the command.

`up` starts both in the background under `.local/cluster/`, applies `crds/*.yaml`, and writes
`.local/kubeconfig` (admin), `.local/prometheus-url`, `.local/pids` and `.local/state.json`. `down` stops exactly the
processes recorded there, by PID (checking each one's start time, so a recycled PID is never signalled).
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

    def load(self) -> tuple[ControlPlane, Prometheus] | None:
        if not self.state_file.exists():
            return None
        state = json.loads(self.state_file.read_text())
        return ControlPlane.from_json(state["control_plane"]), Prometheus.from_json(state["prometheus"])

    def save(self, plane: ControlPlane, prometheus: Prometheus) -> None:
        shutil.copyfile(plane.kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        self.prometheus_url.write_text(prometheus.url + "\n")
        records = [*plane.processes, prometheus.process]
        self.pids.write_text("".join(f"{record.pid} {record.name}\n" for record in records))
        state = {"control_plane": plane.to_json(), "prometheus": prometheus.to_json()}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def forget(self) -> None:
        for path in (self.state_file, self.kubeconfig, self.prometheus_url, self.pids):
            path.unlink(missing_ok=True)


def _records(plane: ControlPlane, prometheus: Prometheus) -> list[ProcessRecord]:
    return [*plane.processes, prometheus.process]


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
    arguments = parser.parse_args(argv)
    cluster = LocalCluster(arguments.local_dir.resolve())
    if arguments.command == "up":
        return up(cluster, arguments.nodes)
    if arguments.command == "down":
        return down(cluster)
    return status(cluster)


if __name__ == "__main__":
    sys.exit(main())
