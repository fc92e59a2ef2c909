"""exporter-toolkit's web-config file (`--web-config`), with its semantics, for the exporter.

The format is prometheus/exporter-toolkit's docs/web-configuration.md; the behaviour follows its
web/tls_config.go and web/handler.go @ 19a7c2d:

- `tls_server_config`: cert/key as files (`cert_file`, `key_file`, relative to the config file) or
  inline PEM (`cert`, `key`); `client_auth_type` (NoClientCert, RequestClientCert,
  RequireAnyClientCert/RequireClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert);
  `client_ca_file` or inline `client_ca`; `client_allowed_sans` (DNS, e-mail, IP or URI SAN of the
  client certificate, exact match); `min_version`/`max_version` (default TLS12..TLS13);
  `cipher_suites` (Go names, TLS 1.2 and below); `curve_preferences`; `prefer_server_cipher_suites`.
- `http_server_config`: `http2`, `headers` (only the five security headers, with toolkit's allowed values).
- `basic_auth_users`: bcrypt hashes; unknown users pay a bcrypt of the same cost (no user-name
  timing leak); results are cached per (user, hash, password) as toolkit does.
- `rate_limit`: token bucket (`interval` between requests, `burst`); 429 when empty.

Every key is checked (toolkit parses with UnmarshalStrict). What Python's ssl module cannot do is
an error at start-up, never silently dropped: TLS 1.0/1.1 (refused by OpenSSL 3's default security
level) and HTTP/2 (this server speaks HTTP/1.1). Certificates are reloaded when their files change
(toolkit re-reads them on every handshake), checked on each new connection.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import hashlib
import ipaddress
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from aiinfra.catalog.loader import read_yaml
from aiinfra.errors import AiinfraError

_TOP = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_TLS = ("cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file", "client_allowed_sans",
        "min_version", "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites")
_HTTP = ("http2", "headers")
_RATE = ("interval", "burst")
CLIENT_AUTH = ("NoClientCert", "RequestClientCert", "RequireAnyClientCert", "RequireClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go crypto/tls cipher-suite names (tls.CipherSuites(), TLS 1.2 and below) → OpenSSL names (same IANA suites).
GO_CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
_TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# toolkit's curve names → OpenSSL group names.
GO_CURVES = {"CurveP256": "P-256", "CurveP384": "P-384", "CurveP521": "P-521", "X25519": "X25519"}
# toolkit's extraHTTPHeaders: header → allowed values (None = any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}


def parse_duration(text: Any, where: str) -> float:
    """A Prometheus/Go duration ('1s', '500ms', '1m30s', '0') in seconds."""
    s = str(text).strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise AiinfraError(f"{where} must be a duration such as 1s, 500ms or 1m30s, got '{text}'")
    return total


@dataclass
class TlsSettings:
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    client_ca_file: Path | None = None
    client_ca_pem: str | None = None
    client_auth: str = "NoClientCert"
    allowed_sans: tuple[str, ...] | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    ciphers: tuple[str, ...] = ()
    curves: tuple[str, ...] = ()
    prefer_server_ciphers: bool = True

    def files(self) -> list[Path]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None]


@dataclass
class WebConfig:
    """A parsed web-config: what the HTTP server enforces."""

    path: Path | None = None
    tls: TlsSettings | None = None
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, bytes] = field(default_factory=dict)
    rate_interval_s: float = 0.0
    rate_burst: int = 0

    def ssl_context(self) -> ssl.SSLContext | None:
        return build_context(self.tls) if self.tls is not None else None


def _strict(section: Any, known: tuple[str, ...], where: str, path: Path) -> dict:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise AiinfraError(f"web config {path}: {where} must be a mapping")
    unknown = sorted(str(k) for k in section if k not in known)
    if unknown:
        raise AiinfraError(f"web config {path}: unknown key '{unknown[0]}' in {where}; known: {', '.join(known)}")
    return section


def _str_list(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AiinfraError(f"web config {path}: {where} must be a list of strings")
    return tuple(value)


def _bool(value: Any, where: str, path: Path) -> bool:
    if not isinstance(value, bool):
        raise AiinfraError(f"web config {path}: {where} must be true or false, got '{value}'")
    return value


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check a web-config file; anything wrong or impossible to honour is one sentence."""
    path = Path(path)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise AiinfraError(f"cannot read web config {path}: no such readable file")
    doc = read_yaml(path)
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise AiinfraError(f"web config {path} must be a mapping with tls_server_config, http_server_config, basic_auth_users and/or rate_limit")
    _strict(doc, _TOP, "the top level", path)
    cfg = WebConfig(path=path)
    tls = _strict(doc.get("tls_server_config"), _TLS, "tls_server_config", path)
    if tls:
        cfg.tls = _tls_settings(tls, path)
        build_context(cfg.tls)  # fail now, at start-up, if a certificate, key or CA does not load
    http = _strict(doc.get("http_server_config"), _HTTP, "http_server_config", path)
    if "http2" in http and _bool(http["http2"], "http_server_config.http2", path):
        raise AiinfraError(f"web config {path}: http2: true cannot be honoured (this exporter serves HTTP/1.1); set http2: false or leave it out")
    headers = http.get("headers") or {}
    if not isinstance(headers, dict):
        raise AiinfraError(f"web config {path}: http_server_config.headers must map header names to values")
    for name, value in headers.items():
        if name not in HEADERS:
            raise AiinfraError(f"web config {path}: HTTP header '{name}' can not be configured; allowed: {', '.join(HEADERS)}")
        allowed = HEADERS[name]
        if allowed is not None and value not in allowed:
            raise AiinfraError(f"web config {path}: invalid value for {name}: expected one of {', '.join(allowed)}, got '{value}'")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise AiinfraError(f"web config {path}: the value of header {name} must be one line of text")
        cfg.headers[str(name)] = value
    users = doc.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise AiinfraError(f"web config {path}: basic_auth_users must map user names to bcrypt hashes")
    for user, hashed in users.items():
        h = str(hashed).encode()
        if bcrypt_cost(h) is None:
            raise AiinfraError(f"web config {path}: the password of user '{user}' is not a bcrypt hash ($2y$10$…); generate one with htpasswd -nBC 10")
        cfg.users[str(user)] = h
    rate = _strict(doc.get("rate_limit"), _RATE, "rate_limit", path)
    if rate:
        cfg.rate_interval_s = parse_duration(rate.get("interval", "0"), f"web config {path}: rate_limit.interval")
        burst = rate.get("burst", 0)
        if not isinstance(burst, int) or isinstance(burst, bool) or burst < 0:
            raise AiinfraError(f"web config {path}: rate_limit.burst must be a whole number >= 0, got '{burst}'")
        if cfg.rate_interval_s > 0 and burst < 1:
            raise AiinfraError(f"web config {path}: rate_limit.burst must be at least 1 when interval is set (0 would refuse every request)")
        cfg.rate_burst = burst
    return cfg


