"""The exporter's HTTP server: `/metrics`, `/healthz`, built to survive hostile and careless clients.

- Every connection has a deadline to deliver its request headers (`header_timeout_s` from accept,
  `idle_timeout_s` after a response) and to take its response (`write_timeout_s`); a reaper thread
  shuts down connections past it, so idle sockets, slowloris clients (a header byte every few
  seconds) and clients that never read cannot hold threads or file descriptors for long.
- At most `max_connections` are open. A new connection beyond the cap evicts the connection that
  has waited longest without sending a request (idle clients first, kept-alive idle ones next);
  only when every connection is busy is the newcomer closed.
- TCP_NODELAY on every connection: a gzip keep-alive scrape otherwise waits on Nagle's algorithm.
- A client that disconnects early, times out or fails the TLS handshake is not news: no traceback.
- The web-config (telemetry.webconfig) is enforced here: TLS context (reloaded when certificate
  files change), client SAN allow-list, security headers on every response, rate limit (429) and
  basic auth (401).
"""

from __future__ import annotations

import contextlib
import errno
import resource
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from aiinfra.errors import AiinfraError
from aiinfra.telemetry.webconfig import BasicAuth, RateLimiter, TlsProvider, WebConfig, sans_allowed

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_QUIET = (ConnectionError, TimeoutError, ssl.SSLError, OSError, ValueError)


class MetricsSource(Protocol):
    body: bytes

    def gzipped(self) -> bytes: ...

    def health(self) -> tuple[bool, str]: ...


