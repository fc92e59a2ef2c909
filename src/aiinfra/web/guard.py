"""Bounded cost per request: a body cap, a time budget, a cap on concurrent computations, and
optional HTTP Basic auth, as one plain ASGI middleware in front of the app.

- Body: a request body over `max_body` bytes is refused with 413 before any of it is parsed (the
  body is read here, so a chunked upload is counted too). A 1M-key JSON body never reaches the
  JSON parser or pydantic.
- Computations (everything but /healthz and /static) take one of `slots` places; a request that
  cannot get one within the budget answers 503 "busy". Library calls run in worker threads, so the
  event loop stays free for /healthz and light requests while they compute.
- Time budget: a request still computing after `budget_s` answers 503 naming the budget. Its thread
  cannot be killed, so it keeps its slot until it finishes: at most `slots` overrunning computations
  exist at once, and the inputs' declared bounds keep each one finite.
- Auth: with `password`, every request but /healthz needs HTTP Basic credentials (any user name, that
  password), compared in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY = 256 * 1024  # the largest form or API body a page needs is a few KiB
BUDGET_S = 20.0  # a request at its inputs' bounds finishes well inside this on one core
LIGHT_PREFIXES = ("/healthz", "/static/")


async def _respond(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app: Any, *, max_body: int = MAX_BODY, budget_s: float = BUDGET_S, slots: int = 4,
                 password: str | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.budget_s = budget_s
        self.slots = slots
        self.password = password
        self._sem: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:  # made inside the running loop
            self._sem = asyncio.Semaphore(self.slots)
        return self._sem

    def _authorized(self, scope: Scope) -> bool:
        if self.password is None:
            return True
        for k, v in scope.get("headers", []):
            if k == b"authorization" and v[:6].lower() == b"basic ":
                try:
                    _, _, given = base64.b64decode(v[6:], validate=True).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return False
                return hmac.compare_digest(given.encode(), self.password.encode())
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == "/healthz":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            await _respond(send, 401, "authentication required",
                           [(b"www-authenticate", b'Basic realm="aiinfra", charset="UTF-8"')])
            return
        if path.startswith(LIGHT_PREFIXES):
            await self.app(scope, receive, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for a disconnect, as the server would

        sem = self._semaphore()
        try:
            await asyncio.wait_for(sem.acquire(), self.budget_s)
        except asyncio.TimeoutError:
            await _respond(send, 503, "the server is busy with other computations; try again shortly",
                           [(b"retry-after", b"5")])
            return
        started = False
        abandoned = False

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if abandoned:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, replay, guarded_send))
        task.add_done_callback(lambda _t: sem.release())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no "never retrieved" noise
        try:
            await asyncio.wait_for(asyncio.shield(task), self.budget_s)
        except asyncio.TimeoutError:
            abandoned = True
            if not started:
                await _respond(send, 503, f"the request took longer than its {self.budget_s:g} s budget; "
                                          "ask for less (fewer GPUs, workloads or candidates)")

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    await _respond(send, 400, "Content-Length is not a number")
                    return None
                if declared > self.max_body:
                    await _respond(send, 413, f"request body of {declared:,} bytes is over the limit of "
                                              f"{self.max_body:,} bytes")
                    return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _respond(send, 413, f"request body is over the limit of {self.max_body:,} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
