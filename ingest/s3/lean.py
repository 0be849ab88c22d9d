"""A lean GetObject: one SigV4 signature and one aiohttp request per object.

``bench/worker_throughput.py --s3 rclone --profile`` put most of ``aion-ingest work``'s
CPU in aiobotocore's ``get_object`` even after :mod:`ingest.s3.tuning`: parameter
validation, serialisation, ~30 event emissions, endpoint rules, botocore's signer over
``email.message`` headers, and response parsing, for a request whose shape never changes
within a bucket. This module sends that request itself:

- *Where to send.* Learned, not recomputed: the first GET of each bucket goes through
  botocore, and a ``before-send`` hook records the URL it resolved and the region and
  service of its ``Authorization`` scope. A bucket's later keys replace the key at the
  end of that URL (quoted as botocore quotes it). No template, no lean GET: ARNs,
  S3 Express (``s3express`` scope), SigV4a, proxies and unusual URLs stay with botocore.
- *Signing.* SigV4 as botocore's ``S3SigV4Auth`` does it for this request (headers
  ``host``, ``if-match``, ``x-amz-content-sha256``, ``x-amz-date``, the session token;
  no path normalisation; the empty body's hash as payload hash);
  ``tests/s3/test_lean.py`` checks the signature equals botocore's (session tokens,
  refreshed credentials, keys needing encoding, both addressing styles, other regions).
- *Sending.* Over aiobotocore's own aiohttp session (same pool, TLS and timeouts).

Only a 200 is handled here, and 404/412 (the object is gone or changed: the item fails).
Everything else (5xx, throttling, redirects, 403, clock skew, connection errors) repeats
the GET through botocore, which retries, follows region redirects and reports errors as
:func:`ingest.s3.errors.translate` expects: the lean path changes the cost of the
common case, never the outcome of a rare one. Each such fallback is counted by cause in
:class:`Fallbacks` (the first of each cause is logged), and ``S3Config.lean_get=False``
(``INGEST_SOURCE__LEAN_GET=false``) sends every GET through botocore. Trade-off:
botocore's optional response checksum validation (``x-amz-checksum-mode``) is not
requested here; If-Match and the Content-Length check still catch a replaced or truncated
body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import threading
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from ingest.errors import RetryableError
from ingest.streams import CHUNK_SIZE

log = logging.getLogger(__name__)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SCOPE = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request,")
_CODE = re.compile(rb"<Code>([^<]*)</Code>")


def quote_key(key: str) -> str:
    """A key as botocore puts it in the URL path (``percent_encode(key, safe="/~")``)."""
    return quote(key, safe="/~")


class Template:
    """Where and how one bucket's GETs go: the URL before the key, region and service."""

    __slots__ = ("base", "host", "payload_hash", "region", "service")

    def __init__(self, base: str, region: str, service: str) -> None:
        self.base = base
        parts = urlsplit(base)
        self.host = parts.netloc
        self.region = region
        self.service = service
        # botocore signs a GET's empty body on http and https alike (no Content-MD5)
        self.payload_hash = EMPTY_SHA256

    @classmethod
    def learn(cls, url: str, authorization: str, bucket: str, key: str) -> Template | None:
        """The template of a request botocore sent for ``bucket``/``key`` (path-style or
        virtual-hosted), or None if it is anything else."""
        match = _SCOPE.match(authorization)
        suffix = "/" + quote_key(key)
        parts = urlsplit(url)
        if match is None or parts.query or parts.fragment or not parts.path.endswith(suffix):
            return None
        if parts.scheme not in ("http", "https") or "@" in parts.netloc:
            return None
        region, service = match.group(1), match.group(2)
        if service != "s3":  # s3express, s3-object-lambda, outposts: botocore's business
            return None
        base_path = parts.path[: len(parts.path) - len(suffix) + 1]
        if base_path != "/" + quote_key(bucket) + "/" and not (
            base_path == "/" and parts.netloc.startswith(bucket + ".")
        ):
            return None
        return cls(url[: len(url) - len(suffix) + 1], region, service)