def default_max_connections() -> int:
    """Half the open-file limit (leave room for NVML, DCGM and logs), at most 1,024."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(1024, soft // 2))


class _Conn:
    __slots__ = ("sock", "fd", "waiting_since", "served", "busy")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = _fd(sock)
        self.waiting_since = time.monotonic()
        self.served = 0
        self.busy = False


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # bursts of scrapers and reconnects; the stdlib default backlog is 5
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], source: MetricsSource, web: WebConfig | None = None, *,
                 header_timeout_s: float = 10.0, idle_timeout_s: float = 60.0, write_timeout_s: float = 30.0, max_connections: int | None = None):
        self.source = source
        self.web = web or WebConfig()
        self.auth = BasicAuth(self.web.users)
        self.limiter = RateLimiter(self.web.rate_interval_s, self.web.rate_burst) if self.web.rate_interval_s > 0 else None
        self.tls = TlsProvider(self.web.tls) if self.web.tls is not None else None
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.write_timeout_s = write_timeout_s
        self.max_connections = max_connections or default_max_connections()
        self.conns: dict[int, _Conn] = {}
        self.conns_lock = threading.Lock()
        self.stats = {"evicted": 0, "refused": 0, "timed_out": 0, "sans_refused": 0}
        self._closing = threading.Event()
        super().__init__(address, Handler)
        threading.Thread(target=self._reap, name="aiinfra-http-reaper", daemon=True).start()

    # ---- connection bookkeeping

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self._admit(sock):
            with contextlib.suppress(OSError):
                sock.close()
            raise OSError(errno.EMFILE, "connection cap reached; every connection is busy")
        if self.tls is not None:
            # Handshake in the handler thread (under the header deadline), so a slow client cannot block accept().
            fd = sock.fileno()
            try:
                sock = self.tls.current().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                with self.conns_lock:
                    self.conns.pop(fd, None)
                raise
            with self.conns_lock:
                conn = self.conns.get(fd)
                if conn is not None:
                    conn.sock = sock
        return sock, addr

    def _admit(self, sock: socket.socket) -> bool:
        with self.conns_lock:
            if len(self.conns) >= self.max_connections:
                victim = self._evictable()
                if victim is None:
                    self.stats["refused"] += 1
                    return False
                self.conns.pop(victim.fd, None)
                self.stats["evicted"] += 1
                _drop(victim.sock)
            self.conns[sock.fileno()] = _Conn(sock)
        return True

    def _evictable(self) -> _Conn | None:
        """The connection that has waited longest for a request: never-served ones first."""
        idle = [c for c in self.conns.values() if not c.busy]
        if not idle:
            return None
        return min(idle, key=lambda c: (c.served > 0, c.waiting_since))

    def track(self, sock: socket.socket) -> _Conn:
        with self.conns_lock:
            conn = self.conns.get(sock.fileno())
            if conn is None or conn.sock is not sock:
                conn = _Conn(sock)
                self.conns[sock.fileno()] = conn
            return conn

    def forget(self, sock: socket.socket) -> None:
        with self.conns_lock:
            fd = sock.fileno()
            c = self.conns.get(fd)
            if c is not None and c.sock is sock:
                del self.conns[fd]

    def _reap(self) -> None:
        while not self._closing.wait(0.25):
            now = time.monotonic()
            with self.conns_lock:
                late = [
                    c
                    for c in self.conns.values()
                    # waiting for headers past the deadline, or stuck writing to a client that does not read
                    if now - c.waiting_since > (self.write_timeout_s if c.busy else self.idle_timeout_s if c.served else self.header_timeout_s)
                ]
                for c in late:
                    if self.conns.get(c.fd) is c:
                        del self.conns[c.fd]
            for c in late:
                self.stats["timed_out"] += 1
                _drop(c.sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, _QUIET):
            return  # early disconnects, timeouts and failed handshakes are routine for a network server
        sys.stderr.write(f"exporter: request from {client_address[0] if client_address else '?'} failed: {exc!r}\n")

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()
        with self.conns_lock:
            conns = list(self.conns.values())
            self.conns.clear()
        for c in conns:
            _drop(c.sock)


def _fd(sock: socket.socket) -> int:
    try:
        return sock.fileno()
    except (OSError, ValueError):
        return -1


def _drop(sock: socket.socket) -> None:
    """Wake the thread blocked on this socket and free it (shutdown makes its recv return)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    timeout = None  # deadlines are kept by the server's reaper, not per recv

    def log_message(self, format: str, *args: Any) -> None:
        return  # scrapes are not news; errors surface through aiinfra_ metrics

    def setup(self) -> None:
        super().setup()
        self.conn = self.server.track(self.request)
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
                if not sans_allowed(self.request, self.server.web.tls.allowed_sans if self.server.web.tls else None):
                    self.server.stats["sans_refused"] += 1
                    raise ssl.SSLError("client certificate has no allowed SAN")
            except BaseException:
                self.server.forget(self.request)  # finish() does not run when setup() fails
                raise

    def handle(self) -> None:
        try:
            super().handle()
        except _QUIET:
            pass

    def finish(self) -> None:
        with contextlib.suppress(*_QUIET):
            super().finish()
        self.server.forget(self.request)

    def handle_one_request(self) -> None:
        self.conn.busy = False
        self.conn.waiting_since = time.monotonic()
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        self.conn.busy = True
        self.conn.waiting_since = time.monotonic()  # now the start of this response
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self._send(405, b"method not allowed\n", extra={"Allow": "GET, HEAD"})
        else:
            method()
        self.wfile.flush()
        self.conn.served += 1
        self.conn.busy = False
        self.conn.waiting_since = time.monotonic()

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8", extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**self.server.web.headers, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.server.limiter is not None and not self.server.limiter.allow():
            self._send(429, b"Too Many Requests\n")
            return
        if not self.server.auth.check(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", extra={"WWW-Authenticate": 'Basic realm="aiinfra exporter"'})
            return
        path = self.path.split("?", 1)[0]
        src = self.server.source
        if path == "/metrics":
            if src.body and "gzip" in (self.headers.get("Accept-Encoding") or ""):
                self._send(200, src.gzipped(), CONTENT_TYPE, {"Content-Encoding": "gzip"})
            elif src.body:
                self._send(200, src.body, CONTENT_TYPE)
            else:
                self._send(503, b"no collection finished yet\n")
        elif path == "/healthz":
            ok, why = src.health()
            self._send(200 if ok else 503, (why + "\n").encode())
        elif path == "/":
            self._send(200, b'<html><body><h1>aiinfra exporter</h1><a href="/metrics">Metrics</a></body></html>\n', "text/html; charset=utf-8")
        else:
            self._send(404, b"not found\n")

    do_HEAD = do_GET


def serve(source: MetricsSource, host: str = "127.0.0.1", port: int = 9400, web: WebConfig | None = None, **limits: Any) -> Server:
    """Bind and start serving in a daemon thread; returns the server (call .shutdown() to stop)."""
    try:
        server = Server((host, port), source, web, **limits)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise AiinfraError(f"port {port} on {host} is already in use; stop the other process or pick another --port") from None
        raise AiinfraError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    threading.Thread(target=server.serve_forever, name=f"aiinfra-http-{port}", daemon=True).start()
    return server
