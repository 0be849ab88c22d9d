"""The S3 edge: one aioboto3 client per source, and botocore errors translated here, once.

Only this module (and the state store's own) imports aioboto3/botocore. Callers get plain
dicts for list/head responses and a :class:`S3ObjectStream` for bodies, and see only the
project's error tree:

============================================ ===================== ====================
S3 says                                      listing / HEAD        reading an object
============================================ ===================== ====================
NoSuchBucket                                 ConfigError           FatalError
AccessDenied, AllAccessDisabled              FatalError            SourceItemError
InvalidAccessKeyId, SignatureDoesNotMatch,   FatalError            FatalError
ExpiredToken, no credentials at all
NoSuchKey, 404                               SourceItemError       SourceItemError
PreconditionFailed (412, IfMatch lost)       —                     SourceItemError
InvalidObjectState (archived storage class)  SourceItemError       SourceItemError
5xx, SlowDown, throttling, timeouts, resets  RetryableError        RetryableError
other 4xx                                    ConfigError           SourceItemError
============================================ ===================== ====================

A 403 on one object while the bucket lists fine is usually that object's policy or KMS key,
so it fails the item, not the run; bad credentials fail the run everywhere.
botocore retries transient errors itself first ("standard" mode); what reaches us has
already been retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
)
from botocore.utils import parse_timestamp

from ingest.errors import (
    ConfigError,
    FatalError,
    IngestError,
    RetryableError,
    SourceItemError,
)
from ingest.s3codes import CREDENTIAL_CODES, DENIED_CODES, GONE_CODES, TRANSIENT_CODES
from ingest.settings import SourceSettings
from ingest.sources.s3lean import Fallback, Gone, LeanBody, Signer, Template, lean_get
from ingest.sources.s3tuning import trim_request_overhead
from ingest.streams import CHUNK_SIZE

_NETWORK = (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


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


def s3_uri(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


def translate(exc: BaseException, where: str, *, reading: bool) -> IngestError:
    """The project's error for a botocore/aiohttp failure at ``where`` (an s3:// URI).

    ``reading`` is True for GET of one object (the item fails, other items go on) and
    False for listing/HEAD during planning (a problem with the source itself).
    """
    if isinstance(exc, NoCredentialsError):
        return FatalError(
            f"no AWS credentials to read {where}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,"
            " AWS_PROFILE, or a pod role"
        )
    if isinstance(exc, ParamValidationError):
        return ConfigError(f"bad S3 request for {where}: {exc}; check the source URI")
    if not isinstance(exc, ClientError):
        return RetryableError(f"S3 unreachable or connection broke at {where}: {exc!r}")
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)

    def error(cls: type[IngestError], message: str) -> IngestError:
        return cls(message, status=status or None, code=code or None)

    if code in CREDENTIAL_CODES:
        return error(FatalError, f"S3 refused the credentials reading {where}; fix them")
    if code == "NoSuchBucket":
        cls = FatalError if reading else ConfigError
        return error(cls, f"bucket of {where} does not exist; check the source URI")
    if code == "PreconditionFailed" or status == 412:
        return error(SourceItemError, f"{where} changed since planning (ETag differs)")
    if code == "InvalidObjectState":
        return error(SourceItemError, f"{where} is archived (Glacier); restore it first")
    if code in GONE_CODES or status == 404:
        return error(SourceItemError, f"{where} is gone (deleted since planning?)")
    if code in DENIED_CODES or status == 403:
        if reading:
            return error(SourceItemError, f"access denied reading {where}")
        return error(FatalError, f"access denied on {where}; grant s3:ListBucket and s3:GetObject")
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return error(RetryableError, f"S3 trouble at {where}: {code or status}")
    if reading:
        return error(SourceItemError, f"S3 refused {where}: {code or status}")
    return error(ConfigError, f"S3 refused {where}: {code or status}; check the source URI")


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
        except _NETWORK as exc:
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
    """A lazily opened aioboto3 S3 client, with the calls sources need.

    One per source: the connection pool is sized to the work (``max_connections``), and
    ``list_concurrency`` bounds ListObjectsV2 calls in flight across all listing tasks.
    The endpoint is the setting, else botocore's own lookup (``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL``, the config file), else AWS.
    """

    def __init__(self, settings: SourceSettings, max_connections: int = 32) -> None:
        self._settings = settings
        self._max_connections = max(max_connections, settings.list_concurrency)
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()
        self.list_slots = asyncio.Semaphore(settings.list_concurrency)
        self.head_slots = asyncio.Semaphore(settings.head_concurrency)
        # lean GETs (ingest/sources/s3lean.py): per-bucket templates learned from the
        # requests botocore sent (url -> Authorization, a few at a time)
        self._templates: dict[str, Template] = {}
        self._sent: dict[str, str] = {}
        self._signer = Signer()

    async def client(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    config = AioConfig(
                        max_pool_connections=self._max_connections,
                        retries={"mode": "standard", "max_attempts": self._settings.max_attempts},
                        connect_timeout=10,
                        read_timeout=60,
                    )
                    session = aioboto3.Session()
                    # botocore parses each LastModified with dateutil: ~60% of a listing's
                    # CPU. ISO 8601 (what listings carry) goes through fromisoformat instead.
                    factory = session._session.get_component("response_parser_factory")
                    factory.set_parser_defaults(timestamp_parser=fast_timestamp)
                    self._client = await self._stack.enter_async_context(
                        session.client(
                            "s3",
                            endpoint_url=self._settings.endpoint_url,
                            region_name=self._settings.region,
                            config=config,
                        )
                    )
                    trim_request_overhead(self._client)
                    self._client.meta.events.register("before-send.s3.GetObject", self._record_sent)
        return self._client

    async def list_pages(
        self, bucket: str, prefix: str, delimiter: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """ListObjectsV2 pages under ``prefix``, each call holding one of ``list_slots``."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        while True:
            async with self.list_slots:
                page = await self._call("list_objects_v2", s3_uri(bucket, prefix), **kwargs)
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
            return await self._call("head_object", s3_uri(bucket, key), **kwargs)

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
        response = await self._call("get_object", where, reading=True, **kwargs)
        if template is None and bucket not in self._templates:
            self._learn(bucket, key)
        return S3ObjectStream(response["Body"], int(response["ContentLength"]), where)

    async def _lean_get(
        self, template: Template, key: str, etag: str | None, version_id: str | None, where: str
    ) -> LeanBody | None:
        """The GET through :func:`~ingest.sources.s3lean.lean_get`, or None when botocore
        must do it (no credentials or session at hand, a proxy, anything but 200/404/412)."""
        client = await self.client()
        try:
            signer = client._request_signer
            credentials = signer._credentials
            http = client._endpoint.http_session
            if credentials is None or http._proxy_config.proxy_url_for(template.base):
                return None
            frozen = await credentials.get_frozen_credentials()
            session = await http._get_session(None)
        except AttributeError:  # another aiobotocore: botocore's path only
            return None
        try:
            return await lean_get(
                session, self._signer, template, frozen, key,
                etag=etag, version_id=version_id, where=where,
            )  # fmt: skip
        except Fallback:
            return None
        except Gone as gone:
            answer: Any = {
                "Error": {"Code": gone.code},
                "ResponseMetadata": {"HTTPStatusCode": gone.status},
            }
            error = ClientError(answer, "GetObject")
            raise translate(error, where, reading=True) from None

    def _record_sent(self, request: Any, **_: Any) -> None:
        """botocore's ``before-send`` hook: remember the URL and its Authorization."""
        if len(self._sent) > 64:
            self._sent.clear()
        value = request.headers.get("Authorization", b"")  # prepared: bytes
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        self._sent[str(request.url)] = text

    def _learn(self, bucket: str, key: str) -> None:
        """A template for ``bucket`` from the GET botocore just sent for ``key``."""
        for url, authorization in list(self._sent.items()):
            template = Template.learn(url, authorization, bucket, key)
            if template is not None:
                self._templates[bucket] = template
                self._sent.clear()
                return

    async def _call(
        self, operation: str, where: str, *, reading: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """One client call, its failures translated (see :func:`translate`)."""
        client = await self.client()
        try:
            response: dict[str, Any] = await getattr(client, operation)(**kwargs)
        except (ClientError, NoCredentialsError, ParamValidationError, *_NETWORK) as exc:
            raise translate(exc, where, reading=reading) from exc
        return response

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()
