"""The S3 client: one factory and one class for every S3 call the project makes.

Sources (listing, HEAD, GET) and the state store (small reads, conditional writes) both go
through :class:`S3Client`, so one place sets the retry policy (botocore's ``standard``
mode, ``max_attempts`` per request), the timeouts, the endpoint, the region, the
addressing style and the credentials (botocore's default chain: environment, profile,
container or pod identity; refreshed by botocore when they expire). Callers get plain dicts
for list/head responses, bytes for small reads, a stream for bodies, and only the project's
errors (:mod:`.errors` has the table).

GETs of source objects take the lean path (:mod:`.lean`) after a bucket's first GET unless
``S3Config.lean_get`` is off; every fallback from it to botocore is counted by cause
(:class:`~.lean.Fallbacks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import email.utils
from collections.abc import AsyncIterator
from typing import IO, Any, Literal

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError
from botocore.utils import parse_timestamp

from ingest.errors import RetryableError
from ingest.s3.errors import NETWORK_ERRORS, S3_ERRORS, Kind, Role, kind_of, translate
from ingest.s3.lean import (
    FALLBACKS,
    Fallback,
    Fallbacks,
    Gone,
    LeanBody,
    Signer,
    Template,
    lean_get,
)
from ingest.s3.tuning import trim_request_overhead
from ingest.s3.uris import s3_uri
from ingest.streams import CHUNK_SIZE

PART_SIZE = 8 * 1024 * 1024  # multipart parts of a streamed state write (S3 minimum: 5 MiB)


@dataclasses.dataclass(frozen=True, slots=True)
class S3Config:
    """How to reach S3: what the callers' settings groups hand down (no settings import)."""

    endpoint_url: str | None = None  # None: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, config, AWS
    region: str | None = None  # None: the AWS SDK's own lookup
    max_attempts: int = 5  # per request, the first included (botocore's standard retries)
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    max_connections: int = 32
    list_concurrency: int = 8  # ListObjectsV2 calls in flight
    head_concurrency: int = 32  # HeadObject calls in flight
    lean_get: bool = True  # GETs after a bucket's first go the lean way (ingest/s3/lean.py)


class ConditionLost(Exception):
    """A conditional write lost (412 PreconditionFailed, 409 ConditionalRequestConflict, or
    If-Match on a key that no longer exists): the caller decides what that means."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def fast_timestamp(value: Any) -> dt.datetime:
    """botocore's timestamp parser, with fast paths for ISO 8601 (``...T10:00:00.000Z``,
    listings) and HTTP dates (``Sat, 28 Nov 2026 23:07:47 GMT``, every GetObject's
    Last-Modified header: dateutil was ~4% of the worker's CPU); anything else (epoch
    numbers, odd formats) goes to botocore's own."""
    if isinstance(value, str) and "T" in value:
        with contextlib.suppress(ValueError):
            parsed = dt.datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value[3:5] == ", ":
        with contextlib.suppress(ValueError, TypeError):
            return email.utils.parsedate_to_datetime(value)
    result: dt.datetime = parse_timestamp(value)
    return result


def new_session() -> aioboto3.Session:
    """An aioboto3 session whose response parser reads timestamps fast (botocore parses each
    LastModified with dateutil: ~60% of a listing's CPU)."""
    session = aioboto3.Session()
    factory = session._session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=fast_timestamp)
    return session


def client_config(config: S3Config) -> AioConfig:
    """The one retry policy, timeouts and addressing style of every S3 client."""
    return AioConfig(
        max_pool_connections=max(config.max_connections, config.list_concurrency),
        retries={"mode": "standard", "max_attempts": config.max_attempts},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": config.addressing_style},
    )


class S3ObjectStream:
    """One GetObject body as a :class:`~ingest.streams.ByteStream`.

    aiobotocore checks the byte count against Content-Length at the end, so a connection
    cut short raises (as RetryableError) instead of yielding a truncated file.
    """

    def __init__(self, body: Any, size: int, where: str) -> None:
        self._body = body
        self.size = size
        self._where = where
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._body.iter_chunks(CHUNK_SIZE):
                yield chunk
        except NETWORK_ERRORS as exc:
            raise RetryableError(f"reading {self._where} broke off: {exc!r}") from exc
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._body.close()

    def __repr__(self) -> str:
        return f"S3ObjectStream({self._where}, size={self.size})"


