"""A test-side ASGI middleware that holds both sides of the wire to the public contract.

It wraps the sandbox in the test fixtures and checks EVERY request a client sends (query
and path parameters, JSON bodies, the multipart field names and kinds of the stream
endpoints, the Bearer header) and every JSON answer the sandbox gives, against the
OpenAPI spec copy in tests/data (jsonschema Draft 2020-12, ``$ref`` resolved into
``components``). Violations are recorded, not raised: the fixture fails the test at
teardown, naming each one. Bodies are checked as they stream past; nothing big is kept
(JSON bodies over a few MB are not validated, headers still are).

Where the sandbox departs from the spec on purpose (mostly where the user's document,
uploads-api.md, says more than the spec or disagrees with it, and the document wins), the
place and the reason are in ``DEVIATIONS`` below, once: the middleware and the Schemathesis
run (tests/sandbox/test_schemathesis.py) both check against the spec with those applied
(:func:`effective_spec`). ``UNSERVED`` lists the spec operations the sandbox leaves out.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from python_multipart.multipart import MultipartParser, parse_options_header

SPEC_PATH = Path(__file__).parent / "data" / "aionvision-uploads-openapi.json"
MAX_VALIDATED_BODY = 4 * 1024 * 1024
MAX_FIELD = 4096

# Spec operations the sandbox does not serve: the user's document (uploads-api.md) lists
# none of them and the client never calls them. They answer 404 in the documented error
# shape; the Schemathesis run leaves them out. The README's sandbox section repeats this.
UNSERVED: dict[tuple[str, str], str] = {
    ("POST", "/api/v2/uploads/batch/{batch_id}/auto-recover"): "recovery of stuck presigned "
    "batches: server-side housekeeping, not in the user's document",
    ("POST", "/api/v2/uploads/cleanup-stale-batches"): "server-side housekeeping, not in the "
    "user's document",
    ("GET", "/api/v2/uploads/pending-batches"): "server-side housekeeping, not in the user's "
    "document",
    ("GET", "/api/v2/uploads/stuck-uploads"): "server-side housekeeping, not in the user's "
    "document",
    ("POST", "/api/v2/user-files/upload/initiate"): "a third upload flow (50 MB presigned, "
    "Files API), not in the user's document; the client uses stream and request-presigned-url",
    ("POST", "/api/v2/user-files/upload/confirm"): "the confirm step of that third flow",
}


@dataclasses.dataclass(frozen=True)
class Deviation:
    """One place where the sandbox departs from the public spec on purpose, and why.

    ``apply`` amends a copy of the spec so that it states what the sandbox does; both the
    contract middleware and the Schemathesis run read the amended spec
    (:func:`effective_spec`), so each deviation is written here once.
    """

    where: str
    why: str
    apply: Callable[[dict[str, Any]], None]


def _op(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = spec["paths"]["/api/v2" + path][method.lower()]
    return op


def _respond(method: str, path: str, status: int, schema: dict[str, Any]) -> Any:
    def apply(spec: dict[str, Any]) -> None:
        _op(spec, method, path)["responses"][str(status)] = {
            "description": "see tests/contract.py DEVIATIONS",
            "content": {"application/json": {"schema": schema}},
        }

    return apply


def _narrow(schema_name: str, prop: str, **constraints: Any) -> Any:
    """Add constraints to a property of a component schema (a request body)."""

    def apply(spec: dict[str, Any]) -> None:
        target = spec["components"]["schemas"][schema_name]["properties"][prop]
        target.update(constraints)

    return apply


def _narrow_query(method: str, path: str, name: str, schema: dict[str, Any]) -> Any:
    def apply(spec: dict[str, Any]) -> None:
        for param in _op(spec, method, path)["parameters"]:
            if param["name"] == name:
                param["schema"] = {**schema, "default": param["schema"].get("default")}

    return apply


_NESTED = {"$ref": "#/components/schemas/NestedError"}
_BODY_STREAM = "Body_stream_upload_file_api_v2_user_files_upload_stream_post"
_BODY_BATCH = "Body_stream_batch_upload_api_v2_user_files_upload_stream_batch_post"
_TARGETS = {"enum": ["default", "custom"]}
# The user's document's "Supported formats" (JPEG, PNG, WebP, GIF, PDF, DOCX, TXT, MD) as
# MIME types, with the two common aliases the sandbox also takes.
_MIMES = [
    "image/jpeg",
    "image/jpg",
    "image/png",
    "image/webp",
    "image/gif",
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/plain",
    "text/markdown",
    "text/x-markdown",
]
_PRESIGN_MAX = 5 * 1024**3
_SORT_FIELDS = ["created_at", "content_created_at", "title", "size_bytes"]

DEVIATIONS: list[Deviation] = [
    Deviation(
        "GET /uploads/quota-check 200",
        "the spec declares the answer as `{}`; the user's document shows its keys (null "
        "`available`/`monthly_limit` on an unlimited plan)",
        _respond("GET", "/uploads/quota-check", 200, {"$ref": "#/components/schemas/QuotaCheck"}),
    ),
    *(
        Deviation(
            f"{method} {path} 404",
            "an unknown id answers 404 in the global handler's nested shape (the API's README "
            "lists 404); the spec declares only 200/422 here",
            _respond(method, path, 404, _NESTED),
        )
        for method, path in [
            ("GET", "/uploads/batch/{batch_id}/status"),
            ("GET", "/uploads/status/{image_id}"),
            ("POST", "/uploads/confirm"),
            ("POST", "/uploads/batch-confirm"),
        ]
    ),
    Deviation(
        "POST /user-files/upload/stream-batch: files",
        "at least one file: a multipart body cannot carry an empty list (it is the same as no "
        "`files` field, which the document and the spec both require)",
        _narrow(_BODY_BATCH, "files", minItems=1),
    ),
    Deviation(
        "POST /user-files/upload/stream-batch: intent",
        "the user's document names the values (describe, verify, rules); the spec's schema "
        "says only `string`",
        _narrow(_BODY_BATCH, "intent", enum=["describe", "verify", "rules"]),
    ),
    *(
        Deviation(
            f"{path}: storage_target",
            "the user's document (and the spec's description) allow 'default' or 'custom' only",
            _narrow(body, "storage_target", **_TARGETS),
        )
        for path, body in [
            ("POST /user-files/upload/stream", _BODY_STREAM),
            ("POST /user-files/upload/stream-batch", _BODY_BATCH),
        ]
    ),
    *(
        Deviation(
            f"{schema}: size_bytes",
            "a presigned upload takes up to 5 GiB (S3's single PUT; the answer's "
            "`max_size_bytes`); the spec sets no maximum. Over it: 422",
            _narrow(schema, "size_bytes", maximum=_PRESIGN_MAX),
        )
        for schema in ("PresignedUploadRequest", "FileInfo")
    ),
    *(
        Deviation(
            f"POST {path} 409",
            "an idempotency_key used before with a different request is refused with 409 "
            "IDEMPOTENCY_CONFLICT in the nested shape (the README lists 409); the spec declares "
            "only 200/422",
            _respond("POST", path, 409, _NESTED),
        )
        for path in ("/uploads/request-presigned-url", "/uploads/batch-prepare")
    ),
    Deviation(
        "POST /uploads/confirm 400",
        "a confirm before anything was PUT, or with another size or checksum than arrived, is "
        "refused with 400 in the nested shape (the README lists 400); the spec declares only "
        "200/422",
        _respond("POST", "/uploads/confirm", 400, _NESTED),
    ),
    Deviation(
        "POST /user-files/upload/stream 400",
        "an empty file is refused with 400 EMPTY_FILE in the nested shape (the README lists "
        "400; stream-batch declares 400 for this); the spec's stream entry does not",
        _respond("POST", "/user-files/upload/stream", 400, _NESTED),
    ),
    *(
        Deviation(
            f"{schema}: content_type",
            "the user's document lists the supported formats (JPEG, PNG, WebP, GIF, PDF, DOCX, "
            "TXT, MD); another type is refused with 422 (the bytes are checked at confirm)",
            _narrow(schema, "content_type", enum=_MIMES),
        )
        for schema in ("PresignedUploadRequest", "FileInfo")
    ),
    Deviation(
        "GET /user-files: sort_by",
        "the spec names the four sort fields in prose only; any other is refused with 422",
        _narrow_query(
            "GET",
            "/user-files",
            "sort_by",
            {"anyOf": [{"enum": _SORT_FIELDS}, {"type": "null"}]},
        ),
    ),
]

_EXTRA_SCHEMAS: dict[str, Any] = {
    # the global handler's envelope (the API's README), for the statuses the spec leaves bare
    "NestedError": {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "request_id": {"type": "string"},
        },
    },
    "QuotaCheck": {
        "type": "object",
        "required": [
            "can_proceed",
            "requested",
            "available",
            "monthly_limit",
            "current_usage",
            "message",
        ],
        "properties": {
            "can_proceed": {"type": "boolean"},
            "requested": {"type": "integer"},
            # null when the plan is unlimited (the document's example is a paid tier)
            "available": {"type": ["integer", "null"]},
            "monthly_limit": {"type": ["integer", "null"]},
            "current_usage": {"type": "integer"},
            "message": {"type": ["string", "null"]},
        },
    },
}


def effective_spec(
    spec_path: Path = SPEC_PATH, deviations: list[Deviation] | None = None
) -> dict[str, Any]:
    """The public spec with every :data:`DEVIATIONS` entry applied (a fresh copy)."""
    spec: dict[str, Any] = json.loads(spec_path.read_text())
    spec["components"]["schemas"].update(copy.deepcopy(_EXTRA_SCHEMAS))
    for deviation in DEVIATIONS if deviations is None else deviations:
        deviation.apply(spec)
    return spec


# Error statuses the spec leaves without a body (401, 402, 404, 409, 413, 415, 429, 5xx on
# most operations) must still be one of the three documented shapes (README + spec).
_ERROR_SHAPES: dict[str, Any] = {
    "nested": {"$ref": "#/components/schemas/NestedError"},
    "detail": {"$ref": "#/components/schemas/HTTPValidationError", "required": ["detail"]},
    "flat": {"$ref": "#/components/schemas/UserFilesError"},
}


class Contract:
    """The spec, compiled: operations by method and path, validators by schema."""

    def __init__(self, spec_path: Path = SPEC_PATH) -> None:
        self.spec = effective_spec(spec_path)
        self.components = self.spec["components"]
        self.ops: list[tuple[str, re.Pattern[str], str, dict[str, Any]]] = []
        for path, item in self.spec["paths"].items():
            regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
            for method, op in item.items():
                self.ops.append((method.upper(), regex, path, op))
        # literal paths before templated ones (".../sessions" vs ".../{id}/status")
        self.ops.sort(key=lambda o: "{" in o[2])
        self._validators: dict[str, Draft202012Validator] = {}
        self._lock = threading.Lock()

    def find(self, method: str, path: str) -> tuple[str, dict[str, Any], dict[str, str]] | None:
        for m, regex, template, op in self.ops:
            match = regex.match(path)
            if match and m == method:
                return template, op, match.groupdict()
        return None

    def errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                validator = Draft202012Validator(
                    {**schema, "components": self.components},
                    format_checker=Draft202012Validator.FORMAT_CHECKER,
                )
                self._validators[key] = validator
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in validator.iter_errors(value)
        ][:5]

    def schema_of(self, ref_or_schema: dict[str, Any]) -> dict[str, Any]:
        ref = ref_or_schema.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            schema: dict[str, Any] = self.components["schemas"][name]
            return schema
        return ref_or_schema


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    """A query/form string as the JSON value its schema's type asks for."""
    types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    if "integer" in types:
        with contextlib.suppress(ValueError):
            return int(raw)
    if "boolean" in types and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


