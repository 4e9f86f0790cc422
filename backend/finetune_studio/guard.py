"""The door: checks every request before a route (or FastAPI's body parsing) sees it.

In order: the Host must be loopback (DNS rebinding); `/api` routes but `/api/health` need the token, as
`Authorization: Bearer <token>` or the `fts_token` cookie, checked before a byte of the body is read;
requests that change state must come from the server's own pages (`Origin` / `Sec-Fetch-Site`) and
carry JSON (a cross-site form or `text/plain` POST is a CSRF attempt); bodies are capped per route,
answered 413 as soon as the cap is passed, never buffered whole.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect

from .settings import Settings, is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "fts_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/api/health"})


class Guard:
    def __init__(self, app: App, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, body = refusal
            await _drain_and_answer(receive, send, status, body)
            return
        limit = self.settings.body_limit(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _drain_and_answer(receive, send, 413, _too_large(limit))
            return
        exchange = _CappedExchange(receive, send, limit)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except ClientDisconnect:
            if not exchange.answered:
                raise
            # the 413 went out; the route's complaint that the body was cut short is expected, not an error

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        host = _host_name(headers.get("host", ""))
        if not self.settings.allow_remote and not is_loopback(host):
            return 403, {"detail": f"Host {host!r} is not allowed", "type": "forbidden_host",
                         "hint": "open the dashboard through 127.0.0.1 or localhost"}
        path: str = scope["path"]
        if path.startswith("/api/") and path not in OPEN_PATHS and not self._authorized(headers):
            return 401, {"detail": "missing or wrong token", "type": "unauthorized",
                         "hint": "open the URL printed by `finetune-studio serve`, or send "
                                 "`Authorization: Bearer <token>` (the token is in .finetune-studio/server.json)"}
        if scope["method"] in UNSAFE_METHODS:
            site = headers.get("sec-fetch-site")
            origin = headers.get("origin")
            if (site is not None and site not in ("same-origin", "none")) or (
                    origin is not None and not self._own_origin(origin, headers.get("host", ""))):
                return 403, {"detail": f"a request from {origin or site!r} may not change anything here",
                             "type": "forbidden_origin",
                             "hint": "use the dashboard served by this server, the CLI or the IDE plugin"}
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            if has_body and content_type != "application/json":
                return 415, {"detail": f"Content-Type {content_type or '(none)'!r} is not accepted",
                             "type": "unsupported_media_type", "hint": "send the body as application/json"}
        return None

    def _authorized(self, headers: dict[str, str]) -> bool:
        given: str | None = None
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else None
        else:
            given = _cookie(headers.get("cookie", ""), COOKIE)
        return given is not None and secrets.compare_digest(given.encode(), self.settings.token.encode())

    def _own_origin(self, origin: str, host: str) -> bool:
        """The dashboard's own pages send `Origin: http://<the Host they asked>`."""
        return origin in (f"http://{host}", f"https://{host}") and is_loopback(_host_name(host))


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to an OpenAPI document what the guard answers before any route (401, 403, 413, 415), and give
    every error answer the ErrorBody (FastAPI's own 422 model lacks `type` and `hint`). Idempotent."""
    from .wire import ERROR_STATUSES, ErrorBody, with_models

    components = with_models(schema, ErrorBody)["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {403}
            if path.startswith("/api/") and path not in OPEN_PATHS:
                statuses.add(401)
            if method.upper() in UNSAFE_METHODS:
                statuses |= {413, 415}
            if "{" in path:
                statuses.add(404)
            if operation.get("parameters") or operation.get("requestBody"):
                statuses.add(422)
            if operation.get("requestBody"):
                statuses.add(400)  # a body that is not JSON at all
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses | {int(s) for s in responses if s.isdigit() and int(s) >= 400}):
                responses[str(status)] = {
                    "description": responses.get(str(status), {}).get("description") or ERROR_STATUSES[status],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    return schema


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0]


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _too_large(limit: int) -> dict[str, Any]:
    return {"detail": f"the body is over this route's limit of {limit / 2**20:g} MiB", "type": "too_large",
            "hint": "send less: a capture, a slice or fewer layers; a reporter, smaller batches"}


class _CappedExchange:
    """Passes the body through until it passes `limit`; then answers 413 itself, tells the app the client
    left, drops whatever the app still sends, and reads (without keeping) the rest of the body."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive, self._send, self.limit = receive, send, limit
        self.seen = 0
        self.answered = False

    async def receive(self) -> Message:
        if self.answered:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                self.answered = True
                if message.get("more_body", False):
                    await _drain(self._receive)
                await _answer(self._send, 413, _too_large(self.limit))
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if not self.answered:
            await self._send(message)


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _drain_and_answer(receive: Receive, send: Send, status: int, body: dict[str, Any]) -> None:
    """Read the body without keeping it (a client that sends everything before reading then gets the
    answer, not a broken pipe), then answer."""
    await _drain(receive)
    await _answer(send, status, body)


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
