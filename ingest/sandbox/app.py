"""The sandbox ASGI app: routing, auth, limits, faults, and the admin endpoints.

Every ``/api/v2`` request goes through the same steps, in the order the real API would
apply them: find the route (404/405) → Bearer auth (401) → the per-key tier limit (429,
``Retry-After``) → the fault limit (429, with or without ``Retry-After``) → a random 5xx
fault → added latency → the handler. ``X-Request-ID`` is echoed (or made up) on every
answer and copied into error bodies.

Admin endpoints, behind their own Bearer key (``--admin-key``, else a random one printed at
start), so that an API client of a staging sandbox cannot reset it or inject faults::

    GET  /_sandbox/faults        the live faults, JSON
    POST /_sandbox/faults        change some of them: {"error_rate": 0.1, "seed": 7, ...}
    POST /_sandbox/reset         forget files, sessions, usage, stats; faults back to start
    GET  /_sandbox/stats         requests by status, 429s, drops, uploads, bytes
    GET  /_sandbox/files         every stored file (with its sha256), oldest first
    PUT  /_sandbox/upload/{token}?X-Sandbox-Expires=..&X-Sandbox-Signature=..
                                 where presigned upload URLs point (no key: the URL is
                                 signed, as S3's are)
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hmac
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ingest.sandbox import presigned, queries, uploads
from ingest.sandbox.errors import ApiError, Style, ValidationFailed
from ingest.sandbox.faults import FaultsError, FaultState, retry_after_header
from ingest.sandbox.http import Disconnected, Receive, Request, Scope, Send, send_json
from ingest.sandbox.multipart import DropConnection, new_sink_dir
from ingest.sandbox.options import SandboxOptions
from ingest.sandbox.store import Store

Handler = Callable[["Sandbox", Request], Awaitable[Any]]

_5XX = {
    500: ("INTERNAL_ERROR", "Internal server error (injected fault)"),
    502: ("BAD_GATEWAY", "Bad gateway (injected fault)"),
    503: ("SERVICE_UNAVAILABLE", "Service temporarily unavailable (injected fault)"),
}


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    style: Style = "nested"
    body: bool = False  # streams a big body: drop faults apply
    stores: bool = False  # stores files: its answer may be lost after (drop_response_rate)


def _route(method: str, path: str, handler: Handler, **kw: Any) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(method, re.compile(f"^/api/v2{regex}$"), handler, **kw)


ROUTES: list[Route] = [
    _route("POST", "/user-files/upload/stream", uploads.stream, body=True, stores=True),
    _route("POST", "/user-files/upload/stream-batch", uploads.stream_batch, body=True, stores=True),
    _route("GET", "/user-files", queries.list_user_files, style="flat"),
    _route("GET", "/user-files/{image_id}", queries.get_user_file, style="flat"),
    _route("GET", "/uploads/quota-check", queries.quota_check),
    _route("POST", "/uploads/check-duplicates", queries.check_duplicates),
    _route("POST", "/uploads/request-presigned-url", presigned.request_url),
    _route("POST", "/uploads/confirm", presigned.confirm, stores=True),
    _route("POST", "/uploads/batch-prepare", presigned.batch_prepare),
    _route("POST", "/uploads/batch-confirm", presigned.batch_confirm),
    _route("GET", "/uploads/batch/{batch_id}/status", queries.batch_status),
    _route("GET", "/uploads/status/{image_id}", queries.upload_status),
    _route("GET", "/uploads/sessions/{session_id}/status", queries.session_status),
    _route("GET", "/uploads/sessions/{session_id}/results", queries.session_results),
    _route("POST", "/uploads/sessions/{session_id}/cancel", queries.cancel_session),
    _route("GET", "/uploads/sessions", queries.list_sessions),
]
_STATIC = {(r.method, r.pattern.pattern[1:-1]): r for r in ROUTES if "(?P" not in r.pattern.pattern}


def _style_of(path: str) -> Style:
    """The error shape for a path no route answered (404, 405): its routes', or its part's.

    The spec declares the flat shape for ``/user-files`` (except the two stream uploads).
    """
    for r in ROUTES:
        if r.pattern.match(path):
            return r.style
    return "flat" if path.startswith("/api/v2/user-files/") else "nested"


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.by_status: collections.Counter[int] = collections.Counter()
        self.rate_limited = 0
        self.dropped = 0
        self.bytes_received = 0

    def to_dict(self, store: Store) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "rate_limited": self.rate_limited,
            "dropped": self.dropped,
            "uploads": store.usage,
            "files": len(store.files),
            "bytes_received": self.bytes_received,
        }


class Sandbox:
    """One sandbox server's state and its ASGI entry point."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        data_dir = options.data_dir if options.store == "disk" else None
        if options.store == "disk" and data_dir is None:
            raise ValueError("--store disk needs --data-dir")
        self.store = Store(data_dir)
        self.sink_dir: Path | None = new_sink_dir(data_dir) if data_dir is not None else None
        self.faults = FaultState(options.faults, options.effective_rpm, options.burst)
        self.stats = Stats()
        self.keys = frozenset(options.api_keys)
        self.signing_key = secrets.token_bytes(32)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = Request(scope, receive)
        req.request_id = req.headers.get("x-request-id") or uuid.uuid4().hex
        # admin calls are not counted: stats describe what clients of the API did
        counted = not req.path.startswith("/_sandbox/") or req.method == "PUT"
        try:
            if req.path.startswith("/_sandbox/"):
                status = await self._admin(req, send)
            else:
                status = await self._api(req, send)
        except DropConnection:
            self.stats.requests += 1
            self.stats.dropped += 1
            _abort(receive)
            return
        except Disconnected:
            return
        if not counted:
            return
        self.stats.requests += 1
        self.stats.bytes_received += req.received
        self.stats.by_status[status] += 1
        if status == 429:
            self.stats.rate_limited += 1

    async def _respond(self, send: Send, req: Request, status: int, doc: Any, **kw: Any) -> int:
        await send_json(send, status, doc, req.request_id, **kw)
        return status

    async def _error(self, send: Send, req: Request, exc: Exception, style: Style) -> int:
        await req.drain()
        if isinstance(exc, ValidationFailed):
            return await self._respond(send, req, 422, exc.body())
        assert isinstance(exc, ApiError)
        return await self._respond(
            send, req, exc.status, exc.body(style, req.request_id), headers=exc.headers
        )

    def _match(self, req: Request) -> Route:
        route = _STATIC.get((req.method, req.path))
        if route is not None:
            return route
        allowed: list[str] = []
        for r in ROUTES:
            m = r.pattern.match(req.path)
            if m is not None:
                if r.method == req.method:
                    req.params = m.groupdict()
                    return r
                allowed.append(r.method)
        if allowed:
            raise ApiError(
                405,
                "METHOD_NOT_ALLOWED",
                f"{req.method} is not allowed on {req.path}: use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        raise ApiError(404, "NOT_FOUND", f"no endpoint {req.method} {req.path}")

    async def _api(self, req: Request, send: Send) -> int:
        style: Style | None = None
        try:
            route = self._match(req)
            style = route.style
            self._authenticate(req)
            self._limit(req)
            status = self.faults.draw_error()
            if status is not None:
                code, message = _5XX[status]
                raise ApiError(status, code, message)
            latency = self.faults.faults.latency_ms
            if latency > 0:
                await asyncio.sleep(latency / 1000.0)
            doc = await route.handler(self, req)
            if route.stores and self.faults.draw_drop_response():
                raise DropConnection  # stored, and the answer lost on the way back
        except (ApiError, ValidationFailed) as exc:
            return await self._error(send, req, exc, style or _style_of(req.path))
        return await self._respond(send, req, 200, doc)

    def _authenticate(self, req: Request) -> None:
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in self.keys:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "Missing or invalid API key: send 'Authorization: Bearer <api_key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        req.api_key = key.strip()

    def _authenticate_admin(self, req: Request) -> None:
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), self.options.admin_key.encode()
        ):
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "the admin endpoints want 'Authorization: Bearer <admin key>': the key the "
                "sandbox printed at start, or its --admin-key (SANDBOX_ADMIN_KEY)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def _limit(self, req: Request) -> None:
        wait = self.faults.tier_limited(req.api_key)
        if wait > 0:
            raise ApiError(
                429,
                "RATE_LIMIT_EXCEEDED",
                f"Rate limit of {self.faults.rpm} requests per minute exceeded for this API key",
                {"limit_per_minute": self.faults.rpm, "retry_after_seconds": wait},
                headers={"Retry-After": retry_after_header(wait)},
            )
        f = self.faults.faults
        wait = self.faults.fault_limited(req.api_key)
        if wait > 0:
            message = f"Rate limit of {f.rate_limit_rps:g} requests per second exceeded (injected)"
        elif self.faults.draw_rate_limited():
            wait, message = 1.0, "Rate limit exceeded (injected at random)"
        else:
            return
        headers = {"Retry-After": retry_after_header(wait)} if f.rate_limit_retry_after else {}
        raise ApiError(429, "RATE_LIMIT_EXCEEDED", message, headers=headers)

    def drop_point(self, req: Request) -> int | None:
        """Where to drop this request's connection (a fault), or None to let it through."""
        if not self.faults.draw_drop():
            return None
        length = int(req.headers.get("content-length", "0") or 0)
        return max(1, length // 2)

    async def _admin(self, req: Request, send: Send) -> int:
        path, method = req.path, req.method
        try:
            if path.startswith("/_sandbox/upload/") and method == "PUT":
                headers = await presigned.put_object(self, req, path.rsplit("/", 1)[-1])
                return await self._respond(send, req, 200, {}, headers=headers)
            self._authenticate_admin(req)
            if path == "/_sandbox/faults" and method == "GET":
                return await self._respond(send, req, 200, self.faults.faults.to_dict())
            if path == "/_sandbox/faults" and method == "POST":
                changes = await req.json()
                if not isinstance(changes, dict):
                    raise ApiError(400, "BAD_FAULTS", "send a JSON object of faults")
                try:
                    self.faults.set(self.faults.faults.updated(changes))
                except (FaultsError, TypeError) as exc:
                    raise ApiError(400, "BAD_FAULTS", str(exc)) from None
                return await self._respond(send, req, 200, self.faults.faults.to_dict())
            if path == "/_sandbox/reset" and method == "POST":
                await req.drain()
                self.store.reset()
                self.stats = Stats()
                self.faults.set(self.options.faults)
                return await self._respond(send, req, 200, {"reset": True})
            if path == "/_sandbox/stats" and method == "GET":
                return await self._respond(send, req, 200, self.stats.to_dict(self.store))
            if path == "/_sandbox/files" and method == "GET":
                files = sorted(self.store.files.values(), key=lambda f: f.seq)
                return await self._respond(send, req, 200, [f.to_json() for f in files])
            raise ApiError(404, "NOT_FOUND", f"no admin endpoint {method} {path}")
        except (ApiError, ValidationFailed) as exc:
            return await self._error(send, req, exc, "nested")


def _abort(receive: Receive) -> None:
    """Drop the client's connection on the floor (a fault).

    ASGI has no "abort" message; uvicorn's receive is a bound method of the request cycle,
    which holds the transport (wrapping middleware sets ``__wrapped__``). Where that is not
    available, raising makes the server close the connection: the client sees the same.
    """
    fn: Any = receive
    transport = None
    while fn is not None and transport is None:
        transport = getattr(getattr(fn, "__self__", None), "transport", None)
        fn = getattr(fn, "__wrapped__", None)  # middleware that wrapped receive says so
    if transport is None:
        raise ConnectionAbortedError("sandbox fault: connection dropped mid-body")
    transport.abort()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
