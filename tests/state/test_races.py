"""Conditional writes under real concurrency: tasks on both stores, processes on the folder.

Two properties matter to the rest of the system: of many creators exactly one wins (one
planner writes run.json, one pod claims a lease), and compare-and-swap loses no update (a
zombie can never overwrite a newer checkpoint).
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

from ingest.errors import StateConflict
from ingest.settings import load_settings
from ingest.state import StateStore, open_state

WRITERS = 12


async def _try_create(store: StateStore, path: str, body: bytes) -> bool:
    try:
        await store.create(path, body)
    except StateConflict:
        return False
    return True


async def test_of_racing_creators_exactly_one_wins(store: StateStore) -> None:
    start = asyncio.Event()

    async def creator(i: int) -> bool:
        await start.wait()
        return await _try_create(store, "runs/r/run.json", f"writer {i}".encode())

    tasks = [asyncio.create_task(creator(i)) for i in range(WRITERS)]
    start.set()
    won = await asyncio.gather(*tasks)
    assert sum(won) == 1
    blob = await store.get("runs/r/run.json")
    assert blob is not None and blob.data == f"writer {won.index(True)}".encode()


async def _increment(store: StateStore, path: str, times: int) -> int:
    """Add 1 to the counter at ``path`` ``times`` times by compare-and-swap; conflicts seen."""
    conflicts = 0
    done = 0
    while done < times:
        blob = await store.get(path)
        assert blob is not None
        value = json.loads(blob.data)
        try:
            await store.replace(path, json.dumps(value + 1).encode(), blob.etag)
        except StateConflict:
            conflicts += 1
            continue
        done += 1
    return conflicts


async def test_compare_and_swap_loses_no_update_between_tasks(store: StateStore) -> None:
    await store.create("counter.json", b"0")
    conflicts = await asyncio.gather(*(_increment(store, "counter.json", 10) for _ in range(6)))
    blob = await store.get("counter.json")
    assert blob is not None and json.loads(blob.data) == 60
    assert sum(conflicts) > 0  # they really raced


async def test_compare_and_swap_between_threads_on_the_folder(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}"

    def worker() -> int:
        async def go() -> int:
            async with open_state(uri, load_settings()) as store:
                return await _increment(store, "counter.json", 25)

        return asyncio.run(go())

    async with open_state(uri, load_settings()) as store:
        await store.create("counter.json", b"0")
        await asyncio.gather(*(asyncio.to_thread(worker) for _ in range(4)))
        blob = await store.get("counter.json")
    assert blob is not None and json.loads(blob.data) == 100


_PROCESS_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from ingest.settings import load_settings
    from ingest.state import open_state
    from tests.state.test_races import _increment, _try_create

    async def main() -> None:
        async with open_state(sys.argv[1], load_settings()) as store:
            sys.stdin.readline()  # start together
            won = await _try_create(store, "runs/r/run.json", sys.argv[2].encode())
            await _increment(store, "counter.json", 30)
            print("won" if won else "lost", flush=True)

    asyncio.run(main())
    """
)


async def test_folder_store_races_between_processes(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}"
    async with open_state(uri, load_settings()) as store:
        await store.create("counter.json", b"0")
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _PROCESS_WORKER,
                uri,
                f"process {i}",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for i in range(4)
        ]
        for p in procs:  # all are up and waiting on stdin: release them together
            assert p.stdin is not None
            p.stdin.write(b"go\n")
        outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 60)
        assert [p.returncode for p in procs] == [0, 0, 0, 0]
        assert sorted(out.decode().strip() for out, _ in outs) == ["lost", "lost", "lost", "won"]
        blob = await store.get("counter.json")
        assert blob is not None and json.loads(blob.data) == 120
        assert [p async for p in store.list("")] == ["counter.json", "runs/r/run.json"]
