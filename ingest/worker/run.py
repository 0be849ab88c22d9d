"""``aion-ingest work``: upload one shard, with the exit codes of DESIGN.md.

Order of things: read ``run.json`` (the plan must be complete) and the shard, claim the
checkpoint (a zombie on the same index is stopped by it), continue results numbering,
then run the pipeline with progress. Whatever ends the pipeline, outcomes gathered so far
are flushed (a part, then the checkpoint) before the exit, except when this worker turned
out to be stale (the newer one owns the index; writing would be wrong).

SIGTERM (Kubernetes evicting the pod): cancel the pipeline, flush, exit 143, well inside
the grace period (a flush is one small part and one small checkpoint). Open transfers are
closed without an outcome and re-sent by the next run, harmlessly (``skip_duplicates`` and
idempotency keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Coroutine
from typing import Any

from ingest import __version__
from ingest.api.client import AionClient
from ingest.errors import ConfigError, ExitCode, IngestError, StateConflict
from ingest.metrics.names import S3_GET
from ingest.metrics.requests import RequestStats
from ingest.metrics.server import serve_metrics
from ingest.metrics.worker import WorkerCollector
from ingest.s3.lean import FALLBACKS
from ingest.settings import Settings
from ingest.sources import open_source
from ingest.sources.local import LocalSource
from ingest.state import open_state
from ingest.state.base import RunLayout, StateStore
from ingest.state.claims import verify_claims
from ingest.state.records import read_plan, read_shard
from ingest.worker.accounting import Accounting
from ingest.worker.budget import Budget
from ingest.worker.checkpoint import CheckpointStore
from ingest.worker.intents import IntentLog
from ingest.worker.pacing import Limiter
from ingest.worker.pipeline import ShardPipeline
from ingest.worker.progress import Progress
from ingest.worker.results import ResultsWriter
from ingest.worker.uploads import Uploader

log = logging.getLogger("ingest.worker")


def index_from_env(index: int | None) -> int:
    """The ``--index`` given, else ``JOB_COMPLETION_INDEX`` (set by an Indexed Job)."""
    if index is not None:
        return index
    raw = os.environ.get("JOB_COMPLETION_INDEX")
    if raw is None:
        raise ConfigError("no shard index: pass --index N or set JOB_COMPLETION_INDEX")
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"JOB_COMPLETION_INDEX={raw!r} is not a number") from None


async def work(settings: Settings, run_id: str, index: int) -> ExitCode:
    """Upload shard ``index`` of run ``run_id``; returns the exit code."""
    layout = RunLayout(run_id)
    async with open_state(settings.state, settings) as store:
        plan = await read_plan(store, run_id)
        if not 0 <= index < plan.shards:
            raise ConfigError(
                f"shard index {index} is outside run {run_id!r} (0..{plan.shards - 1})"
            )
        items = await read_shard(store, plan, index)

        checkpoints = CheckpointStore(store, layout, index)
        checkpoint = await checkpoints.claim()
        await verify_claims(store, layout, index, checkpoint)  # a claim without a result
        writer = ResultsWriter(
            store,
            layout,
            index,
            checkpoints,
            checkpoint,
            flush_seconds=settings.worker.flush_seconds,
            flush_items=settings.worker.flush_items,
        )
        await writer.open()
        intents = IntentLog(
            store,
            layout,
            index,
            checkpoints.worker_id,
            clock_skew=settings.worker.clock_skew_seconds,
        )
        await intents.load()
        writer.on_saved = intents.forget
        accounting = Accounting(len(items), sum(i.size for i in items), sink=writer.add)
        done = [i for o, i in enumerate(items) if checkpoint.is_done(o)]
        accounting.resumed(len(done), sum(i.size for i in done))
        w = settings.worker
        limiter = Limiter.worker_share(
            settings.requests_per_minute(),
            w.parallel_workers,
            bytes_per_second=w.bytes_per_second,
            index=index,
        )
        log.info(
            "shard %d of run %s: %d items, %d done before",
            index,
            run_id,
            len(items),
            len(done),
            extra={"worker": checkpoints.worker_id},
        )
        # Without a metrics port nothing observes requests (the benchmark's "off").
        requests = RequestStats() if settings.metrics.port is not None else None
        async with (
            _budget(store, settings, limiter, f"{run_id}.{index:05d}"),
            open_source(
                plan.source, settings.source, readers=settings.worker.concurrency
            ) as source,
            AionClient(settings.api, pacer=limiter.request, observer=requests) as client,
        ):
            uploader = Uploader(
                client, source, w, accounting, limiter, observer=requests, intents=intents
            )
            uploader.source_endpoint = "file:read" if isinstance(source, LocalSource) else S3_GET
            pipeline = ShardPipeline(
                enumerate(items),
                checkpoint,
                uploader,
                files_per_batch=settings.files_per_batch(),
                # a recurring import's uploads are one namespace across its runs: an
                # upload that succeeded but never reached the ledger is the same upload
                namespace=plan.ledger or run_id,
            )
            collector = WorkerCollector(
                accounting,
                run_id=run_id,
                shard=index,
                version=__version__,
                requests=requests,
                pace=limiter,
                queues=pipeline.queue_depths,
                s3_fallbacks=FALLBACKS.counts,
            )
            async with serve_metrics(settings.metrics, collector) as server:
                code = await _supervise(pipeline, writer, Progress(accounting), w.stop_seconds)
                if server is not None and code is not ExitCode.SIGTERM:
                    # Let Prometheus scrape the final figures of a short-lived worker.
                    await asyncio.sleep(settings.metrics.linger_seconds)
                return code


def _budget(
    store: StateStore, settings: Settings, limiter: Limiter, label: str
) -> contextlib.AbstractAsyncContextManager[object]:
    """Membership of the key's budget (ingest/worker/budget.py), unless turned off."""
    heartbeat = settings.worker.budget_heartbeat_seconds
    key = settings.api.key.get_secret_value() if settings.api.key else ""
    if heartbeat <= 0:
        return contextlib.nullcontext()
    budget = Budget(
        store,
        key,
        settings.requests_per_minute(),
        limiter,
        label=label,
        heartbeat=heartbeat,
        look=settings.worker.budget_look_seconds or heartbeat,
    )
    return budget.member()


