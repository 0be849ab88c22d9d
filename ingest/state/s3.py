"""The S3 state store (``s3://bucket/prefix``), with S3's real conditional writes.

``create`` sends ``If-None-Match: *`` and ``replace`` sends ``If-Match: "<etag>"``; S3
answers 412 PreconditionFailed (or 409 ConditionalRequestConflict when two conditional
writes race) to the loser, which becomes :class:`StateConflict`. botocore errors are
classified here, once: throttling, 5xx and connection trouble are retryable; a missing
bucket or bad credentials are configuration errors naming the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ingest.errors import ConfigError, FatalError, IngestError, RetryableError, StateConflict
from ingest.s3codes import CONFLICT_CODES, CREDENTIAL_CODES, DENIED_CODES, TRANSIENT_CODES
from ingest.state.base import Blob
from ingest.state.paths import check_path, check_prefix


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key prefix without slashes at either end) of ``s3://bucket/prefix``."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise ConfigError(f"state store URI {uri!r} names no bucket; use s3://bucket/prefix")
    return bucket, prefix.strip("/")


class S3StateStore:
    """State under one bucket prefix. Opens its aioboto3 client in ``__aenter__``."""

    def __init__(
        self, uri: str, *, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        self.uri = uri
        self.bucket, self.prefix = split_s3_uri(uri)
        self._endpoint_url = endpoint_url
        self._region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"S3StateStore({self.uri!r})"

    async def __aenter__(self) -> S3StateStore:
        config = Config(retries={"mode": "standard", "max_attempts": 3})
        self._client = await self._stack.enter_async_context(
            aioboto3.Session().client(
                "s3", endpoint_url=self._endpoint_url, region_name=self._region, config=config
            )
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()

    def _key(self, path: str) -> str:
        check_path(path)
        return f"{self.prefix}/{path}" if self.prefix else path

    # -- the StateStore interface -------------------------------------------------------

    async def get(self, path: str) -> Blob | None:
        key = self._key(path)
        try:
            resp = await self._client.get_object(Bucket=self.bucket, Key=key)
            async with resp["Body"] as body:
                data = await body.read()
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._translate(exc, path) from exc
        return Blob(data=data, etag=_unquote(resp["ETag"]))

    async def put(self, path: str, data: bytes) -> str:
        return await self._put(path, data)

    async def create(self, path: str, data: bytes) -> str:
        return await self._put(path, data, IfNoneMatch="*")

    async def replace(self, path: str, data: bytes, etag: str) -> str:
        return await self._put(path, data, IfMatch=f'"{etag}"')

    async def list(self, prefix: str) -> AsyncIterator[str]:
        check_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        cut = len(self.prefix) + 1 if self.prefix else 0
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", ()):
                    yield obj["Key"][cut:]  # S3 lists in UTF-8 byte order: sorted
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, prefix or "/") from exc

    async def delete(self, path: str) -> None:
        try:
            await self._client.delete_object(Bucket=self.bucket, Key=self._key(path))
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) != "NoSuchKey":
                raise self._translate(exc, path) from exc

    # -- helpers ------------------------------------------------------------------------

    async def _put(self, path: str, data: bytes, **condition: str) -> str:
        try:
            resp = await self._client.put_object(
                Bucket=self.bucket, Key=self._key(path), Body=data, **condition
            )
        except (ClientError, BotoCoreError) as exc:
            code = _code(exc)
            if code in CONFLICT_CODES or (condition.get("IfMatch") and code == "NoSuchKey"):
                what = "exists" if "IfNoneMatch" in condition else "changed since it was read"
                raise StateConflict(f"state store {self.uri}: {path} {what}", code=code) from None
            raise self._translate(exc, path) from exc
        return _unquote(resp["ETag"])

    def _translate(self, exc: Exception, path: str) -> IngestError:
        where = f"state store {self.uri}: {path}"
        if isinstance(exc, NoCredentialsError):
            return ConfigError(
                f"{where}: no AWS credentials; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE or a pod identity"
            )
        if not isinstance(exc, ClientError):
            return RetryableError(f"{where}: {type(exc).__name__}: {exc}")
        code = _code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return ConfigError(
                f"{where}: bucket {self.bucket} does not exist; create it or fix INGEST_STATE",
                status=status,
                code=code,
            )
        if code in CREDENTIAL_CODES | DENIED_CODES or status == 403:
            return FatalError(
                f"{where}: access denied; grant s3:GetObject, s3:PutObject, s3:ListBucket and "
                f"s3:DeleteObject on s3://{self.bucket}/{self.prefix} to these credentials",
                status=status,
                code=code,
            )
        if code in TRANSIENT_CODES or (status is not None and status >= 500):
            return RetryableError(f"{where}: S3 said {code}", status=status, code=code)
        return ConfigError(f"{where}: S3 refused the request ({code})", status=status, code=code)


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _unquote(etag: str) -> str:
    return etag.strip('"')
