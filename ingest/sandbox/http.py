"""Small ASGI request/response helpers, and FastAPI-style validation of inputs.

The sandbox speaks raw ASGI instead of going through Starlette's Request/Router: the hot
stream endpoint must cost well under a millisecond of CPU, and the rest is simple enough
that a dozen helpers cover it. Validation errors mimic FastAPI's (``loc``/``msg``/``type``)
because that is what the real API, a FastAPI app, sends.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from ingest.sandbox.errors import ApiError, ValidationFailed, missing

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# RFC 3339 date-time, as the spec's ``format: date-time`` means it (a zone is required)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# Only the spellings of a JSON boolean: the spec types these fields `boolean`, and every
# client sends true/false ("True" from Python's requests)
_TRUE = {"true"}
_FALSE = {"false"}


class Disconnected(Exception):
    """The client went away mid-request."""


class Request:
    """One ASGI HTTP request: parsed headers and query, the body as a stream of chunks."""

    __slots__ = (
        "api_key",
        "body_done",
        "headers",
        "method",
        "params",
        "path",
        "query",
        "receive",
        "received",
        "request_id",
        "scope",
    )

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
        }
        qs = scope.get("query_string", b"")
        self.query: dict[str, list[str]] = (
            urllib.parse.parse_qs(qs.decode("latin-1"), keep_blank_values=True) if qs else {}
        )
        self.params: dict[str, str] = {}
        self.request_id = ""
        self.api_key = ""
        self.body_done = False
        self.received = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive; nothing once the body was read."""
        while not self.body_done:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            body = message.get("body", b"")
            if body:
                self.received += len(body)
                yield body
            if not message.get("more_body", False):
                self.body_done = True
                return

    async def drain(self) -> None:
        """Read and discard what is left of the body, so the client can read our answer."""
        try:
            async for _ in self.chunks():
                pass
        except Disconnected:
            pass

    async def json(self, limit: int = 4 * 1024 * 1024) -> Any:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "PAYLOAD_TOO_LARGE", f"JSON body over {limit} bytes")
            parts.append(chunk)
        try:
            return json.loads(b"".join(parts) or b"null")
        except ValueError as exc:
            raise ValidationFailed.one(
                ["body", 0], f"JSON decode error: {exc}", "json_invalid"
            ) from None

    # query parameters, validated the way FastAPI does

    def q_str(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def q_int(
        self,
        name: str,
        default: int | None = None,
        *,
        ge: int | None = None,
        le: int | None = None,
    ) -> int:
        raw = self.q_str(name)
        if raw is None:
            if default is None:
                raise missing(["query", name])
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValidationFailed.one(
                ["query", name],
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
            ) from None
        if ge is not None and value < ge:
            raise ValidationFailed.one(
                ["query", name],
                f"Input should be greater than or equal to {ge}",
                "greater_than_equal",
            )
        if le is not None and value > le:
            raise ValidationFailed.one(
                ["query", name], f"Input should be less than or equal to {le}", "less_than_equal"
            )
        return value

    def q_bool(self, name: str, default: bool | None) -> bool | None:
        raw = self.q_str(name)
        return default if raw is None else parse_bool(raw, ["query", name])

    def q_choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.q_str(name)
        return default if raw is None else check_choice(raw, allowed, ["query", name])

    def q_uuids(self, name: str) -> list[str]:
        """Every value of a repeated UUID parameter (``ids=..&ids=..``), checked."""
        values = self.query.get(name, [])
        for i, raw in enumerate(values):
            check_uuid(raw, ["query", name, i] if len(values) > 1 else ["query", name])
        return values

    def q_datetime(self, name: str) -> dt.datetime | None:
        raw = self.q_str(name)
        if raw is None:
            return None
        match = _DATE_TIME.match(raw)
        when = None
        if match is not None:
            # a leap second (":60") is valid RFC 3339 that Python cannot hold: one second less
            text = (
                raw
                if match.group(1) != "60"
                else raw[: match.start(1)] + "59" + raw[match.end(1) :]
            )
            try:
                when = dt.datetime.fromisoformat(text.upper())
            except ValueError:
                when = None
        if when is None:
            raise ValidationFailed.one(
                ["query", name], "Input should be a valid datetime (RFC 3339)", "datetime_parsing"
            )
        return when


def check_choice(raw: str, allowed: tuple[str, ...], loc: list[str | int]) -> str:
    """``raw`` if it is one of ``allowed``; a 422 as pydantic words a Literal otherwise."""
    if raw not in allowed:
        raise ValidationFailed.one(
            loc, f"Input should be {' or '.join(repr(a) for a in allowed)}", "literal_error"
        )
    return raw


def check_uuid(raw: str, loc: list[str | int]) -> str:
    if not _UUID.match(raw):
        raise ValidationFailed.one(loc, "Input should be a valid UUID", "uuid_parsing")
    return raw


def parse_bool(raw: str, loc: list[str | int]) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValidationFailed.one(loc, "Input should be a valid boolean", "bool_parsing")


_ABSENT: Any = object()


class Body:
    """A JSON object body with FastAPI-like typed accessors (loc ``["body", ...]``)."""

    def __init__(self, doc: Any, loc: list[str | int] | None = None) -> None:
        self.loc: list[str | int] = loc or ["body"]
        if not isinstance(doc, dict):
            raise ValidationFailed.one(self.loc, "Input should be a valid dictionary", "dict_type")
        self.doc: dict[str, Any] = doc

    def _get(self, name: str, required: bool) -> Any:
        """The raw value; ``_ABSENT`` when the key is missing (and may be)."""
        if name not in self.doc:
            if required:
                raise missing([*self.loc, name])
            return _ABSENT
        return self.doc[name]

    def text(
        self,
        name: str,
        required: bool = True,
        default: str | None = None,
        *,
        nullable: bool = False,
    ) -> Any:
        """A string; ``null`` only where the spec says ``anyOf [string, null]`` (nullable)."""
        value = self._get(name, required)
        if value is _ABSENT or (value is None and nullable):
            return default
        if not isinstance(value, str):
            raise ValidationFailed.one(
                [*self.loc, name], "Input should be a valid string", "string_type"
            )
        return value

    def integer(self, name: str, required: bool = True, *, gt: int | None = None) -> Any:
        value = self._get(name, required)
        if value is _ABSENT:
            return None
        # JSON Schema (and pydantic) count 3.0 as an integer
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationFailed.one(
                [*self.loc, name], "Input should be a valid integer", "int_type"
            )
        if gt is not None and value <= gt:
            raise ValidationFailed.one(
                [*self.loc, name], f"Input should be greater than {gt}", "greater_than"
            )
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, False)
        if value is _ABSENT:
            return default
        if not isinstance(value, bool):
            raise ValidationFailed.one(
                [*self.loc, name], "Input should be a valid boolean", "bool_type"
            )
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        """An optional JSON object (``null`` allowed)."""
        value = self._get(name, False)
        if value is _ABSENT or value is None:
            return None
        if not isinstance(value, dict):
            raise ValidationFailed.one(
                [*self.loc, name], "Input should be a valid dictionary", "dict_type"
            )
        return value

    def items(self, name: str, *, min_items: int = 0, max_items: int | None = None) -> list[Any]:
        value = self._get(name, True)
        loc = [*self.loc, name]
        if not isinstance(value, list):
            raise ValidationFailed.one(loc, "Input should be a valid list", "list_type")
        if len(value) < min_items:
            raise ValidationFailed.one(
                loc, f"List should have at least {min_items} item after validation", "too_short"
            )
        if max_items is not None and len(value) > max_items:
            raise ValidationFailed.one(
                loc,
                f"List should have at most {max_items} items after validation, not {len(value)}",
                "too_long",
            )
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None) -> Any:
        value = self.text(name, required=default is None, default=default)
        if value not in allowed:
            raise ValidationFailed.one(
                [*self.loc, name],
                f"String should match pattern '^({'|'.join(allowed)})$'",
                "string_pattern_mismatch",
            )
        return value


def encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


async def send_json(
    send: Send,
    status: int,
    doc: Any,
    request_id: str,
    headers: dict[str, str] | None = None,
) -> None:
    body = encode(doc)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    if headers:
        raw.extend((k.lower().encode(), v.encode("latin-1")) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