def _tls_settings(tls: dict, path: Path) -> TlsSettings:
    base = path.parent
    t = TlsSettings()

    def file_or_inline(file_key: str, inline_key: str, what: str, required: bool) -> tuple[Path | None, str | None]:
        f, inline = tls.get(file_key), tls.get(inline_key)
        if f and inline:
            raise AiinfraError(f"web config {path}: give {inline_key} (inline PEM) or {file_key}, not both")
        if required and not f and not inline:
            raise AiinfraError(f"web config {path}: tls_server_config is missing one of {inline_key} or {file_key} ({what})")
        return (base / str(f) if f else None), (str(inline) if inline else None)

    t.cert_file, t.cert_pem = file_or_inline("cert_file", "cert", "the server certificate", True)
    t.key_file, t.key_pem = file_or_inline("key_file", "key", "its private key", True)
    t.client_ca_file, t.client_ca_pem = file_or_inline("client_ca_file", "client_ca", "", False)
    auth = tls.get("client_auth_type") or "NoClientCert"
    if auth not in CLIENT_AUTH:
        raise AiinfraError(f"web config {path}: invalid client_auth_type '{auth}'; use one of {', '.join(CLIENT_AUTH)}")
    t.client_auth = "RequireAnyClientCert" if auth == "RequireClientCert" else auth  # toolkit keeps the old name as an alias
    has_ca = t.client_ca_file is not None or t.client_ca_pem is not None
    if has_ca and t.client_auth == "NoClientCert":
        raise AiinfraError(f"web config {path}: client CAs are configured without a client_auth_type; set RequireAndVerifyClientCert (or another policy)")
    if "client_allowed_sans" in tls:
        t.allowed_sans = _str_list(tls["client_allowed_sans"], "client_allowed_sans", path)
        if t.client_auth == "NoClientCert":
            raise AiinfraError(f"web config {path}: client_allowed_sans needs a client certificate; set client_auth_type to RequireAndVerifyClientCert")
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        v = str(tls.get(key) or default)
        if v not in _VERSIONS:
            raise AiinfraError(f"web config {path}: unknown TLS version '{v}' for {key}; use TLS10, TLS11, TLS12 or TLS13")
        if v in ("TLS10", "TLS11"):
            raise AiinfraError(f"web config {path}: {key}: {v} cannot be honoured: OpenSSL 3 refuses TLS 1.0/1.1 at its default security level; use TLS12 or TLS13")
        setattr(t, key, v)
    if _VERSIONS[t.min_version] > _VERSIONS[t.max_version]:
        raise AiinfraError(f"web config {path}: min_version {t.min_version} is above max_version {t.max_version}")
    ciphers = _str_list(tls.get("cipher_suites"), "cipher_suites", path)
    for c in ciphers:
        if c in _TLS13_SUITES:
            raise AiinfraError(f"web config {path}: cipher suite {c} is a TLS 1.3 suite, which cannot be configured (Go ignores it too); list TLS 1.2 suites only")
        if c not in GO_CIPHERS:
            raise AiinfraError(f"web config {path}: unknown cipher '{c}'; use Go names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    t.ciphers = ciphers
    curves = _str_list(tls.get("curve_preferences"), "curve_preferences", path)
    for c in curves:
        if c not in GO_CURVES:
            raise AiinfraError(f"web config {path}: unknown curve '{c}'; use {', '.join(GO_CURVES)}")
    t.curves = curves
    if "prefer_server_cipher_suites" in tls:
        t.prefer_server_ciphers = _bool(tls["prefer_server_cipher_suites"], "prefer_server_cipher_suites", path)
    return t


# ---------------------------------------------------------------- the SSL context

# libssl as Python's _ssl module links it: for the two settings Python 3.11 has no API for
# (several key-exchange groups, and "ask for a certificate but do not verify it").
_SSL_CTRL_SET_GROUPS_LIST = 92
_SSL_VERIFY_PEER, _SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x01, 0x02
_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_ACCEPT_ANY = _VERIFY_CB(lambda ok, store: 1)


def _libssl() -> Any:
    import _ssl

    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
    return lib


def _ctx_pointer(ctx: ssl.SSLContext, lib: Any) -> int:
    """The SSL_CTX* inside an ssl.SSLContext (the field after the object header), checked against the
    options Python reports, so a layout change is an error rather than a wild pointer."""
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr or lib.SSL_CTX_get_options(ptr) != int(ctx.options):
        raise AiinfraError("this Python's ssl module does not expose its OpenSSL context; curve_preferences with several curves and RequestClientCert/RequireAnyClientCert cannot be honoured here")
    return ptr


def build_context(t: TlsSettings) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[t.min_version]
    ctx.maximum_version = _VERSIONS[t.max_version]
    try:
        with _pem_files(t) as (cert, key):
            ctx.load_cert_chain(cert, key)
        if t.ciphers:
            ctx.set_ciphers(":".join(GO_CIPHERS[c] for c in t.ciphers))
        if t.prefer_server_ciphers:
            ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        if t.client_ca_file is not None:
            ctx.load_verify_locations(cafile=str(t.client_ca_file))
        elif t.client_ca_pem is not None:
            ctx.load_verify_locations(cadata=t.client_ca_pem)
        elif t.client_auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go verifies against the system roots then
    except (OSError, ssl.SSLError, ValueError) as e:
        what = t.cert_file or "the inline certificate"
        raise AiinfraError(f"cannot load TLS certificate {what} / key / client CA: {getattr(e, 'strerror', None) or e}") from None
    if t.client_auth == "VerifyClientCertIfGiven":
        ctx.verify_mode = ssl.CERT_OPTIONAL
    elif t.client_auth == "RequireAndVerifyClientCert":
        ctx.verify_mode = ssl.CERT_REQUIRED
    if len(t.curves) == 1:
        ctx.set_ecdh_curve({"P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1"}.get(GO_CURVES[t.curves[0]], "X25519"))
    if len(t.curves) > 1 or t.client_auth in ("RequestClientCert", "RequireAnyClientCert"):
        lib = _libssl()
        ptr = _ctx_pointer(ctx, lib)
        if len(t.curves) > 1 and lib.SSL_CTX_ctrl(ptr, _SSL_CTRL_SET_GROUPS_LIST, 0, ctypes.c_char_p(":".join(GO_CURVES[c] for c in t.curves).encode())) != 1:
            raise AiinfraError(f"this OpenSSL cannot use curve_preferences {', '.join(t.curves)}")
        if t.client_auth in ("RequestClientCert", "RequireAnyClientCert"):
            mode = _SSL_VERIFY_PEER | (_SSL_VERIFY_FAIL_IF_NO_PEER_CERT if t.client_auth == "RequireAnyClientCert" else 0)
            lib.SSL_CTX_set_verify(ptr, mode, _ACCEPT_ANY)  # ask for a certificate, accept any (toolkit's insecure modes)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@contextlib.contextmanager
def _pem_files(t: TlsSettings):
    """Paths for load_cert_chain: the configured files, or inline PEM written to a private temp dir."""
    if t.cert_pem is None and t.key_pem is None:
        yield str(t.cert_file), str(t.key_file)
        return
    with tempfile.TemporaryDirectory(prefix="aiinfra-tls-") as d:
        cert, key = str(t.cert_file) if t.cert_file else os.path.join(d, "cert.pem"), str(t.key_file) if t.key_file else os.path.join(d, "key.pem")
        for p, text in ((cert, t.cert_pem), (key, t.key_pem)):
            if text is not None:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)
        yield cert, key


