"""Certificates for a throwaway control plane: one CA, a loopback serving cert, an admin client cert, an SA key.

All keys are ECDSA P-256 (fast to generate; kube-apiserver accepts ES256 for service-account tokens). The admin
client certificate carries organisation `system:masters`, which bypasses RBAC.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=30)

# Names a client may use for the API server: loopback, and the in-cluster service (first IP of the service range).
SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class ControlPlaneCertificates:
    """Paths of the PEM files, all in one directory."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> ControlPlaneCertificates:
        """The file layout `generate_certificates` writes into `directory`."""
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            serving_cert=directory / "serving.crt",
            serving_key=directory / "serving.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            service_account_key=directory / "service-account.key",
            service_account_public_key=directory / "service-account.pub",
        )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _leaf(
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName],
) -> tuple[bytes, bytes]:
    """A certificate for `subject` signed by the CA, and its key, both PEM."""
    key = _new_key()
    builder = _builder(subject, ca_name, key).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_client_certificate(
    certificates: ControlPlaneCertificates, stem: str, common_name: str, organisation: str | None = None
) -> tuple[Path, Path]:
    """A client certificate (user `common_name`, group `organisation`) signed by the control plane's CA, written next
    to the CA as `<stem>.crt` and `<stem>.key`; returns both paths."""
    ca_key = serialization.load_pem_private_key(certificates.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{certificates.ca_key} is not an ECDSA key")
    ca_name = x509.load_pem_x509_certificate(certificates.ca_cert.read_bytes()).subject
    cert, key = _leaf(ca_name, ca_key, _name(common_name, organisation), ExtendedKeyUsageOID.CLIENT_AUTH, [])
    cert_path, key_path = certificates.ca_cert.with_name(f"{stem}.crt"), certificates.ca_cert.with_name(f"{stem}.key")
    _write(cert_path, cert)
    _write(key_path, key, private=True)
    return cert_path, key_path


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def generate_certificates(
    directory: Path, service_ip: str, extra_addresses: tuple[str, ...] = ()
) -> ControlPlaneCertificates:
    """Write a CA, a serving cert for 127.0.0.1, `service_ip` and `extra_addresses`, an admin client cert and an SA
    signing key."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_name = _name("sluice-harness-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(subject: x509.Name, usage: x509.ObjectIdentifier, names: list[x509.GeneralName]) -> tuple[bytes, bytes]:
        return _leaf(ca_name, ca_key, subject, usage, names)

    serving_names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVING_DNS_NAMES]
    serving_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip, *extra_addresses)]
    serving_cert, serving_key = leaf(_name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, serving_names)
    admin_cert, admin_key = leaf(_name("sluice-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH, [])
    service_account_key = _new_key()
    service_account_public_key = service_account_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    files = ControlPlaneCertificates.in_directory(directory)
    _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(files.ca_key, _key_pem(ca_key), private=True)
    _write(files.serving_cert, serving_cert)
    _write(files.serving_key, serving_key, private=True)
    _write(files.admin_cert, admin_cert)
    _write(files.admin_key, admin_key, private=True)
    _write(files.service_account_key, _key_pem(service_account_key), private=True)
    _write(files.service_account_public_key, service_account_public_key)
    return files