async def _supervise(
    pipeline: ShardPipeline, writer: ResultsWriter, progress: Progress, stop_seconds: float
) -> ExitCode:
    """Run the pipeline with its helpers; turn SIGTERM and errors into a flushed exit.

    The background flushes (on time, on count) are watched like the pipeline itself: the
    first to fail stops the shard at once. A StateConflict there means a newer worker
    claimed this index: this one stops uploading and writes nothing more (the newer one
    owns the checkpoint); before, the error sat in a finished task until the final flush
    and the zombie uploaded its whole shard a second time.
    """
    loop = asyncio.get_running_loop()
    main = _named(pipeline.run(), "shard-pipeline")
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        _exit_after(stop_seconds)
        if main.done():
            log.warning("SIGTERM during the final flush: finishing it")
            return
        terminated = True
        log.warning("SIGTERM: stopping, flushing results and checkpoint")
        main.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    flushers = [
        _named(writer.run_timer(), "flush-timer"),
        _named(_flush_on_count(writer), "flush-on-count"),
    ]
    progress_task = _named(progress.run(), "progress")
    stale = False
    try:
        await asyncio.wait([main, *flushers], return_when=asyncio.FIRST_COMPLETED)
        for failed in (f for f in flushers if f.done()):  # they only end by failing
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
            failed.result()
        await main
        code = ExitCode.OK
    except asyncio.CancelledError:
        if not terminated:
            raise
        code = ExitCode.SIGTERM
    except StateConflict as exc:
        stale = True
        log.error("stale worker, stopping without writing: %s", exc)
        code = exc.exit_code
    except IngestError as exc:
        log.error("shard stopped: %s", exc)
        code = exc.exit_code
    finally:
        progress_task.cancel()
        try:
            await writer.stop_background([*flushers, progress_task])
            if not stale:
                await writer.flush()
        finally:
            # Removed only now: a SIGTERM during the final flush must not kill it half-way
            # (the default action); the handler's cancel of a finished pipeline is a no-op.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)
            progress.close()
    return code


def _exit_after(seconds: float) -> None:
    """Exit 143 in ``seconds`` whatever still runs (a read stuck in the kernel, a store
    that stopped answering): a SIGTERM'd worker never outlives its grace period. What was
    not flushed by then is re-sent by the next run, harmlessly."""

    def fire() -> None:
        log.error("still running %.0fs after SIGTERM: exiting now", seconds)
        os._exit(ExitCode.SIGTERM)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def _named(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)


async def _flush_on_count(writer: ResultsWriter) -> None:
    """Flush as soon as ``flush_items`` outcomes wait (the timer handles ``flush_seconds``)."""
    while True:
        await writer.full.wait()
        await writer.flush()