class ContractMiddleware:
    """Wraps an ASGI app; records contract violations in ``self.violations``."""

    def __init__(self, app: Any, contract: Contract | None = None) -> None:
        self.app = app
        self.contract = contract or Contract()
        self.violations: list[str] = []
        self.expect_retry_after = True
        self._relaxed: list[str] | None = None

    @contextlib.contextmanager
    def relaxed(self) -> Iterator[list[str]]:
        """Record violations into the yielded list instead (tests of bad requests)."""
        seen: list[str] = []
        self._relaxed = seen
        try:
            yield seen
        finally:
            self._relaxed = None

    def record(self, where: str, problem: str) -> None:
        target = self._relaxed if self._relaxed is not None else self.violations
        target.append(f"{where}: {problem}")

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/v2"):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        where = f"{method} {path}"
        found = self.contract.find(method, path)
        if found is None:
            self.record(where, "no such operation in the spec")
            await self.app(scope, receive, send)
            return
        template, op, path_params = found
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self._check_request_head(where, op, path_params, scope, headers)
        body_check = self._body_checker(where, method, template, op, headers)
        answer = _Answer()

        async def receive_checked() -> Any:
            message = await receive()
            if message["type"] == "http.request" and body_check is not None:
                body_check.feed(message.get("body", b""), message.get("more_body", False))
            return message

        receive_checked.__wrapped__ = receive  # type: ignore[attr-defined]  # see _abort

        async def send_checked(message: Any) -> None:
            answer.feed(message)
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self._check_response(where, method, template, op, answer)

        await self.app(scope, receive_checked, send_checked)

    # requests

    def _check_request_head(
        self,
        where: str,
        op: dict[str, Any],
        path_params: dict[str, str],
        scope: MutableMapping[str, Any],
        headers: dict[str, str],
    ) -> None:
        if not headers.get("authorization", "").lower().startswith("bearer "):
            self.record(where, "no 'Authorization: Bearer' header")
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode(), True)
        declared = {p["name"]: p for p in op.get("parameters", [])}
        for name in query:
            if declared.get(name, {}).get("in") != "query":
                self.record(where, f"query parameter {name!r} is not in the spec")
        for name, param in declared.items():
            schema = param.get("schema", {})
            if param["in"] == "path":
                values = [path_params.get(name, "")]
            elif param["in"] == "query":
                values = query.get(name, [])
                if not values:
                    if param.get("required"):
                        self.record(where, f"required query parameter {name!r} missing")
                    continue
            else:
                continue
            is_array = schema.get("type") == "array" or any(
                s.get("type") == "array" for s in schema.get("anyOf", [])
            )
            value: Any = [_coerce(v, {"type": "string"}) for v in values]
            if not is_array:
                value = _coerce(values[-1], schema)
            for err in self.contract.errors(schema, value):
                self.record(where, f"{param['in']} parameter {name!r}: {err}")

    def _body_checker(
        self,
        where: str,
        method: str,
        template: str,
        op: dict[str, Any],
        headers: dict[str, str],
    ) -> _JsonBody | _FormBody | None:
        body = op.get("requestBody")
        if body is None:
            return None
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        content = body["content"]
        if ctype not in content:
            self.record(where, f"Content-Type {ctype!r}; the spec wants {sorted(content)}")
            return None
        schema = self.contract.schema_of(content[ctype]["schema"])
        if ctype == "application/json":
            return _JsonBody(self, where, schema)
        if ctype == "multipart/form-data":
            return _FormBody(self, where, schema, headers["content-type"])
        return None

    # responses

    def _check_response(
        self, where: str, method: str, template: str, op: dict[str, Any], answer: _Answer
    ) -> None:
        status = answer.status
        if "x-request-id" not in answer.headers:
            self.record(where, f"answer {status} has no X-Request-ID")
        if status == 429 and self.expect_retry_after and "retry-after" not in answer.headers:
            self.record(where, "429 without Retry-After")
        if not answer.headers.get("content-type", "").startswith("application/json"):
            if status != 204:
                self.record(where, f"answer {status} is not JSON")
            return
        if answer.too_big:
            return
        try:
            doc = json.loads(bytes(answer.body))
        except ValueError:
            self.record(where, f"answer {status} is not valid JSON")
            return
        declared = op["responses"].get(str(status), {}).get("content", {})
        schema = declared.get("application/json", {}).get("schema") or None
        if schema is not None:
            for err in self.contract.errors(schema, doc):
                self.record(where, f"answer {status}: {err}")
            return
        if status < 400:
            self.record(where, f"answer {status} is not declared in the spec")
            return
        if not any(not self.contract.errors(s, doc) for s in _ERROR_SHAPES.values()):
            self.record(where, f"error {status} body is none of the documented shapes: {doc}")


