"""Bounded waits, certificates and the toolchain's error for a missing Go."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509

from weir_lab.cluster.errors import ToolchainError
from weir_lab.cluster.pki import kubeconfig_text, write_pki
from weir_lab.cluster.toolchain import ensure
from weir_lab.cluster.wait import WaitTimeoutError, wait_for

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_returns_the_first_truthy_probe():
    clock = FakeClock()
    answers = iter([None, [], "ready"])
    assert wait_for(lambda: next(answers), "x", 10, 1.0, clock, clock.pause) == "ready"
    assert clock.now == 2.0


def test_wait_for_gives_up_at_the_deadline_naming_what_it_waited_for():
    clock = FakeClock()
    with pytest.raises(WaitTimeoutError, match="waiting for the moon"):
        wait_for(lambda: None, "the moon", 5, 1.0, clock, clock.pause)
    assert clock.now == 5.0


def test_pki_issues_certificates_signed_by_its_ca(tmp_path):
    pki = write_pki(tmp_path)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.apiserver_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert "system:masters" in admin.subject.rfc4514_string()
    assert oct(pki.admin_key.stat().st_mode & 0o777) == "0o600"
    text = kubeconfig_text("https://127.0.0.1:1", pki)
    assert str(pki.admin_cert) in text and "BEGIN" not in text
    # Prometheus' identity is a plain user: it may do what RBAC grants it, no more
    prometheus = x509.load_pem_x509_certificate(pki.prometheus_cert.read_bytes())
    prometheus.verify_directly_issued_by(ca)
    assert prometheus.subject.rfc4514_string() == "CN=weir-lab:prometheus"
    assert oct(pki.prometheus_key.stat().st_mode & 0o777) == "0o600"


def test_missing_go_is_reported_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("WEIR_TOOLCHAIN_CACHE", str(tmp_path / "empty-cache"))
    tools = tmp_path / "bin"  # every tool the script uses, except go
    tools.mkdir()
    for name in ("bash", "awk", "head", "cut", "dirname", "mktemp", "cat"):
        found = shutil.which(name)
        assert found, f"{name} is needed by build.sh"
        (tools / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(ToolchainError, match="Go is not installed"):
        ensure(REPO / "e2e")
