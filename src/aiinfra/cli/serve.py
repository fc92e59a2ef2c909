"""`aiinfra serve`: the web app (calculators, MIG planner, fleet view) on uvicorn.

Safe by default: it binds 127.0.0.1. Binding any other address needs a password for HTTP Basic auth
(`--password-file`) or an explicit `--insecure-no-auth`. Either way the Host header is checked
against an allow-list (this host's names and addresses, plus `--allowed-host`), so a web page on
another site cannot reach the server through DNS rebinding.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from aiinfra.errors import AiinfraError

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "[::1]"]


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; the default keeps the app on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    password_file: Annotated[Path | None, typer.Option(help="File whose first line is the password for HTTP Basic auth (any user name); required to bind beyond loopback.")] = None,
    insecure_no_auth: Annotated[bool, typer.Option("--insecure-no-auth", help="Bind beyond loopback without auth (anyone who can reach the port can use it).")] = False,
    allowed_host: Annotated[list[str] | None, typer.Option("--allowed-host", help="Another Host header name to answer (a DNS name of this server; repeatable).")] = None,
) -> None:
    """Serve the web app: Size, Plan, Infer, Serve, Design, TCO, MIG and Fleet pages, and the JSON API at /docs."""
    if not 0 < port < 65536:
        raise AiinfraError(f"port must be between 1 and 65535, got {port}")
    password = read_password(password_file) if password_file is not None else None
    if not is_loopback(host) and password is None and not insecure_no_auth:
        raise AiinfraError(f"binding {host} exposes the app beyond this machine; give --password-file FILE "
                           "for HTTP Basic auth, or --insecure-no-auth to serve without it")
    names = allowed_host_names(host, list(allowed_host or []))
    from aiinfra.catalog.loader import default_catalog

    default_catalog()  # a --catalog file the app cannot read is refused now, not on every request once it serves
    sock = bind(host, port)
    import uvicorn

    from aiinfra.web.app import create_app

    # Computations run in worker threads; a 1 ms GIL switch interval (default 5 ms) lets the event loop
    # answer /healthz and light pages between their slices.
    sys.setswitchinterval(0.001)
    if not is_loopback(host) and password is None:
        sys.stderr.write(f"warning: serving {host}:{port} without auth (--insecure-no-auth)\n")
    typer.echo(f"aiinfra web app on http://{host}:{port}/ (API docs at /docs); Ctrl-C stops it")
    server = uvicorn.Server(uvicorn.Config(create_app(allowed_hosts=names, password=password, slots=max(1, min(4, os.cpu_count() or 1))), log_level="warning"))
    server.run(sockets=[sock])


def read_password(path: Path) -> str:
    from aiinfra.safeio import read_text

    lines = read_text(path, max_bytes=4096, what="password file").splitlines()
    pw = lines[0].strip() if lines else ""
    if len(pw) < 8:
        raise AiinfraError(f"password file {path} must hold a password of at least 8 characters on its first line")
    return pw


def is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_host_names(host: str, extra: list[str]) -> list[str]:
    """Host headers to answer: loopback names, the bound address, and for a bind beyond loopback this
    machine's names and addresses; plus the user's --allowed-host names. Never a wildcard."""
    names = list(LOOPBACK_NAMES) + [host, f"[{host}]" if ":" in host else host]
    if not is_loopback(host):
        try:
            hostname = socket.gethostname()
            names += [hostname, socket.getfqdn()]
            for info in socket.getaddrinfo(hostname, None):
                addr = str(info[4][0])
                names += [addr, f"[{addr}]" if ":" in addr else addr]
        except OSError:
            pass
    names += extra
    return list(dict.fromkeys(n for n in names if n and n not in ("0.0.0.0", "::", "[::]")))


def loopback_names(host: str) -> list[str] | None:
    """Kept for callers of the old name: the allow-list for a loopback bind, None otherwise."""
    return allowed_host_names(host, []) if is_loopback(host) else None


def bind(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn, so a busy port is one clear sentence and exit 2, not a log dump."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise AiinfraError(f"cannot resolve host '{host}'") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, keep-alive responses wait ~40 ms for delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise AiinfraError(f"port {port} on {host} is already in use; choose another with --port") from None
        raise AiinfraError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock
