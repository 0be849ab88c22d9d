"""The state store: everything a run knows lives under one URI (S3 prefix or folder).

``open_state(uri, settings)`` picks the implementation from the URI's scheme; use the
result as ``async with``. Entering it proves the store honours conditional writes
(:mod:`.probe`) unless ``store.verify_conditional_writes`` is off.
"""

from __future__ import annotations

from types import TracebackType

from ingest.errors import ConfigError
from ingest.settings import Settings
from ingest.state.base import Blob, RunLayout, StateStore
from ingest.state.probe import verify_conditional_writes

__all__ = ["Blob", "RunLayout", "StateStore", "open_state", "verify_conditional_writes"]


class _Verified:
    """Wraps a store's ``async with`` so entering it also runs the start-up probe."""

    def __init__(self, store: StateStore, verify: bool) -> None:
        self._store = store
        self._verify = verify

    async def __aenter__(self) -> StateStore:
        store = await self._store.__aenter__()
        try:
            if self._verify:
                await verify_conditional_writes(store)
        except BaseException:
            await store.__aexit__(None, None, None)
            raise
        return store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._store.__aexit__(exc_type, exc, tb)


def open_state(uri: str | None, settings: Settings | None = None) -> _Verified:
    """The store at ``uri`` (``s3://bucket/prefix``, ``file:///path`` or a plain path).

    ``async with open_state(uri, settings) as store:`` opens the client and runs the probe.
    """
    settings = settings or Settings()
    if not uri:
        raise ConfigError("no state store given; pass --state URI or set INGEST_STATE")
    if uri.startswith("s3://"):
        from ingest.state.s3 import S3StateStore

        store: StateStore = S3StateStore(
            uri,
            endpoint_url=settings.store.endpoint_url or settings.source.endpoint_url,
            region=settings.store.region or settings.source.region,
        )
    elif "://" not in uri or uri.startswith("file:"):
        from ingest.state.local import LocalStateStore

        store = LocalStateStore(uri, lock_stale_seconds=settings.store.lock_stale_seconds)
    else:
        raise ConfigError(
            f"state store URI {uri!r} has an unknown scheme; use s3://bucket/prefix or file:///path"
        )
    return _Verified(store, settings.store.verify_conditional_writes)
