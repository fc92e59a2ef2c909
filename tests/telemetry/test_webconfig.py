"""exporter-toolkit web-config semantics over real TLS connections (Python ssl and curl), one fixture
file per directive (tests/telemetry/fixtures/webconfig), including the files that must be refused.
Semantics: prometheus/exporter-toolkit docs/web-configuration.md and web/tls_config.go @ 19a7c2d."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import bcrypt
import pytest

from aiinfra.errors import AiinfraError
from aiinfra.telemetry.exporter import Exporter, ExporterConfig, Source, serve
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec
from aiinfra.telemetry.webconfig import BasicAuth, load_web_config

from .tlsutil import FIXTURES, make_pki, stage

CURL = shutil.which("curl")


@pytest.fixture
def exporter_on():
    started = []

    def make(web_path: Path | None):
        web = load_web_config(web_path) if web_path is not None else None
        clock = ManualClock(5.0)
        host = Fleet(parse_spec("gpus=1,seed=1"), clock=clock).hosts[0]
        exp = Exporter([Source(host.name, Collector(lib=host, host=host.name, clock=clock))], ExporterConfig(), 30.0)
        exp.collect_once()
        server = serve(exp, "127.0.0.1", 0, web)
        started.append(server)
        return server.server_address[1]

    yield make
    for s in started:
        s.shutdown()
        s.server_close()


def _client(d: Path, cert: str | None = None, min_v=None, max_v=None, curve: str | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
    if cert:
        ctx.load_cert_chain(str(d / f"{cert}.crt"), str(d / f"{cert}.key"))
    if min_v:
        ctx.minimum_version = min_v
    if max_v:
        ctx.maximum_version = max_v
    if curve:
        ctx.set_ecdh_curve(curve)
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def _get(port: int, ctx: ssl.SSLContext, path: str = "/metrics", headers: str = "") -> tuple[int | None, str, ssl.SSLSocket | None]:
    """(status, raw response head, socket info) — status None when the TLS connection is refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as s:
            info = (s.version(), s.cipher()[0])
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except (ssl.SSLError, OSError):
        return None, "", None
    if not data:
        return None, "", None
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    return int(head.split()[1]), head, info