class TlsProvider:
    """The current SSL context, rebuilt when a certificate, key or CA file changes on disk.

    A change is seen on the next new connection (os.stat of at most three files); a half-written or
    broken replacement keeps the previous context until the files load again."""

    def __init__(self, settings: TlsSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._sig = self._signature()
        self.context = build_context(settings)
        self.reloads = 0
        self.reload_errors = 0

    def _signature(self) -> tuple:
        out = []
        for p in self.settings.files():
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def current(self) -> ssl.SSLContext:
        sig = self._signature()
        if sig != self._sig:
            with self._lock:
                if sig != self._sig:
                    try:
                        self.context = build_context(self.settings)
                        self.reloads += 1
                    except AiinfraError:
                        self.reload_errors += 1
                    self._sig = sig
        return self.context


def peer_sans(der: bytes) -> list[str]:
    """Subject alternative names of a DER certificate as toolkit compares them: DNS, e-mail, IP, URI."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = [*san.get_values_for_type(x509.DNSName), *san.get_values_for_type(x509.RFC822Name)]
    out += [str(ipaddress.ip_address(ip)) for ip in san.get_values_for_type(x509.IPAddress)]
    out += san.get_values_for_type(x509.UniformResourceIdentifier)
    return out


def sans_allowed(sock: ssl.SSLSocket, allowed: tuple[str, ...] | None) -> bool:
    """toolkit's VerifyPeerCertificate: with client_allowed_sans set, the client certificate must carry one."""
    if allowed is None:
        return True
    der = sock.getpeercert(binary_form=True)
    if not der:
        return False
    return any(s in allowed for s in peer_sans(der))


# ---------------------------------------------------------------- basic auth and rate limit

_BCRYPT = re.compile(rb"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")


def bcrypt_cost(hashed: bytes) -> int | None:
    m = _BCRYPT.match(hashed)
    if not m or not 4 <= int(m.group(1)) <= 31:
        return None
    return int(m.group(1))


class BasicAuth:
    """Basic auth against bcrypt hashes, as toolkit's handler does it.

    An unknown user is checked against a dummy hash of the SAME cost as the real ones (the highest
    configured), so both answer in the same time; bcrypt.checkpw compares in constant time. Results
    are cached per (user, hash, password) digest, and one bcrypt runs at a time (it is CPU-heavy)."""

    def __init__(self, users: dict[str, bytes]):
        self.users = users
        cost = max((bcrypt_cost(h) or 10 for h in users.values()), default=10)
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost)) if users else b""
        self._cache: dict[bytes, bool] = {}
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()

    @property
    def dummy_cost(self) -> int | None:
        return bcrypt_cost(self._dummy) if self._dummy else None

    def check(self, header: str | None) -> bool:
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self.users.get(user)
        valid_user = hashed is not None
        hashed = hashed if hashed is not None else self._dummy
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password.encode()))).digest()
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            with self._bcrypt:
                try:
                    cached = bcrypt.checkpw(password.encode(), hashed)
                except ValueError:
                    cached = False
            with self._lock:
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[key] = cached
        return cached and valid_user


class RateLimiter:
    """A token bucket like golang.org/x/time/rate: one token per `interval_s`, at most `burst` saved."""

    def __init__(self, interval_s: float, burst: int, clock=time.monotonic):
        self.interval_s = interval_s
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.interval_s <= 0:
            return True
        with self._lock:
            now = self.clock()
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) / self.interval_s)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False