class Signer:
    """SigV4 for a GET without a body, with the signing key cached per day and scope."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str, str], bytes] = {}

    def _key(self, secret: str, day: str, region: str, service: str) -> bytes:
        cached = self._keys.get((secret, day, region, service))
        if cached is None:
            k = hmac.digest(f"AWS4{secret}".encode(), day.encode(), "sha256")
            for part in (region, service, "aws4_request"):
                k = hmac.digest(k, part.encode(), "sha256")
            if len(self._keys) > 16:
                self._keys.clear()
            self._keys[(secret, day, region, service)] = cached = k
        return cached

    def headers(
        self,
        template: Template,
        path: str,
        query: str,
        credentials: Any,
        if_match: str | None,
        now: dt.datetime,
    ) -> dict[str, str]:
        """The request headers, ``Authorization`` included. ``path`` and ``query`` are
        as sent (already quoted; ``query`` sorted and encoded by the caller)."""
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        signed: list[tuple[str, str]] = [("host", template.host)]
        if if_match is not None:
            signed.append(("if-match", if_match))
        signed.append(("x-amz-content-sha256", template.payload_hash))
        signed.append(("x-amz-date", stamp))
        token = credentials.token
        if token:
            signed.append(("x-amz-security-token", token))
        names = ";".join(name for name, _ in signed)
        canonical = "\n".join(
            (
                "GET",
                path,
                query,
                "".join(f"{name}:{' '.join(value.split())}\n" for name, value in signed),
                names,
                template.payload_hash,
            )
        )
        scope = f"{day}/{template.region}/{template.service}/aws4_request"
        to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256",
                stamp,
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            )
        )
        key = self._key(credentials.secret_key, day, template.region, template.service)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {name: value for name, value in signed}
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature={signature}"
        )
        headers["accept-encoding"] = "identity"  # as aiobotocore: sizes are the stored ones
        return headers


# Why a GET went to botocore instead of the lean path: a small fixed set (a metric label).
CAUSES = (
    "connection",  # the lean request failed to connect or broke before a status line
    "status",  # an answer other than 200/404/412 (403, 301, 5xx, throttling, ...)
    "no_length",  # a 200 without Content-Length
    "no_credentials",  # anonymous client: nothing to sign with
    "proxy",  # an HTTP(S) proxy is configured for the endpoint
    "no_template",  # botocore's request had a shape the lean path does not copy
    "unsupported_client",  # aiobotocore's internals moved (another version)
)


class Fallbacks:
    """Lean GETs handed back to botocore, counted by cause (one of :data:`CAUSES`).

    The first fallback of each cause is logged (a warning, with its detail: never a
    credential); the rest are only counted. The metrics read :meth:`counts`, exported as
    ``aion_ingest_s3_fallbacks_total{cause}``.
    """

    def __init__(self) -> None:
        self._counts = dict.fromkeys(CAUSES, 0)
        self._lock = threading.Lock()

    def add(self, cause: str, detail: str) -> None:
        if cause not in self._counts:
            raise ValueError(f"unknown fallback cause {cause!r}; add it to CAUSES")
        with self._lock:
            self._counts[cause] += 1
            first = self._counts[cause] == 1
        if first:
            log.warning("S3 GET through botocore instead of the lean path (%s): %s", cause, detail)

    def counts(self) -> dict[str, int]:
        """Every cause with its count (zeros included), a copy."""
        with self._lock:
            return dict(self._counts)


FALLBACKS = Fallbacks()  # the process's own; S3Client takes another for tests


class Fallback(Exception):
    """The lean GET cannot settle this response: repeat it through botocore."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(cause, detail)
        self.cause = cause
        self.detail = detail


class LeanBody:
    """A 200 response's body as a ByteStream; a short body raises RetryableError."""

    def __init__(self, response: aiohttp.ClientResponse, size: int, where: str) -> None:
        self._response = response
        self.size = size
        self._where = where
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK_SIZE):
                seen += len(chunk)
                yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"reading {self._where} broke off: {exc!r}") from exc
        finally:
            await self.aclose()
        if seen != self.size:
            raise RetryableError(f"reading {self._where} broke off at {seen} of {self.size} B")

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._response.release()

    def __repr__(self) -> str:
        return f"S3ObjectStream({self._where}, size={self.size})"


async def lean_get(
    session: aiohttp.ClientSession,
    signer: Signer,
    template: Template,
    credentials: Any,
    key: str,
    *,
    etag: str | None,
    version_id: str | None,
    where: str,
) -> LeanBody:
    """One signed GET: the body on 200; :class:`Gone` on 404/412; :class:`Fallback`
    for anything else (botocore repeats the GET and settles it)."""
    path = urlsplit(template.base).path + quote_key(key)
    query = f"versionId={quote(version_id, safe='-_.~')}" if version_id else ""
    url = template.base + quote_key(key) + (f"?{query}" if query else "")
    if_match = f'"{etag}"' if etag else None
    headers = signer.headers(template, path, query, credentials, if_match, dt.datetime.now(dt.UTC))
    try:
        response = await session.get(URL(url, encoded=True), headers=headers)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Fallback("connection", repr(exc)) from exc
    status = response.status
    if status == 200:
        length = response.content_length
        if length is None:
            response.release()
            raise Fallback("no_length", f"HTTP 200 without Content-Length for {where}")
        return LeanBody(response, length, where)
    try:
        body = await response.read() if status in (404, 412) else b""
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Fallback("connection", repr(exc)) from exc
    finally:
        response.release()
    if status in (404, 412):
        found = _CODE.search(body)
        raise Gone(status, found.group(1).decode(errors="replace") if found else "")
    raise Fallback("status", f"HTTP {status} for {where}")


class Gone(Exception):
    """404 or 412 on a lean GET: the object is gone or changed (the item fails)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(status, code)
        self.status = status
        self.code = code