def test_toolkit_documented_example_is_accepted(tmp_path, exporter_on):
    """The shape of toolkit's docs/web-config.yml (TLS files, basic_auth_users, rate_limit interval/burst)."""
    path = stage(tmp_path, "toolkit-example.yml")
    alice = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$")
    bob = bcrypt.hashpw(b"builder", bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$")
    path.write_text(path.read_text().replace("ALICE_HASH", alice).replace("BOB_HASH", bob))
    port = exporter_on(path)
    ctx = _client(tmp_path)
    import base64

    def auth(u: str, p: str) -> str:
        return f"Authorization: Basic {base64.b64encode(f'{u}:{p}'.encode()).decode()}\r\n"

    assert _get(port, ctx)[0] == 401
    assert _get(port, ctx, headers=auth("alice", "wonderland"))[0] == 200
    assert _get(port, ctx, headers=auth("bob", "builder"))[0] == 200
    assert _get(port, ctx, headers=auth("bob", "wonderland"))[0] == 401
    assert _get(port, ctx, headers=auth("mallory", "wonderland"))[0] == 401


@pytest.mark.parametrize(
    "fixture,cases",
    [
        ("require-and-verify.yml", {None: False, "client-ok": True, "client-rogue": False}),
        ("verify-if-given.yml", {None: True, "client-ok": True, "client-rogue": False}),
        ("require-any.yml", {None: False, "client-ok": True, "client-rogue": True}),
        ("require-client-cert-alias.yml", {None: False, "client-rogue": True}),
        ("request-cert.yml", {None: True, "client-rogue": True}),
        ("no-client-cert.yml", {None: True, "client-ok": True}),
        ("allowed-sans.yml", {None: False, "client-ok": True, "client-other": False, "client-rogue": False}),
    ],
)
def test_client_auth_types(tmp_path, exporter_on, fixture, cases):
    """Each client_auth_type with no certificate, a CA-signed one, and a self-signed one nobody trusts;
    client_allowed_sans refuses a CA-signed certificate whose SANs are not listed."""
    port = exporter_on(stage(tmp_path, fixture))
    for cert, allowed in cases.items():
        status = _get(port, _client(tmp_path, cert))[0]
        assert (status == 200) is allowed, (fixture, cert, status)


def test_tls_versions(tmp_path, exporter_on):
    port = exporter_on(stage(tmp_path, "min-tls13.yml"))
    assert _get(port, _client(tmp_path, max_v=ssl.TLSVersion.TLSv1_2))[0] is None
    status, _, info = _get(port, _client(tmp_path))
    assert status == 200 and info[0] == "TLSv1.3"
    port = exporter_on(stage(tmp_path, "max-tls12.yml"))
    assert _get(port, _client(tmp_path, min_v=ssl.TLSVersion.TLSv1_3))[0] is None
    status, _, info = _get(port, _client(tmp_path))
    assert status == 200 and info[0] == "TLSv1.2"


def test_cipher_suites(tmp_path, exporter_on):
    port = exporter_on(stage(tmp_path, "cipher-suites.yml"))
    status, _, info = _get(port, _client(tmp_path, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"))
    assert status == 200 and info[1] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    assert _get(port, _client(tmp_path, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))[0] is None  # not in the list


@pytest.mark.parametrize("fixture,ok,refused", [("curve-p384.yml", "secp384r1", "prime256v1"), ("curves-two.yml", "X25519", "prime256v1")])
def test_curve_preferences(tmp_path, exporter_on, fixture, ok, refused):
    port = exporter_on(stage(tmp_path, fixture))
    assert _get(port, _client(tmp_path, curve=ok))[0] == 200
    assert _get(port, _client(tmp_path, curve=refused))[0] is None
    if fixture == "curves-two.yml":
        assert _get(port, _client(tmp_path, curve="secp384r1"))[0] == 200


def test_headers_on_every_response(tmp_path, exporter_on):
    port = exporter_on(stage(tmp_path, "headers.yml"))
    for path, code in (("/metrics", 200), ("/nope", 404)):
        status, head, _ = _get(port, _client(tmp_path), path)
        assert status == code
        for line in ("X-Frame-Options: deny", "X-Content-Type-Options: nosniff", "Strict-Transport-Security: max-age=31536000", "Content-Security-Policy: default-src 'none'", "X-XSS-Protection: 0"):
            assert line in head


def test_rate_limit(tmp_path, exporter_on):
    shutil.copy(FIXTURES / "rate-limit.yml", tmp_path / "rate-limit.yml")
    port = exporter_on(tmp_path / "rate-limit.yml")
    import http.client

    codes = []
    for _ in range(4):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        codes.append(c.getresponse().status)
        c.close()
    assert codes == [200, 200, 429, 429]


def test_inline_certificate_key_and_client_ca(tmp_path, exporter_on):
    make_pki(tmp_path)

    def block(text: str) -> str:
        return "|\n" + "".join(f"    {line}\n" for line in text.splitlines())

    cfg = tmp_path / "inline.yml"
    cfg.write_text(
        "tls_server_config:\n"
        f"  cert: {block((tmp_path / 'server.crt').read_text())}"
        f"  key: {block((tmp_path / 'server.key').read_text())}"
        f"  client_ca: {block((tmp_path / 'ca.crt').read_text())}"
        "  client_auth_type: RequireAndVerifyClientCert\n"
    )
    port = exporter_on(cfg)
    assert _get(port, _client(tmp_path, "client-ok"))[0] == 200
    assert _get(port, _client(tmp_path))[0] is None


def test_certificate_reloaded_when_files_change(tmp_path, exporter_on):
    """Rotate server.crt/key on disk: the next connection is served with the new certificate."""
    path = stage(tmp_path, "no-client-cert.yml")
    port = exporter_on(path)
    first = ssl.get_server_certificate(("127.0.0.1", port))
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    make_pki(rotated, server_cn="rotated.example")
    time.sleep(0.01)
    for name in ("server.key", "server.crt"):  # write both, then swap in atomically
        os.replace(rotated / name, tmp_path / name)
    second = ssl.get_server_certificate(("127.0.0.1", port))
    assert first != second and second == (tmp_path / "server.crt").read_text()


@pytest.mark.skipif(CURL is None, reason="curl not installed")
def test_curl_client_certificates(tmp_path, exporter_on):
    port = exporter_on(stage(tmp_path, "require-and-verify.yml"))
    url = f"https://localhost:{port}/metrics"
    base = [CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(tmp_path / "ca.crt"), "--resolve", f"localhost:{port}:127.0.0.1"]
    ok = subprocess.run([*base, "--cert", str(tmp_path / "client-ok.crt"), "--key", str(tmp_path / "client-ok.key"), url], capture_output=True, text=True, timeout=30)
    assert ok.stdout == "200"
    none = subprocess.run([*base, url], capture_output=True, text=True, timeout=30)
    assert none.stdout != "200" and none.returncode != 0
    port = exporter_on(stage(tmp_path, "max-tls12.yml"))
    base = [CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(tmp_path / "ca.crt"), "--resolve", f"localhost:{port}:127.0.0.1"]
    assert subprocess.run([*base, "--tlsv1.3", f"https://localhost:{port}/metrics"], capture_output=True, text=True, timeout=30).returncode != 0
    assert subprocess.run([*base, "--tls-max", "1.2", f"https://localhost:{port}/metrics"], capture_output=True, text=True, timeout=30).stdout == "200"


REFUSED = {
    "unknown-top-key.yml": "unknown key 'web_listen'",
    "unknown-tls-key.yml": "unknown key 'client_auth'",
    "bad-client-auth.yml": "invalid client_auth_type",
    "ca-without-policy.yml": "without a client_auth_type",
    "sans-without-cert.yml": "client_allowed_sans needs",
    "tls10.yml": "cannot be honoured",
    "min-above-max.yml": "above max_version",
    "unknown-version.yml": "unknown TLS version",
    "unknown-cipher.yml": "unknown cipher",
    "tls13-cipher.yml": "TLS 1.3 suite",
    "unknown-curve.yml": "unknown curve",
    "http2-true.yml": "http2: true cannot be honoured",
    "header-not-allowed.yml": "can not be configured",
    "header-bad-value.yml": "invalid value for X-Frame-Options",
    "plain-password.yml": "not a bcrypt hash",
    "bad-duration.yml": "must be a duration",
    "zero-burst.yml": "at least 1",
    "cert-twice.yml": "not both",
    "missing-key.yml": "missing one of key or key_file",
    "missing-cert-file.yml": "cannot load TLS certificate",
    "tls-without-cert.yml": "missing one of cert or cert_file",
}


@pytest.mark.parametrize("fixture", sorted(REFUSED))
def test_refused_at_start_up(tmp_path, fixture, cli):
    """A directive we cannot honour, or a file toolkit would reject, stops start-up with one sentence."""
    path = stage(tmp_path, f"refused/{fixture}")
    with pytest.raises(AiinfraError, match=REFUSED[fixture].replace("(", r"\(")):
        load_web_config(path)
    r = cli("exporter", "--simulate", "gpus=1", "--web-config", str(path), "--port", "0", "--duration", "0")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_every_fixture_directive_is_covered():
    assert sorted(p.name for p in (FIXTURES / "refused").glob("*.yml")) == sorted(REFUSED)


def test_unknown_user_pays_the_same_bcrypt_cost():
    """issue 17: the dummy hash for unknown users had cost 4 while real hashes had 10, so user names
    could be told apart by answer time. The dummy now has the highest configured cost."""
    users = {"alice": bcrypt.hashpw(b"a", bcrypt.gensalt(10)), "bob": bcrypt.hashpw(b"b", bcrypt.gensalt(11))}
    auth = BasicAuth(users)
    assert auth.dummy_cost == 11
    import base64

    assert not auth.check("Basic " + base64.b64encode(b"mallory:a").decode())
    assert auth.check("Basic " + base64.b64encode(b"alice:a").decode())
    assert not auth.check("Basic " + base64.b64encode(b"alice:b").decode())
    assert not auth.check("Basic " + base64.b64encode(b"alice").decode())  # no colon: refused
