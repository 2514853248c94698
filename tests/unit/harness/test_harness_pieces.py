"""The harness's pure pieces: certificates, Prometheus config, state records (no process is started)."""

from __future__ import annotations

import gzip
import hashlib
import io
import ipaddress
import json
import os
import tarfile
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from harness.certs import generate_certificates, issue_client_certificate
from harness.oci import ImageFile, write_image_archive
from harness.pod_discovery import pod_targets
from harness.processes import ProcessRecord, free_ports
from harness.prometheus import PodMonitor, render_config


def test_the_admin_certificate_is_in_system_masters_and_signed_by_the_ca(tmp_path: Path) -> None:
    certificates = generate_certificates(tmp_path, service_ip="10.96.0.1")
    ca = x509.load_pem_x509_certificate(certificates.ca_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(certificates.admin_cert.read_bytes())

    organisations = [attribute.value for attribute in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert organisations == ["system:masters"]
    admin.verify_directly_issued_by(ca)


def test_the_serving_certificate_names_loopback_and_the_in_cluster_service(tmp_path: Path) -> None:
    certificates = generate_certificates(tmp_path, service_ip="10.96.0.1")
    serving = x509.load_pem_x509_certificate(certificates.serving_cert.read_bytes())
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value

    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.96.0.1"),
    }
    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    assert certificates.serving_key.stat().st_mode & 0o077 == 0


def test_prometheus_reads_its_targets_from_files_and_scrapes_every_second(tmp_path: Path) -> None:
    config = json.loads(render_config(tmp_path / "targets"))

    assert config["global"]["scrape_interval"] == "1s"
    assert config["global"]["evaluation_interval"] == "1s"
    assert config["scrape_configs"][0]["file_sd_configs"] == [
        {"files": [str(tmp_path / "targets" / "*.json")], "refresh_interval": "1s"}
    ]


def test_a_process_record_survives_a_round_trip_through_json(tmp_path: Path) -> None:
    record = ProcessRecord(name="etcd", pid=1234, start_time=98765, log_path=tmp_path / "etcd.log")

    assert ProcessRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_a_record_whose_pid_was_recycled_counts_as_not_alive(tmp_path: Path) -> None:
    """`down` must never signal a process that merely inherited a recorded PID."""
    this_process = os.getpid()
    start_time = int(Path(f"/proc/{this_process}/stat").read_text().rsplit(")", 1)[1].split()[19])

    same = ProcessRecord(name="me", pid=this_process, start_time=start_time, log_path=tmp_path / "log")
    recycled = ProcessRecord(name="me", pid=this_process, start_time=start_time - 1, log_path=tmp_path / "log")

    assert same.is_alive()
    assert not recycled.is_alive()


def test_free_ports_are_distinct() -> None:
    ports = free_ports(8)

    assert len(set(ports)) == 8


def test_a_node_credential_names_the_node_user_in_group_system_nodes(tmp_path: Path) -> None:
    certificates = generate_certificates(tmp_path, service_ip="10.96.0.1", extra_addresses=("10.246.0.1",))
    cert_path, key_path = issue_client_certificate(certificates, "kubelet", "system:node:n1", "system:nodes")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    serving = x509.load_pem_x509_certificate(certificates.serving_cert.read_bytes())

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(certificates.ca_cert.read_bytes()))
    assert key_path.stat().st_mode & 0o077 == 0
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.246.0.1") in san.get_values_for_type(x509.IPAddress)


def test_an_image_archive_is_an_oci_layout_whose_digests_match_its_blobs(tmp_path: Path) -> None:
    program = tmp_path / "program"
    program.write_bytes(b"\x7fELF not really")
    archive = write_image_archive(
        tmp_path / "image.tar", "sluice.local/test:1", files={"/bin/program": ImageFile(program)}, entrypoint=["/x"]
    )
    with tarfile.open(archive) as tar:
        members = {member.name: tar.extractfile(member) for member in tar.getmembers() if member.isfile()}
        contents = {name: file.read() for name, file in members.items() if file}
    index = json.loads(contents["index.json"])
    entry = index["manifests"][0]
    assert entry["annotations"]["io.containerd.image.name"] == "sluice.local/test:1"

    def blob(digest: str) -> bytes:
        return contents[f"blobs/sha256/{digest.removeprefix('sha256:')}"]

    manifest = json.loads(blob(entry["digest"]))
    for descriptor in [manifest["config"], *manifest["layers"]]:
        assert hashlib.sha256(blob(descriptor["digest"])).hexdigest() == descriptor["digest"].removeprefix("sha256:")
        assert len(blob(descriptor["digest"])) == descriptor["size"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(manifest["layers"][0]["digest"])))) as layer:
        assert layer.extractfile("bin/program").read() == program.read_bytes()  # type: ignore[union-attr]
    config = json.loads(blob(manifest["config"]["digest"]))
    layer_tar = gzip.decompress(blob(manifest["layers"][0]["digest"]))
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]


def test_pod_discovery_attaches_the_labels_a_prometheus_operator_pod_monitor_attaches(tmp_path: Path) -> None:
    monitor = PodMonitor(
        namespace="monitoring",
        name="sluice-serving",
        selector_label="app.kubernetes.io/name",
        selector_value="sluice-serving",
        port="http",
        kubeconfig=tmp_path / "kubeconfig",
    )
    config = render_config(tmp_path / "targets", pod_monitor=monitor, pods_file=tmp_path / "pods.json")
    (job,) = json.loads(config)["scrape_configs"][1:]
    relabel = job["relabel_configs"]
    targets = {rule["target_label"]: rule for rule in relabel if "target_label" in rule}

    assert job["job_name"] == "podMonitor/monitoring/sluice-serving/0"
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "pods.json")]
    assert targets["namespace"]["source_labels"] == ["__meta_kubernetes_namespace"]
    assert targets["pod"]["source_labels"] == ["__meta_kubernetes_pod_name"]
    assert targets["container"]["source_labels"] == ["__meta_kubernetes_pod_container_name"]
    assert targets["job"]["replacement"] == "monitoring/sluice-serving"
    assert targets["endpoint"]["replacement"] == "http"
    keeps = [rule for rule in relabel if rule.get("action") == "keep"]
    assert keeps[0]["source_labels"][0] == "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    assert keeps[1] == {
        "action": "keep",
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": "http",
    }


def test_pod_discovery_gives_each_container_port_the_meta_labels_of_kubernetes_role_pod() -> None:
    pod = {
        "metadata": {"namespace": "ns", "name": "m-stable-1", "labels": {"app.kubernetes.io/name": "sluice-serving"}},
        "spec": {
            "nodeName": "n",
            "containers": [{"name": "server", "ports": [{"name": "http", "containerPort": 8080}]}],
        },
        "status": {"podIP": "10.245.0.7", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    unscheduled = {"metadata": {"namespace": "ns", "name": "pending"}, "spec": {"containers": []}, "status": {}}

    (group,) = pod_targets([pod, unscheduled])
    assert group["targets"] == ["10.245.0.7:8080"]
    assert group["labels"]["__meta_kubernetes_namespace"] == "ns"
    assert group["labels"]["__meta_kubernetes_pod_name"] == "m-stable-1"
    assert group["labels"]["__meta_kubernetes_pod_container_name"] == "server"
    assert group["labels"]["__meta_kubernetes_pod_container_port_name"] == "http"
    assert group["labels"]["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == "sluice-serving"
    assert group["labels"]["__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name"] == "true"
    assert group["labels"]["__meta_kubernetes_pod_phase"] == "Running"
