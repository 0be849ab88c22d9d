"""The state store: everything a run knows lives under one URI (S3 prefix or folder).

``open_state(uri, settings)`` picks the implementation from the URI's scheme; use the
result as ``async with``. Entering it proves the store honours conditional writes
(:mod:`.probe`) unless ``store.verify_conditional_writes`` is off.
"""

from __future__ import annotations

from types import TracebackType

from ingest.errors import ConfigError
from ingest.settings import Settings, SourceSettings, StoreSettings
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
    Only ``settings.store`` (and ``settings.source`` for the S3 endpoint, region and
    attempts the store falls back to) are read; without settings, the built-in defaults
    (the environment is the caller's to read).
    """
    store_settings = settings.store if settings else StoreSettings()
    source = settings.source if settings else SourceSettings()
    if not uri:
        raise ConfigError("no state store given; pass --state URI or set INGEST_STATE")
    if uri.startswith("s3://"):
        from ingest.s3.client import S3Config
        from ingest.state.s3 import S3StateStore

        config = S3Config(
            endpoint_url=store_settings.endpoint_url or source.endpoint_url,
            region=store_settings.region or source.region,
            max_attempts=source.max_attempts,
            addressing_style=source.addressing_style,
        )
        store: StateStore = S3StateStore(uri, config)
    elif "://" not in uri or uri.startswith("file:"):
        from ingest.state.local import LocalStateStore

        store = LocalStateStore(uri, lock_stale_seconds=store_settings.lock_stale_seconds)
    else:
        raise ConfigError(
            f"state store URI {uri!r} has an unknown scheme; use s3://bucket/prefix or file:///path"
        )
    return _Verified(store, store_settings.verify_conditional_writes)
