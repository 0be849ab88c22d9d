"""The edge of the API client: where HTTP becomes the project's vocabulary.

Every call goes through :meth:`ApiEdge._send` (API endpoints) or :meth:`ApiEdge._put`
(presigned uploads to the object store): a fresh ``X-Request-ID`` per attempt, the
``Authorization`` header added per request (never a client default, so it cannot follow a
presigned URL to S3), network failures and error answers classified by ``api.errors``,
retries by ``api.retry.RetryPolicy``, and an optional *pacer* around every attempt to the
API (the worker's rate limiter: it sees each attempt, 429s included, and spaces them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import httpx
import pydantic

from ingest.api.errors import (
    ApiErrorInfo,
    StorageRejected,
    classify,
    parse_error_body,
    parse_retry_after,
)
from ingest.api.files import FileBody
from ingest.api.models import ApiModel
from ingest.api.multipart import MultipartBody
from ingest.api.observe import PRESIGNED_PUT, RequestObserver, path_template, retry_cause
from ingest.api.retry import RetryPolicy
from ingest.api.transport import (
    build_http_client,
    connection_refused,
    describe_transport_error,
)
from ingest.errors import ConfigError, IngestError, RetryableError
from ingest.logs import redact_url, register_secret
from ingest.settings import ApiSettings

M = TypeVar("M", bound=ApiModel)
E = TypeVar("E", bound="ApiEdge")
log = logging.getLogger("ingest.api")

Body = MultipartBody | FileBody
Pacer = Callable[[int], contextlib.AbstractAsyncContextManager[object]]
"""``pacer(nbytes)``: entered around each API attempt; e.g. ``Limiter.request``."""

# Network failures an engine may raise as its own types (httpx-aiohttp maps most of
# aiohttp's to httpx's, not all): all of them mean "try again".
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
)


class ApiEdge:
    """Connection pool, credentials, retries; the base of :class:`AionClient`.

    ``transport`` replaces the HTTP engine (tests); ``policy`` the retry policy (tests pass
    one with a fake ``sleep``/``clock``); ``pacer`` wraps every API attempt; ``observer``
    hears of every round trip and retry (metrics).
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        if settings.key is None or not settings.key.get_secret_value():
            raise ConfigError(
                "no API key: set AIONVISION_API_KEY (or INGEST_API__KEY) to your Aionvision key"
            )
        self._key = settings.key.get_secret_value()
        register_secret(self._key)
        self.base_url = settings.base_url.rstrip("/")
        self._answered = False  # any answer at all from the API yet (refusals fail fast)
        self.policy = policy or RetryPolicy.from_settings(settings)
        self.pacer = pacer
        self.observer = observer
        self._http = build_http_client(settings, transport=transport)
        self.request_deadline = settings.request_deadline

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    async def __aenter__(self: E) -> E:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- the edge ---------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        params: Mapping[str, Any] | None = None,
        json_body: pydantic.BaseModel | None = None,
        body: MultipartBody | None = None,
    ) -> M:
        """Call ``path`` with retries and return its answer as ``model``."""
        url = self.base_url + path
        endpoint = path_template(path)

        async def attempt(n: int) -> M:
            request_id = uuid.uuid4().hex
            headers = {
                "Authorization": f"Bearer {self._key}",
                "X-Request-ID": request_id,
                "Accept": "application/json",
            }
            content: Any = None
            if json_body is not None:
                headers["Content-Type"] = "application/json"
                content = json_body.model_dump_json(exclude_none=True).encode()
            elif body is not None:
                headers.update(body.headers())
                content = body
            async with self._paced(body.content_length if body is not None else 0):
                response = await self._exchange(
                    method,
                    url,
                    redact_url(url),
                    endpoint,
                    request_id,
                    headers=headers,
                    params=params,
                    content=content,
                    body=body,
                )
                if response.status_code >= 400:
                    raise self._error(response, path, request_id, url)
            try:
                result = model.model_validate_json(response.content)
            except pydantic.ValidationError as exc:
                raise RetryableError(
                    f"unexpected answer from {path} (HTTP {response.status_code}): "
                    f"{exc.error_count()} field(s) do not match the API's documented shape",
                    request_id=request_id,
                ) from None
            result._attempts = n
            return result

        return await self.policy.run(
            attempt, what=f"{method} {path}", on_retry=self._retry_hook(endpoint)
        )

    def _paced(self, nbytes: int) -> contextlib.AbstractAsyncContextManager[object]:
        return self.pacer(nbytes) if self.pacer is not None else contextlib.nullcontext()

    async def _put(self, method: str, url: str, headers: Mapping[str, str], body: FileBody) -> int:
        """Stream ``body`` to a presigned ``url`` (no API key, not paced); the HTTP status.

        Network trouble and 5xx are retried; another refusal (an expired or altered URL)
        raises :class:`ItemRejected`: the run goes on, a later run retries the item.
        """
        shown = redact_url(url)

        async def attempt(n: int) -> int:
            request_id = uuid.uuid4().hex
            sent = dict(headers)
            sent["Content-Length"] = str(body.content_length)
            response = await self._exchange(
                method, url, shown, PRESIGNED_PUT, request_id, headers=sent, content=body, body=body
            )
            if response.status_code >= 400:
                raise _storage_error(response, shown, request_id)
            return response.status_code

        return await self.policy.run(
            attempt, what=f"{method} {shown}", on_retry=self._retry_hook(PRESIGNED_PUT)
        )

    def _retry_hook(self, endpoint: str) -> Callable[[RetryableError], None] | None:
        observer = self.observer
        if observer is None:
            return None
        return lambda error: observer.retrying(endpoint, retry_cause(error))

    async def _exchange(
        self,
        method: str,
        url: str,
        shown: str,
        endpoint: str,
        request_id: str,
        *,
        headers: dict[str, str],
        params: Mapping[str, Any] | None = None,
        content: Any = None,
        body: Body | None = None,
    ) -> httpx.Response:
        """One HTTP round trip; network failures become :class:`RetryableError`.

        ``shown`` is how the target appears in messages (a path, or a redacted URL),
        ``endpoint`` its template for the observer.
        """
        started = time.monotonic()
        deadline = asyncio.timeout(self.request_deadline)
        code = "error"  # the observer's label when no answer came
        try:
            async with deadline:
                response = await self._http.request(
                    method, url, params=params, content=content, headers=headers
                )
            code = str(response.status_code)
        except TimeoutError as exc:
            if body is not None and body.error is not None:
                raise body.error from None
            what = (
                f"no complete answer within request_deadline ({self.request_deadline:g}s)"
                if deadline.expired()
                else describe_transport_error(exc)
            )
            raise RetryableError(f"{what} at {shown}", request_id=request_id) from None
        except _NETWORK_ERRORS as exc:
            if body is not None and body.error is not None:
                raise body.error from None  # the source failed, not the network
            if not self._answered and connection_refused(exc) and url.startswith(self.base_url):
                raise ConfigError(
                    f"nothing listens at {redact_url(self.base_url)} (connection refused); "
                    "check AIONVISION_BASE_URL (INGEST_API__BASE_URL) and that the API "
                    "(or 'aion-ingest sandbox') is running there",
                    request_id=request_id,
                ) from None
            raise RetryableError(
                f"{describe_transport_error(exc)} at {shown}", request_id=request_id
            ) from None
        except Exception:
            if body is not None and body.error is not None:
                raise body.error from None
            raise
        finally:
            if self.observer is not None:
                self.observer.request_done(endpoint, code, time.monotonic() - started)
        self._answered = True
        log.debug(
            "%s %s -> %d in %.0f ms",
            method,
            shown,
            response.status_code,
            (time.monotonic() - started) * 1000,
            extra={"request_id": request_id},
        )
        return response

    def _error(self, response: httpx.Response, path: str, request_id: str, url: str) -> IngestError:
        info = parse_error_body(response.content, response.headers.get("content-type"))
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.policy.clock())
        error = classify(
            response.status_code,
            info,
            endpoint=path,
            request_id=request_id,
            retry_after=retry_after,
            url=url,
        )
        log.debug("error from %s: %s", path, error, extra={"request_id": request_id})
        return error


_XML_TAG = re.compile(r"<(Code|Message)>([^<]{0,200})</\1>")


def _storage_error(response: httpx.Response, shown: str, request_id: str) -> IngestError:
    """The object store's refusal of a presigned PUT (S3 answers in XML)."""
    found = dict(_XML_TAG.findall(response.text[:4000]))
    status = response.status_code
    said = f": {found['Code']}" if "Code" in found else ""
    if "Message" in found:
        said += f" ({found['Message']})"
    if status in {408, 429} or status >= 500:
        info = ApiErrorInfo(code=found.get("Code"), message=found.get("Message"))
        return classify(status, info, endpoint=f"PUT {shown}", request_id=request_id)
    return StorageRejected(
        f"the storage refused the upload to {shown}{said}; the presigned URL may have "
        "expired: the item fails now and a rerun uploads it",
        status=status,
        code=found.get("Code"),
        request_id=request_id,
    )
