"""Certificates for the web-config tests: a CA, a server certificate, client certificates (trusted with
chosen SANs, and one self-signed nobody trusts), written as PEM files next to the fixture YAML."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FIXTURES = Path(__file__).parent / "fixtures" / "webconfig"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(dirpath: Path, stem: str, cert: x509.Certificate, key) -> None:
    (dirpath / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (dirpath / f"{stem}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _cert(subject: str, key, issuer_name: x509.Name, issuer_key, sans: list[x509.GeneralName], ca: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_pki(dirpath: Path, server_cn: str = "localhost") -> None:
    """ca.crt, server.{crt,key} (SAN localhost, 127.0.0.1), client-ok (SAN prometheus.monitoring.svc),
    client-other (SAN grafana.example, same CA), client-rogue (self-signed)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _cert("aiinfra test CA", ca_key, _name("aiinfra test CA"), ca_key, [], ca=True)
    (dirpath / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(server_cn, server_key, ca_cert.subject, ca_key, [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    _write(dirpath, "server", server, server_key)
    for stem, san in (("client-ok", "prometheus.monitoring.svc"), ("client-other", "grafana.example")):
        k = ec.generate_private_key(ec.SECP256R1())
        _write(dirpath, stem, _cert(stem, k, ca_cert.subject, ca_key, [x509.DNSName(san)]), k)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    _write(dirpath, "client-rogue", _cert("rogue", rogue_key, _name("rogue"), rogue_key, [x509.DNSName("prometheus.monitoring.svc")], ca=True), rogue_key)


def stage(tmp_path: Path, fixture: str) -> Path:
    """Copy a fixture YAML into a fresh directory with its certificates; returns the YAML path."""
    if not (tmp_path / "ca.crt").exists():
        make_pki(tmp_path)
    target = tmp_path / Path(fixture).name
    shutil.copy(FIXTURES / fixture, target)
    return target