class _Answer:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.too_big = False

    def feed(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body" and not self.too_big:
            self.body += message.get("body", b"")
            if len(self.body) > MAX_VALIDATED_BODY:
                self.too_big = True
                self.body = bytearray()


class _JsonBody:
    def __init__(self, mw: ContractMiddleware, where: str, schema: dict[str, Any]) -> None:
        self.mw, self.where, self.schema = mw, where, schema
        self.buf = bytearray()
        self.too_big = False

    def feed(self, chunk: bytes, more: bool) -> None:
        if not self.too_big:
            self.buf += chunk
            if len(self.buf) > MAX_VALIDATED_BODY:
                self.too_big, self.buf = True, bytearray()
        if more or self.too_big:
            return
        try:
            doc = json.loads(bytes(self.buf))
        except ValueError:
            self.mw.record(self.where, "request body is not valid JSON")
            return
        for err in self.mw.contract.errors(self.schema, doc):
            self.mw.record(self.where, f"request body: {err}")


class _FormBody:
    """Streams the multipart body through a second parser, keeping names and small values."""

    def __init__(
        self,
        mw: ContractMiddleware,
        where: str,
        schema: dict[str, Any],
        content_type: str,
    ) -> None:
        self.mw, self.where, self.schema = mw, where, schema
        self.parts: list[tuple[str, bool, bytearray]] = []
        self._hname, self._hvalue = bytearray(), bytearray()
        self._headers: dict[bytes, bytes] = {}
        _, params = parse_options_header(content_type)
        self.parser: MultipartParser | None = None
        if b"boundary" not in params:
            mw.record(where, "multipart Content-Type without a boundary")
            return
        callbacks: Any = {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda d, s, e: self._hname.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._hvalue.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
        }
        self.parser = MultipartParser(params[b"boundary"], callbacks)

    def _header_end(self) -> None:
        self._headers[bytes(self._hname).lower()] = bytes(self._hvalue)
        self._hname.clear()
        self._hvalue.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self.parts.append((name, b"filename" in params, bytearray()))

    def _data(self, data: bytes, start: int, end: int) -> None:
        _name, is_file, value = self.parts[-1]
        if not is_file and len(value) < MAX_FIELD:
            value.extend(data[start : min(end, start + MAX_FIELD)])

    def feed(self, chunk: bytes, more: bool) -> None:
        if self.parser is None:
            return
        try:
            self.parser.write(chunk)
            if not more:
                self.parser.finalize()
        except Exception as exc:
            self.mw.record(self.where, f"malformed multipart body: {exc}")
            self.parser = None
            return
        if not more:
            self.check()

    def check(self) -> None:
        props = self.schema.get("properties", {})
        names = {name for name, _, _ in self.parts}
        for required in self.schema.get("required", []):
            if required not in names:
                self.mw.record(self.where, f"form field {required!r} missing")
        for name, is_file, value in self.parts:
            prop = props.get(name)
            if prop is None:
                self.mw.record(self.where, f"form field {name!r} is not in the spec")
                continue
            item = prop.get("items", prop)
            wants_file = item.get("format") == "binary"
            if wants_file != is_file:
                kind = "a file" if wants_file else "a plain field"
                self.mw.record(self.where, f"form field {name!r} should be {kind}")
                continue
            if not is_file:
                raw = value.decode("utf-8", "replace")
                for err in self.mw.contract.errors(prop, _coerce(raw, prop)):
                    self.mw.record(self.where, f"form field {name!r}: {err}")
