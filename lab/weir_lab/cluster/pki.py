"""Certificates for the local control plane, made fresh at every `up`.

The API server serves TLS and authenticates clients by certificate, as a real
cluster does; making the CA and the certificates in-process (cryptography)
avoids depending on an openssl binary and its config quirks. Keys are written
with mode 0600 and never logged.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=30)
_FILES = (
    "ca.crt",
    "ca.key",
    "apiserver.crt",
    "apiserver.key",
    "admin.crt",
    "admin.key",
    "sa.key",
    "sa.pub",
    "prometheus.crt",
    "prometheus.key",
)
# The user the cluster's Prometheus authenticates as: no group, so it may do only
# what RBAC grants it (kube.grant_prometheus: read pods), like a real Prometheus.
PROMETHEUS_USER = "weir-lab:prometheus"


@dataclass(frozen=True)
class Pki:
    """Paths of the files `write_pki` made."""

    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    prometheus_cert: Path
    prometheus_key: Path

    @classmethod
    def at(cls, directory: Path) -> Pki:
        """Where `write_pki` puts (or put) each file in `directory`."""
        return cls(*(directory / name for name in _FILES))


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attributes)


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_pki(directory: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """Make a CA, the API server's serving cert, client certs (admin, Prometheus) and the
    SA keys."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki.at(directory)
    ca_key = _key()
    ca_name = _name("weir-local-ca")
    ca = _issue(
        ca_name,
        ca_key,
        None,
        [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        ],
    )
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca)

    ips = ["127.0.0.1", *extra_ips]
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    sans += [
        x509.DNSName(d)
        for d in (
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        )
    ]
    server_key = _key()
    _write_key(pki.apiserver_key, server_key)
    _write_cert(
        pki.apiserver_cert,
        _issue(
            _name("kube-apiserver"),
            server_key,
            (ca_name, ca_key),
            [
                (x509.SubjectAlternativeName(sans), False),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            ],
        ),
    )

    for cert_path, key_path, subject in (
        (pki.admin_cert, pki.admin_key, _name("admin", "system:masters")),
        (pki.prometheus_cert, pki.prometheus_key, _name(PROMETHEUS_USER)),
    ):
        client_key = _key()
        _write_key(key_path, client_key)
        _write_cert(
            cert_path,
            _issue(
                subject,
                client_key,
                (ca_name, ca_key),
                [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)],
            ),
        )

    sa_key = _key()
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    return pki


def write_client_cert(
    pki: Pki, cert_path: Path, key_path: Path, common_name: str, organisation: str
) -> None:
    """A client certificate from the CA `write_pki` made, for a user added later (the
    real node's kubelet: `system:node:<name>` in `system:nodes`)."""
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, rsa.RSAPrivateKey):
        raise TypeError(f"{pki.ca_key} is not the RSA key write_pki makes")
    key = _key()
    _write_key(key_path, key)
    _write_cert(
        cert_path,
        _issue(
            _name(common_name, organisation),
            key,
            (ca.subject, ca_key),
            [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)],
        ),
    )


def kubeconfig_text(
    server: str, pki: Pki, client_cert: Path | None = None, client_key: Path | None = None
) -> str:
    """A kubeconfig for the admin user (or the client certificate given), with absolute
    paths (kopf and kubectl read it)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "weir-local",
                "cluster": {
                    "server": server,
                    "certificate-authority": str(pki.ca_cert),
                },
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(client_cert or pki.admin_cert),
                    "client-key": str(client_key or pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": "weir-local", "context": {"cluster": "weir-local", "user": "admin"}}],
        "current-context": "weir-local",
    }
    return yaml.safe_dump(config, sort_keys=False)
