"""`aiinfra serve`: the web app (calculators, MIG planner, fleet view) on uvicorn."""

from __future__ import annotations

import errno
import socket
from typing import Annotated

import typer

from aiinfra.errors import AiinfraError


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; the default keeps the app on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the web app: Size, Plan, Infer, Design, TCO, MIG and Fleet pages, and the JSON API at /docs."""
    if not 0 < port < 65536:
        raise AiinfraError(f"port must be between 1 and 65535, got {port}")
    sock = bind(host, port)
    import uvicorn

    from aiinfra.web.app import create_app

    typer.echo(f"aiinfra web app on http://{host}:{port}/ (API docs at /docs); Ctrl-C stops it")
    server = uvicorn.Server(uvicorn.Config(create_app(allowed_hosts=loopback_names(host)), log_level="warning"))
    server.run(sockets=[sock])


def loopback_names(host: str) -> list[str] | None:
    """On a loopback bind, answer only Host headers that name this machine (no DNS rebinding)."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return ["127.0.0.1", "localhost", "[::1]", "::1"] if loopback else None


def bind(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn, so a busy port is one clear sentence and exit 2, not a log dump."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
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
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
