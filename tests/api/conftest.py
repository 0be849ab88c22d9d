"""A scriptable local HTTP server (raw aiohttp on 127.0.0.1) and clients built against it.

The sandbox (tests/fixtures/sandbox.py) checks the contract; this server checks what the
sandbox cannot be made to do on demand: exact bytes on the wire, dropped connections,
stalls, odd bodies. Each request is recorded; answers come from a per-path script.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from ingest.api import AionClient, RetryPolicy
from ingest.settings import ApiSettings

API_KEY = "aion_test_key_0123456789abcdef"


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ScriptedServer:
    """Answers each path from a queue of handlers; the last one repeats."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.scripts: dict[str, list[Handler]] = {}
        self.url = ""

    def script(self, path: str, *handlers: Handler) -> None:
        self.scripts[path] = list(handlers)

    def on(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        queue = self.scripts.get(request.path)
        if not queue:
            return web.json_response({"detail": "Not Found"}, status=404)
        handler = queue.pop(0) if len(queue) > 1 else queue[0]
        return await handler(request)


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        text = body if isinstance(body, str) else json.dumps(body if body is not None else {})
        ctype = "application/xml" if isinstance(body, str) else "application/json"
        return web.Response(status=status, text=text, content_type=ctype, headers=headers)

    return handler


def drop() -> Handler:
    """Close the connection without an answer."""

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError

    return handler


def stall(release: asyncio.Event) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({})

    return handler


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    scripted = ScriptedServer()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    scripted.url = f"http://127.0.0.1:{port}"
    yield scripted
    await runner.cleanup()


class FakeClock:
    """The policy's sleep and wall clock: sleeping advances time instantly."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


@pytest.fixture(params=["aiohttp", "httpx"])
def transport_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeClient = Callable[..., AionClient]


@pytest.fixture
async def make_client(
    server: ScriptedServer, transport_name: str, clock: FakeClock
) -> AsyncIterator[MakeClient]:
    """``make_client(**api_settings)``: a client on the scripted server and the fake clock."""
    made: list[AionClient] = []

    def make(**overrides: Any) -> AionClient:
        options: dict[str, Any] = {
            "key": SecretStr(API_KEY),
            "base_url": server.url + "/api/v2",
            "transport": transport_name,
            "max_attempts": 3,
        }
        options.update(overrides)
        settings = ApiSettings(**options)
        policy = RetryPolicy.from_settings(
            settings, sleep=clock.sleep, clock=clock.time, rng=random.Random(1)
        )
        client = AionClient(settings, policy=policy)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