class S3Client:
    """A lazily opened aioboto3 S3 client, with the calls sources and the state store need.

    One per source or store: the connection pool is sized to the work
    (``config.max_connections``), ``list_slots`` bounds ListObjectsV2 calls in flight across
    all listing tasks and ``head_slots`` the HEADs. ``fallbacks`` counts lean GETs handed
    back to botocore (default: the process-wide :data:`~.lean.FALLBACKS`).
    """

    def __init__(
        self,
        config: S3Config,
        *,
        session: aioboto3.Session | None = None,
        fallbacks: Fallbacks | None = None,
    ) -> None:
        self.config = config
        self._session = session
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()
        self.list_slots = asyncio.Semaphore(config.list_concurrency)
        self.head_slots = asyncio.Semaphore(config.head_concurrency)
        self.fallbacks = FALLBACKS if fallbacks is None else fallbacks
        # lean GETs (ingest/s3/lean.py): per-bucket templates learned from the requests
        # botocore sent (url -> Authorization, a few at a time)
        self._templates: dict[str, Template] = {}
        self._sent: dict[str, str] = {}
        self._signer = Signer()

    async def client(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    session = self._session or new_session()
                    self._client = await self._stack.enter_async_context(
                        session.client(
                            "s3",
                            endpoint_url=self.config.endpoint_url,
                            region_name=self.config.region,
                            config=client_config(self.config),
                        )
                    )
                    trim_request_overhead(self._client)
                    if self.config.lean_get:
                        events = self._client.meta.events
                        events.register("before-send.s3.GetObject", self._record_sent)
        return self._client

    # --- listing and HEAD -------------------------------------------------------------

    async def list_pages(
        self,
        bucket: str,
        prefix: str,
        delimiter: str | None = None,
        *,
        role: Role = "list",
        where: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """ListObjectsV2 pages under ``prefix``, each call holding one of ``list_slots``;
        errors translated for ``role`` at ``where`` (default: the s3:// URI)."""
        where = where or s3_uri(bucket, prefix)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        while True:
            async with self.list_slots:
                page = await self._call("list_objects_v2", where, role, **kwargs)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token

    async def head(self, bucket: str, key: str, *, checksum: bool = False) -> dict[str, Any]:
        """HeadObject (with ``ChecksumMode=ENABLED`` when ``checksum``), holding a head slot."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if checksum:
            kwargs["ChecksumMode"] = "ENABLED"
        async with self.head_slots:
            return await self._call("head_object", s3_uri(bucket, key), "list", **kwargs)

    # --- small objects (the state store) ----------------------------------------------

    async def read(self, bucket: str, key: str, where: str) -> tuple[bytes, str] | None:
        """(bytes, ETag without quotes) of a small object, or None when it does not exist.
        Errors are translated for the state store (``where`` names the place)."""
        client = await self.client()
        try:
            response = await client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
        except S3_ERRORS as exc:
            if kind_of(exc) is Kind.GONE and isinstance(exc, ClientError):
                return None
            raise translate(exc, where, "state", bucket) from exc
        return data, str(response["ETag"]).strip('"')

    async def write(
        self,
        bucket: str,
        key: str,
        data: bytes,
        where: str,
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """PutObject, optionally conditional; the new ETag. :class:`ConditionLost` when the
        condition fails (``if_match`` on a key that is gone included)."""
        kwargs: dict[str, Any] = {}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match is not None:
            kwargs["IfMatch"] = f'"{if_match}"'
        client = await self.client()
        try:
            response = await client.put_object(Bucket=bucket, Key=key, Body=data, **kwargs)
        except S3_ERRORS as exc:
            kind = kind_of(exc)
            if isinstance(exc, ClientError) and (
                kind is Kind.CHANGED or (if_match is not None and kind is Kind.GONE)
            ):
                raise ConditionLost(str(exc.response.get("Error", {}).get("Code", ""))) from None
            raise translate(exc, where, "state", bucket) from exc
        return str(response["ETag"]).strip('"')

    async def write_file(
        self, bucket: str, key: str, f: IO[bytes], where: str, *, part_size: int = PART_SIZE
    ) -> str:
        """PutObject of ``f``'s bytes (from its position), streamed: a multipart upload of
        ``part_size`` parts when there is more than one part (aborted on failure), so
        memory holds one part, whatever the size. The new ETag."""
        first = await asyncio.to_thread(f.read, part_size)
        if len(first) < part_size:
            return await self.write(bucket, key, first, where)
        client = await self.client()
        try:
            upload = await client.create_multipart_upload(Bucket=bucket, Key=key)
            upload_id = upload["UploadId"]
        except S3_ERRORS as exc:
            raise translate(exc, where, "state", bucket) from exc
        try:
            parts: list[dict[str, Any]] = []
            chunk = first
            while chunk:
                number = len(parts) + 1
                answer = await client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                chunk = await asyncio.to_thread(f.read, part_size)
            done = await client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException as exc:
            with contextlib.suppress(*S3_ERRORS):
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, S3_ERRORS):
                raise translate(exc, where, "state", bucket) from exc
            raise
        return str(done["ETag"]).strip('"')

    async def delete(self, bucket: str, key: str, where: str) -> None:
        """DeleteObject; a key already gone is fine."""
        client = await self.client()
        try:
            await client.delete_object(Bucket=bucket, Key=key)
        except S3_ERRORS as exc:
            if not (isinstance(exc, ClientError) and kind_of(exc) is Kind.GONE):
                raise translate(exc, where, "state", bucket) from exc

    # --- reading source objects -------------------------------------------------------

    async def get(
        self,
        bucket: str,
        key: str,
        *,
        etag: str | None = None,
        version_id: str | None = None,
    ) -> S3ObjectStream | LeanBody:
        """One GetObject, streamed. With ``etag`` it is conditional (IfMatch): an object
        replaced since planning fails with SourceItemError instead of uploading new bytes
        under the old plan."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            kwargs["IfMatch"] = f'"{etag}"'
        if version_id:
            kwargs["VersionId"] = version_id
        where = s3_uri(bucket, key)
        template = self._templates.get(bucket)
        if template is not None:
            lean = await self._lean_get(template, key, etag, version_id, where)
            if lean is not None:
                return lean
        response = await self._call("get_object", where, "read", **kwargs)
        if template is None and self.config.lean_get:
            self._learn(bucket, key)
        return S3ObjectStream(response["Body"], int(response["ContentLength"]), where)

    async def _lean_get(
        self, template: Template, key: str, etag: str | None, version_id: str | None, where: str
    ) -> LeanBody | None:
        """The GET through :func:`~ingest.s3.lean.lean_get`, or None when botocore must do
        it (counted in ``fallbacks`` by cause)."""
        client = await self.client()
        try:
            signer = client._request_signer
            credentials = signer._credentials
            http = client._endpoint.http_session
            proxy = http._proxy_config.proxy_url_for(template.base)
            if credentials is not None:
                frozen = await credentials.get_frozen_credentials()
            session = await http._get_session(None)
        except AttributeError as exc:  # another aiobotocore: botocore's path only
            self.fallbacks.add("unsupported_client", repr(exc))
            return None
        if credentials is None or not frozen.access_key:
            self.fallbacks.add("no_credentials", "unsigned requests stay with botocore")
            return None
        if proxy:
            self.fallbacks.add("proxy", "requests through a proxy stay with botocore")
            return None
        try:
            return await lean_get(
                session, self._signer, template, frozen, key,
                etag=etag, version_id=version_id, where=where,
            )  # fmt: skip
        except Fallback as fallback:
            self.fallbacks.add(fallback.cause, fallback.detail)
            return None
        except Gone as gone:
            answer: Any = {
                "Error": {"Code": gone.code},
                "ResponseMetadata": {"HTTPStatusCode": gone.status},
            }
            error = ClientError(answer, "GetObject")
            raise translate(error, where, "read") from None

    def _record_sent(self, request: Any, **_: Any) -> None:
        """botocore's ``before-send`` hook: remember the URL and its Authorization."""
        if len(self._sent) > 64:
            self._sent.clear()
        value = request.headers.get("Authorization", b"")  # prepared: bytes
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        self._sent[str(request.url)] = text

    def _learn(self, bucket: str, key: str) -> None:
        """A template for ``bucket`` from the GET botocore just sent for ``key``."""
        if bucket in self._templates:  # learned meanwhile from a concurrent GET
            return
        for url, authorization in list(self._sent.items()):
            template = Template.learn(url, authorization, bucket, key)
            if template is not None:
                self._templates[bucket] = template
                self._sent.clear()
                return
        self.fallbacks.add("no_template", f"botocore's GET of {s3_uri(bucket, key)}")

    async def _call(self, operation: str, where: str, role: Role, **kwargs: Any) -> dict[str, Any]:
        """One client call, its failures translated (see :mod:`.errors`)."""
        client = await self.client()
        try:
            response: dict[str, Any] = await getattr(client, operation)(**kwargs)
        except S3_ERRORS as exc:
            raise translate(exc, where, role) from exc
        return response

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()
